-- Runs, nodes, ingested sources and the wide events table (docs/event-model.md).
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    chain       VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    meta        VARCHAR
);

CREATE TABLE nodes (
    run_id      INTEGER NOT NULL,
    node        INTEGER NOT NULL,
    label       VARCHAR NOT NULL,
    p2p_id      VARCHAR,
    validator   VARCHAR,
    moniker     VARCHAR,
    meta        VARCHAR,
    PRIMARY KEY (run_id, node)
);

CREATE TABLE sources (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL,
    node          INTEGER NOT NULL,
    name          VARCHAR NOT NULL,
    format        VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    size          BIGINT NOT NULL,
    status        VARCHAR NOT NULL,
    lines         BIGINT NOT NULL DEFAULT 0,
    events        BIGINT NOT NULL DEFAULT 0,
    skipped       VARCHAR,
    warnings      VARCHAR,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE events (
    run_id          INTEGER NOT NULL,
    id              BIGINT NOT NULL,
    node            INTEGER NOT NULL,
    source          INTEGER NOT NULL,
    ts              BIGINT NOT NULL,
    kind            VARCHAR NOT NULL,
    height          BIGINT,
    round           INTEGER,
    step            VARCHAR,
    vote_type       VARCHAR,
    msg_type        VARCHAR,
    validator       VARCHAR,
    validator_index INTEGER,
    part_index      INTEGER,
    peer            VARCHAR,
    block_hash      VARCHAR,
    signer_ts       BIGINT,
    msg_key         BIGINT,
    size            INTEGER,
    seq             BIGINT,
    extra           VARCHAR
);
