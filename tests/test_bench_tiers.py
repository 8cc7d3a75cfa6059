"""`python -m bench.tiers` runs at a tiny size and reports both index configurations."""

from __future__ import annotations

from bench import tiers


def test_tier_bench_times_both_index_configurations_at_a_tiny_size() -> None:
    results = tiers.run(memories=400, users=2, calls=3, postgres=None)
    assert list(results) == ["with the m0009 indexes", "without them"]
    for times in results.values():
        assert set(times) == {"thread", "facts"} and all(t > 0 for t in times.values())
    table = tiers.report(results, 400, 2, "SQLite")
    assert "| with the m0009 indexes |" in table and "| without them |" in table
    assert "400 memories on SQLite" in table and "among 2 users" in table
