-- Ingest state that survives a crash (docs/ingest.md).
-- runs.derived_version: the version of the derived tables and rollups the run holds, written only after
-- both were rebuilt; NULL while events changed since (an ingest is writing, or one died before
-- finishing). Readers and the next ingest rebuild a run whose version is not the current one.
ALTER TABLE runs ADD COLUMN derived_version INTEGER;
-- Runs ingested before this migration finished their rollups if they have any (rollups come last).
UPDATE runs SET derived_version = 1 WHERE id IN (SELECT DISTINCT run_id FROM rollups);
-- sources.start_offset: where reading began (> 0 when the source continues an earlier one that was
-- the beginning of the same, since grown, file). prefix_len/prefix_hash: the length and xxh3-128 of the
-- file's prefix this source completes, up to its last whole line, so a later, longer version of the
-- file is recognised and only its new bytes are read. NULL where a file cannot grow this way (.gz, WAL).
ALTER TABLE sources ADD COLUMN start_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN prefix_len BIGINT;
ALTER TABLE sources ADD COLUMN prefix_hash VARCHAR;
