"""The ingest benchmark runs end to end at a tiny size and writes every memory it times."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.ingest import markdown, run, texts_for


def test_texts_are_distinct_and_repeatable() -> None:
    texts = texts_for(500, 3)
    assert len(set(texts)) == 500 and texts == texts_for(500, 3)


def test_ingest_bench_at_a_tiny_size(tmp_path: Path) -> None:
    result = run(memories=120, batch_size=40, clients=2, data_dir=tmp_path / "var")
    assert result["memories"] == 120 and result["rounds"] == 2  # 3 batches, 2 per round
    assert result["server_per_second"] > 0 and result["bare_per_second"] > 0
    expected = result["server_per_second"] / result["bare_per_second"]
    assert abs(result["ratio"] - expected) < 0.01
    assert result["own_per_second"] > 0
    assert abs(result["own_ratio"] - result["server_per_second"] / result["own_per_second"]) < 0.01
    with sqlite3.connect(tmp_path / "var" / "memory.db") as db:
        [(count,)] = db.execute("SELECT count(*) FROM memory WHERE kind = 'message'").fetchall()
    assert count == 120 + 2 * 40  # the timed texts and the warm-up batches
    assert "Server / bare embedder" in markdown(result)
