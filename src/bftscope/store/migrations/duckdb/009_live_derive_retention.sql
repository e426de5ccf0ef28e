-- Live runs (docs/live.md "Live analytics", "Retention").
-- unmatched_receipts by height: a live run's new heights replace their own rows (derive from a height on), and
-- retention removes the rows of the heights it prunes. Rows derived before this migration have NULL; derived
-- version 4 rebuilds them.
ALTER TABLE unmatched_receipts ADD COLUMN height BIGINT;

-- Where retention cut a run's raw data: every height below `height` had all its events before `ts` (ns). The
-- marks date heights after their events are gone, so summaries kept longer can be pruned by age too.
CREATE TABLE retention_marks (
    run_id  INTEGER NOT NULL,
    height  BIGINT NOT NULL,
    ts      BIGINT NOT NULL
);
