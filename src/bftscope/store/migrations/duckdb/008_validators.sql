-- Validator sets with history (families/cometbft/validators/history.py, docs/live.md "Validator sets").
-- validator_sets: the set as it took effect at `height`, written only at heights where membership or
-- voting power changed; the set at height h is the rows of the greatest height <= h. `source` says where
-- it came from: 'genesis' and 'validator_update' rows are derived (rebuilt with the run's derived tables),
-- 'rpc' rows (the live follower's /validators) are kept as fetched.
CREATE TABLE validator_sets (
    run_id            INTEGER NOT NULL,
    height            BIGINT NOT NULL,
    validator         VARCHAR NOT NULL,   -- address, upper-case hex
    voting_power      BIGINT NOT NULL,
    proposer_priority BIGINT,             -- NULL when not known
    idx               INTEGER NOT NULL,   -- position in the set (CometBFT order: power desc, address asc)
    source            VARCHAR NOT NULL
);

-- validator_priorities: every validator's proposer priority at a height, as a JSON array in set order.
CREATE TABLE validator_priorities (
    run_id      INTEGER NOT NULL,
    height      BIGINT NOT NULL,
    priorities  VARCHAR NOT NULL,
    source      VARCHAR NOT NULL
);
