"""Chain-neutral analytics scaffolding: time windows, a run's counts and summary, and the rollup engine.

Families register their metrics (:meth:`~bftscope.families.base.ChainFamily.rollups`); what every
family shares — counting a run's events, summarising it, storing and serving rollups — lives here.
"""
