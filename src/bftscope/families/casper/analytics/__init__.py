"""The Casper family's answers (docs/casper.md "Analytics"), one module per question: block times and eras,
proposer share against weight, finality-signature arrival per validator and node, deploy latency; and the
report that puts them together. Every answer reads the family's tables (``store.py``) over a time window of
chain time (:mod:`.window`); percentiles are exact with linear interpolation (docs/metrics.md)."""

__all__: list[str] = []
