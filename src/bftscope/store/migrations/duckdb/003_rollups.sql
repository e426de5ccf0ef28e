-- Rollups: each metric's whole-run answer, computed after every ingest (families/cometbft/analytics/rollups.py), so the
-- default (whole-run) query of every metric is a lookup however large the run.
CREATE TABLE rollups (
    run_id  INTEGER NOT NULL,
    name    VARCHAR NOT NULL,
    value   VARCHAR NOT NULL,   -- the answer as JSON, exactly as the API serves it
    PRIMARY KEY (run_id, name)
);
