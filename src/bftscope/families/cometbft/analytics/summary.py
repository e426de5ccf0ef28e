"""A run at a glance (kept for its import path): the summary is chain-neutral, :mod:`bftscope.analytics.summary`;
the CometBFT family describes its nodes in it (``CometBFT.summary_node``)."""

from __future__ import annotations

from bftscope.analytics.summary import run_summary

__all__ = ["run_summary"]
