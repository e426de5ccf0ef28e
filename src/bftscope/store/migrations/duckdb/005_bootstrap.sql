-- Control-plane facts that must outlive the rows they are about. 'bootstrapped': a user has existed, so the
-- anonymous first-user bootstrap is closed for good (deleting every user must not reopen it).
CREATE TABLE control_state (
    key         VARCHAR PRIMARY KEY,
    value       VARCHAR NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

INSERT INTO control_state SELECT 'bootstrapped', 'true', now()::TIMESTAMP WHERE EXISTS (SELECT 1 FROM users);
