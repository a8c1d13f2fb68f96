-- 0003: gateway accounts, links, the ID map, inbound dedup, dead letters.
-- The outbound queue of a link is its group's chain after `links.delivered_seq`.
CREATE TABLE gateway_accounts (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    config        TEXT NOT NULL,             -- JSON, including secrets (never returned by the API)
    created_at    INTEGER NOT NULL
);

CREATE TABLE links (
    id            TEXT PRIMARY KEY,
    group_id      BLOB NOT NULL,
    gateway_id    TEXT NOT NULL REFERENCES gateway_accounts (id),
    chat          TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('in', 'out', 'both')),
    nick_format   TEXT NOT NULL,
    backfill      INTEGER NOT NULL DEFAULT 0,
    options       TEXT NOT NULL DEFAULT '{}', -- JSON: per-link adapter options (webhook format/secret…)
    delivered_seq INTEGER NOT NULL DEFAULT 0, -- every item up to this cursor is delivered or dead-lettered
    created_at    INTEGER NOT NULL
);

CREATE TABLE id_map (
    link_id       TEXT NOT NULL,
    trx_id        BLOB NOT NULL,
    part          INTEGER NOT NULL,
    remote_chat   TEXT NOT NULL,
    remote_id     TEXT NOT NULL,
    PRIMARY KEY (link_id, trx_id, part)
) WITHOUT ROWID;
CREATE INDEX id_map_by_remote ON id_map (link_id, remote_id);

CREATE TABLE inbound_seen (
    gateway_id    TEXT NOT NULL,
    chat          TEXT NOT NULL,
    remote_id     TEXT NOT NULL,
    group_id      BLOB NOT NULL,
    trx_id        BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, chat, remote_id, group_id)
) WITHOUT ROWID;

CREATE TABLE dead_letters (
    link_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    trx_id        BLOB NOT NULL,
    error         TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    failed_at     INTEGER NOT NULL,
    retry         INTEGER NOT NULL DEFAULT 0,  -- 1: an operator asked to deliver it again
    PRIMARY KEY (link_id, seq)
) WITHOUT ROWID;
