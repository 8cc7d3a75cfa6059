"""The cold-start benchmark runs end to end at a tiny size: first and second calls, each setting."""

from __future__ import annotations

from pathlib import Path

from bench.cold_start import SETTINGS, markdown, run


def test_cold_start_bench_times_first_and_second_calls_with_and_without_copies(
    tmp_path: Path,
) -> None:
    result = run(memories=40, agents_count=3, namespaces=2, rounds=1, data_dir=tmp_path / "store")
    assert result["namespaces"] == 2
    assert set(result["p50_ms"]) == set(SETTINGS)
    for calls in result["p50_ms"].values():
        assert len(calls["first"]) == len(calls["second"]) == 1  # one p50 per round
        assert all(t > 0 for t in [*calls["first"], *calls["second"]])
    # the setting reached the servers: copies of both namespaces, or none
    assert result["copied_namespaces"] == {"with copies": [2], "without": [0]}
    assert all(len(s) == 1 and s[0] > 0 for s in result["ready_s"].values())
    table = markdown(result)
    assert "| with copies |" in table and "| without |" in table
