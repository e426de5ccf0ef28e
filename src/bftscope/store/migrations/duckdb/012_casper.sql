-- The Casper family's event store (docs/casper.md "Store"). A followed Casper network is the run 'net:<name>'
-- (chain 'casper'). Two levels of de-duplication, both enforced by keys here:
--   the event: one row per (source, node event id, type, entity key) in casper_event_log — what each node sent;
--   the entity: one row per entity key in the table of its type — the same block from three nodes is one block.
-- Rows are only ever inserted, never updated: any arrival order gives the same rows. The keys are checked by the
-- one writer (families/casper/store.py) inside its transaction, against the recent range of each table (heights
-- and eras only grow, so DuckDB's per-row-group min/max skip the rest), not by PRIMARY KEY indexes: DuckDB keeps
-- those in memory, and they would grow with every event ever stored.

-- Every event received from every node (not ApiVersion). out_id: bftscope's own id of the entity this event
-- created (the first arrival of a new entity), NULL when the entity was already stored. received_ns: this
-- machine's clock at receipt (epoch ns).
CREATE TABLE casper_event_log (
    run_id       INTEGER NOT NULL,
    source       VARCHAR NOT NULL,
    channel      VARCHAR NOT NULL,
    event_id     BIGINT NOT NULL,   -- the node's SSE id; -1 when the node sent none
    type         VARCHAR NOT NULL,
    key          VARCHAR NOT NULL,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT
);

-- The re-broadcast log and the raw payloads: one row per stored entity, in the order bftscope stored them.
-- out_id is per run, from 1, increasing; raw is the node's JSON exactly as received (what REST "raw" routes and
-- the SSE re-broadcast send).
CREATE TABLE casper_payloads (
    run_id       INTEGER NOT NULL,
    out_id       BIGINT NOT NULL,
    type         VARCHAR NOT NULL,
    key          VARCHAR NOT NULL,
    channel      VARCHAR NOT NULL,   -- the 1.x channel of its type: main, deploys or sigs
    source       VARCHAR NOT NULL,   -- the node it came from first
    received_ns  BIGINT NOT NULL,
    bytes        INTEGER NOT NULL,
    raw          VARCHAR NOT NULL
);

CREATE TABLE casper_blocks (
    run_id           INTEGER NOT NULL,
    block_hash       VARCHAR NOT NULL,
    height           BIGINT NOT NULL,
    era_id           BIGINT NOT NULL,
    timestamp_ms     BIGINT NOT NULL,
    proposer         VARCHAR NOT NULL,
    parent_hash      VARCHAR NOT NULL,
    state_root_hash  VARCHAR,
    deploy_count     INTEGER NOT NULL,
    transfer_count   INTEGER NOT NULL,
    era_end          BOOLEAN NOT NULL,
    protocol_version VARCHAR,
    received_ns      BIGINT NOT NULL,   -- first receipt, any node
    out_id           BIGINT NOT NULL
);
CREATE INDEX casper_blocks_height ON casper_blocks (run_id, height);

-- A block's deploy and transfer hashes, in block order (the seed's /block/{hash} "deploys").
CREATE TABLE casper_block_deploys (
    run_id       INTEGER NOT NULL,
    block_hash   VARCHAR NOT NULL,
    deploy_hash  VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,   -- 'deploy' | 'transfer'
    ordinal      INTEGER NOT NULL
);

-- The validator weights an era-end block sets for the next era (era_id = the block's era + 1).
CREATE TABLE casper_era_weights (
    run_id      INTEGER NOT NULL,
    era_id      BIGINT NOT NULL,
    validator   VARCHAR NOT NULL,
    weight      VARCHAR NOT NULL,    -- U512 as a decimal string
    block_hash  VARCHAR NOT NULL
);

CREATE TABLE casper_deploys_accepted (
    run_id       INTEGER NOT NULL,
    deploy_hash  VARCHAR NOT NULL,
    account      VARCHAR NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    ttl_ms       BIGINT NOT NULL,
    chain_name   VARCHAR,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT NOT NULL
);

CREATE TABLE casper_deploys_processed (
    run_id        INTEGER NOT NULL,
    deploy_hash   VARCHAR NOT NULL,
    account       VARCHAR NOT NULL,
    block_hash    VARCHAR NOT NULL,
    timestamp_ms  BIGINT,
    success       BOOLEAN NOT NULL,
    cost          VARCHAR,           -- U512 as a decimal string
    error_message VARCHAR,
    received_ns   BIGINT NOT NULL,
    out_id        BIGINT NOT NULL
);

CREATE TABLE casper_deploys_expired (
    run_id       INTEGER NOT NULL,
    deploy_hash  VARCHAR NOT NULL,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT NOT NULL
);

CREATE TABLE casper_faults (
    run_id       INTEGER NOT NULL,
    era_id       BIGINT NOT NULL,
    public_key   VARCHAR NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT NOT NULL
);

CREATE TABLE casper_signatures (
    run_id       INTEGER NOT NULL,
    block_hash   VARCHAR NOT NULL,
    public_key   VARCHAR NOT NULL,
    era_id       BIGINT NOT NULL,
    signature    VARCHAR NOT NULL,
    received_ns  BIGINT NOT NULL,   -- first receipt, any node (per node: casper_event_log)
    out_id       BIGINT NOT NULL
);

CREATE TABLE casper_steps (
    run_id       INTEGER NOT NULL,
    era_id       BIGINT NOT NULL,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT NOT NULL
);

-- A node's Shutdown, per node (the entity is the node's event: source and its id).
CREATE TABLE casper_shutdowns (
    run_id       INTEGER NOT NULL,
    source       VARCHAR NOT NULL,
    event_id     BIGINT NOT NULL,
    received_ns  BIGINT NOT NULL,
    out_id       BIGINT NOT NULL
);
