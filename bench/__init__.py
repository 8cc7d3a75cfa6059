"""Benchmarks for the memory server: `bench.latency` (speed) and `bench.quality` (recall)."""
