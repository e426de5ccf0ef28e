-- Followed networks (bftscope serve): owned like projects. A network's events are the run 'net:<name>', so the
-- name is unique across users. endpoints: a JSON array of RPC URLs as given (credentials included: they are
-- needed to connect, and the API shows them redacted); alerts: a JSON object of the owner's threshold overrides.
CREATE TABLE networks (
    id          VARCHAR PRIMARY KEY,
    user_id     VARCHAR NOT NULL,
    name        VARCHAR NOT NULL UNIQUE,
    chain       VARCHAR NOT NULL,
    endpoints   VARCHAR NOT NULL,
    alerts      VARCHAR NOT NULL DEFAULT '{}',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
