"""`kill -9` during idempotent writes, then a restart and a retry of every request: nothing is
lost, nothing is stored twice, everything answered is searchable (`bench.crash`, short form).

Real server processes and real HTTP; on SQLite, and on a fresh PostgreSQL database when
`MEMORY_TEST_POSTGRES_URL` is set. One trial per database: each restart costs a model load.
"""

from __future__ import annotations

from pathlib import Path

from bench.crash import Options, markdown, run


def test_no_write_is_lost_or_doubled_by_a_kill(tmp_path: Path, database_url: str | None) -> None:
    result = run(trials=1, database_url=database_url, data_dir=tmp_path, options=Options(seed=3))
    summary = markdown([result])
    # not vacuous: the server died with requests unanswered, and some were answered before
    assert result["trials_killed_in_flight"] == 1, summary
    assert result["unanswered_at_kill"] >= 1 and result["acknowledged_before_kill"] >= 1, summary
    assert result["retried"] == result["requests_sent"], summary
    assert result["unresolved_retries"] == 0, result["unresolved_errors"]
    assert result["duplicates"] == 0, summary
    assert result["mismatched_replays"] == 0, summary
    assert result["lost"] == 0, summary
    assert result["unsearchable"] == 0, summary
    # every request answered before the kill is answered again from the stored response
    assert result["retries_replayed"] >= result["acknowledged_before_kill"], summary
