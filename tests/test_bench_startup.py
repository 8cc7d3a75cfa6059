"""`python -m bench.startup` at its smallest: a first start, one restart, one bare load."""

from __future__ import annotations

from bench import startup


def test_startup_bench_times_a_first_start_a_restart_and_the_bare_load() -> None:
    report = startup.run(restarts=1)
    assert len(report["restart_s"]) == len(report["bare_load_s"]) == 1
    assert 0 < report["restart_median_s"] < 120 and 0 < report["bare_load_median_s"] < 120
    # the first start exports the model; a restart loads what it kept
    assert report["first_start_s"] > report["restart_median_s"]
    ratio = report["restart_median_s"] / report["bare_load_median_s"]
    assert abs(report["restart_over_bare_load"] - ratio) < 0.01
