-- What a live run keeps of a height after its raw events are pruned (docs/live.md "Retention"): written by the
-- chain family just before retention removes the height's events, pruned with the summary window.

-- The missed-votes rows of the height, as families/cometbft/missed/votes.py computed them from the events.
CREATE TABLE missed_votes (
    run_id        INTEGER NOT NULL,
    height        BIGINT NOT NULL,
    round         INTEGER NOT NULL,
    validator     VARCHAR NOT NULL,
    type          VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    power         BIGINT,
    solo          BOOLEAN NOT NULL,
    commit_round  BOOLEAN NOT NULL,
    idx           INTEGER
);

-- One row per height: how it went, across every observer of the run.
CREATE TABLE height_summaries (
    run_id        INTEGER NOT NULL,
    height        BIGINT NOT NULL,
    rounds        INTEGER,          -- rounds entered (highest round + 1)
    commit_round  INTEGER,          -- the round the block was committed in
    first_ts      BIGINT,           -- the first event of the height at any observer (ns)
    commit_ts     BIGINT,           -- the first commit of the height at any observer (ns)
    duration_ns   BIGINT,           -- commit_ts - first_ts
    proposer      VARCHAR,          -- the proposer of the commit round (its new_round step)
    block_hash    VARCHAR,          -- the block committed
    observers     INTEGER,          -- nodes with an event at the height
    votes_seen    BIGINT,           -- vote events of the height (received, own, added, gossiped)
    voted         INTEGER,          -- missed-votes rows by status (prevotes and precommits)
    late          INTEGER,
    nil           INTEGER,
    absent        INTEGER,
    unknown       INTEGER,
    ended_nodes   VARCHAR,          -- observers that recorded the height's end (height_end): a JSON list
    gaps          VARCHAR           -- observation gaps and node restarts recorded at the height, as JSON rows
                                    -- [node, kind, ts, height, extra]: a gap into later heights outlives it
);
