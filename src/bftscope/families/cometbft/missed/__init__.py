"""Missed votes per height, round, validator and type (docs/live.md)."""
