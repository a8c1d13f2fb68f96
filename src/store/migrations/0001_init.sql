-- 0001: groups, blocks, included trx, pending trx, rejected trx.
CREATE TABLE groups (
    group_id     BLOB PRIMARY KEY,
    genesis      BLOB NOT NULL,            -- canonical encoding of the signed Genesis
    group_key    BLOB,                     -- NULL: this node cannot read the group (relay-only)
    bootstrap    TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL DEFAULT 'joined' CHECK (status IN ('joined', 'left')),
    joined_at    INTEGER NOT NULL
);

CREATE TABLE blocks (
    group_id     BLOB NOT NULL,
    height       INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    hash         BLOB NOT NULL,
    prev_hash    BLOB NOT NULL,
    timestamp    INTEGER NOT NULL,
    producer     BLOB NOT NULL,
    signature    BLOB NOT NULL,
    trx_count    INTEGER NOT NULL,
    PRIMARY KEY (group_id, height)
) WITHOUT ROWID;

-- seq is the global, never reused stream cursor; within a group it follows chain order.
CREATE TABLE trx (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    trx_id       BLOB NOT NULL UNIQUE,
    group_id     BLOB NOT NULL,
    height       INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    sender       BLOB NOT NULL,
    timestamp    INTEGER NOT NULL,
    data         BLOB NOT NULL             -- canonical encoding of the signed Trx
);
CREATE UNIQUE INDEX trx_by_position ON trx (group_id, height, idx);
CREATE INDEX trx_by_group_seq ON trx (group_id, seq);

CREATE TABLE pending (
    trx_id       BLOB PRIMARY KEY,
    group_id     BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    data         BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_by_group ON pending (group_id, received_at);

CREATE TABLE rejected (
    trx_id       BLOB PRIMARY KEY,
    group_id     BLOB NOT NULL,
    reason       TEXT NOT NULL,
    rejected_at  INTEGER NOT NULL
) WITHOUT ROWID;
