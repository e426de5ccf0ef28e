-- Derived data, rebuilt per run after each ingest (families/cometbft/analytics/derive.py).
-- vote_arrivals: first receipt of each distinct vote (height, round, type, signer) at each receiver.
CREATE TABLE vote_arrivals (
    run_id          INTEGER NOT NULL,
    receiver        INTEGER NOT NULL,
    signer          INTEGER,            -- node of the signing validator, when the run has it
    height          BIGINT NOT NULL,
    round           INTEGER NOT NULL,
    vote_type       VARCHAR NOT NULL,
    validator_index INTEGER NOT NULL,
    validator       VARCHAR,
    first_ts        BIGINT NOT NULL,    -- receiver's clock
    signer_ts       BIGINT,             -- signer's clock
    latency_ns      BIGINT,             -- first_ts - signer_ts
    receipts        INTEGER NOT NULL,   -- how many times the receiver got this vote
    first_peer      VARCHAR             -- who delivered it first
);

-- deliveries: one consensus message sent by `sender` and received by `receiver` (one hop).
CREATE TABLE deliveries (
    run_id          INTEGER NOT NULL,
    sender          INTEGER NOT NULL,
    receiver        INTEGER NOT NULL,
    msg_type        VARCHAR NOT NULL,
    height          BIGINT,
    round           INTEGER,
    vote_type       VARCHAR,
    validator_index INTEGER,
    part_index      INTEGER,
    sent_ts         BIGINT NOT NULL,    -- sender's clock
    recv_ts         BIGINT,             -- receiver's clock; NULL = never received
    latency_ns      BIGINT,             -- recv_ts - sent_ts, on the two clocks
    matched_by      VARCHAR NOT NULL    -- 'wire' (identical bytes) or 'logical' (same message key)
);

-- unmatched receipts (a receive whose send is not in the run: sender's log missing, or rotated away)
CREATE TABLE unmatched_receipts (
    run_id    INTEGER NOT NULL,
    sender    INTEGER,
    receiver  INTEGER NOT NULL,
    msg_type  VARCHAR NOT NULL,
    count     BIGINT NOT NULL
);
