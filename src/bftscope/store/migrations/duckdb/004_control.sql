-- Control plane: users and their API tokens, projects, simulations (each backed by a run) and their files.
CREATE TABLE users (
    id          VARCHAR PRIMARY KEY,          -- 24 hex characters, like the original's ObjectIDs
    username    VARCHAR NOT NULL UNIQUE,
    email       VARCHAR NOT NULL UNIQUE,
    is_admin    BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    token_hash  VARCHAR PRIMARY KEY,          -- sha256 of the token; the token itself is never stored
    user_id     VARCHAR NOT NULL,
    prefix      VARCHAR NOT NULL,             -- first characters, to tell tokens apart in listings
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE projects (
    id          VARCHAR PRIMARY KEY,
    user_id     VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    description VARCHAR NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE simulations (
    id                VARCHAR PRIMARY KEY,
    project_id        VARCHAR NOT NULL,
    user_id           VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,
    description       VARCHAR NOT NULL DEFAULT '',
    status            VARCHAR NOT NULL,       -- logfile_required | processing | processed | failed
    processing_status VARCHAR,                -- pending | processing | completed | failed
    processed_files   INTEGER,
    total_files       INTEGER,
    processing_ms     BIGINT,
    progress          DOUBLE,                 -- 0..1 while processing
    error_message     VARCHAR,
    processed_at      TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

CREATE TABLE simulation_files (
    simulation_id     VARCHAR NOT NULL,
    stored_name       VARCHAR NOT NULL,       -- relative to the simulation's upload folder
    original_filename VARCHAR NOT NULL,
    size              BIGINT NOT NULL,
    sha256            VARCHAR NOT NULL,
    uploaded_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (simulation_id, stored_name)
);
