"""The interleaved A/B latency benchmark runs end to end at a tiny size."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.latency_ab import HERE, compare, main, markdown


def test_ab_compares_two_checkouts_on_one_store_at_a_tiny_size(tmp_path: Path) -> None:
    result = compare(HERE, tmp_path / "store", memories=40, agents_count=2, requests=6)
    assert result["requests"] == 6
    for side in ("this", "other"):
        assert 0 < result[side]["p50_ms"] <= result[side]["p95_ms"]
    ratio = result["this"]["p50_ms"] / result["other"]["p50_ms"]
    assert result["p50_ms_this_over_other"] == pytest.approx(ratio, abs=0.001)
    table = markdown(result)
    assert "| this checkout |" in table and f"`{HERE}`" in table


def test_ab_with_concurrent_clients_runs_alternating_blocks(tmp_path: Path) -> None:
    result = compare(
        HERE, tmp_path / "store", memories=40, agents_count=2, requests=8, concurrency=2, block=4
    )
    assert result["requests"] == 8 and result["concurrency"] == 2  # two blocks of 4 per server
    for side in ("this", "other"):
        row = result[side]
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["rps"] > 0
    rps_ratio = result["this"]["rps"] / result["other"]["rps"]
    assert result["rps_this_over_other"] == pytest.approx(rps_ratio, abs=0.001)
    assert "from 2 clients at once" in markdown(result)


def test_ab_refuses_a_directory_that_is_no_checkout(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--other", str(tmp_path)])
