"""Scheduled condensation of old memories into summaries with provenance (not yet built)."""
