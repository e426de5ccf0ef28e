"""Validator sets per height and CometBFT's proposer priorities (docs/live.md)."""
