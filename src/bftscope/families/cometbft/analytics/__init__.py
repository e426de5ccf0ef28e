"""CometBFT analytics over the store: derived tables, restarts and peer ids rebuilt after each ingest; the
original Analyzer's metrics (:mod:`.analyzer`), bftscope's own answers (:mod:`.answers`), their rollups,
and the report built from them."""
