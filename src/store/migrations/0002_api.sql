-- 0002: idempotency keys, scoped API tokens, and the refs index (reply/like/update/delete → target).
CREATE TABLE idempotency (
    group_id      BLOB NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,           -- SHA-256 of the request body: a reused key must match
    trx_id        BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (group_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    hash          BLOB NOT NULL UNIQUE,    -- SHA-256 of the token; the token itself is never stored
    scopes        TEXT NOT NULL,           -- JSON array of scope strings
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

CREATE TABLE refs (
    trx_id        BLOB PRIMARY KEY,
    group_id      BLOB NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('reply', 'like', 'update', 'delete')),
    target        BLOB NOT NULL,
    sender        BLOB NOT NULL,
    seq           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX refs_by_target ON refs (target, seq);
