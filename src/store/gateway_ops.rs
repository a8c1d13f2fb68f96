//! Store operations of the gateway framework: accounts, links, cursors, ID map, dedup, dead letters.

use super::{Result, Store, StoreError};
use crate::chain::{GroupId, TrxId};
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// Adapter configuration JSON, secrets included.
    pub config: serde_json::Value,
    pub created_at: u64,
}

#[derive(Debug, Clone)]
pub struct LinkRecord {
    pub id: String,
    pub group_id: GroupId,
    pub gateway_id: String,
    pub chat: String,
    pub direction: String,
    pub nick_format: String,
    pub backfill: u64,
    pub options: serde_json::Value,
    pub delivered_seq: i64,
    pub created_at: u64,
}

/// One remote message that carries (part of) a trx on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePart {
    pub chat: String,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub seq: i64,
    pub trx_id: TrxId,
    pub error: String,
    pub attempts: u32,
    pub failed_at: u64,
    pub retry: bool,
}

/// What a delivery did to the ID map, committed with the cursor.
#[derive(Debug, Clone)]
pub enum MapChange {
    /// Delivered as these parts (replaces earlier parts of the same trx: edits).
    Set {
        trx_id: TrxId,
        parts: Vec<RemotePart>,
    },
    /// The remote copies are gone (delete).
    Remove {
        trx_id: TrxId,
    },
    None,
}

fn b32(v: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

fn link_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LinkRecord, Vec<u8>)> {
    let gid: Vec<u8> = r.get(1)?;
    let options: String = r.get(7)?;
    Ok((
        LinkRecord {
            id: r.get(0)?,
            group_id: GroupId([0; 32]),
            gateway_id: r.get(2)?,
            chat: r.get(3)?,
            direction: r.get(4)?,
            nick_format: r.get(5)?,
            backfill: r.get::<_, i64>(6)? as u64,
            options: serde_json::from_str(&options).unwrap_or_default(),
            delivered_seq: r.get(8)?,
            created_at: r.get::<_, i64>(9)? as u64,
        },
        gid,
    ))
}

const LINK_COLS: &str =
    "id, group_id, gateway_id, chat, direction, nick_format, backfill, options, delivered_seq, created_at";

fn query_links(
    c: &Connection,
    where_: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<LinkRecord>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {LINK_COLS} FROM links {where_} ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map(p, link_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(mut l, gid)| {
            l.group_id = GroupId(b32(gid, "link group")?);
            Ok(l)
        })
        .collect()
}

impl Store {
    pub async fn insert_account(&self, a: AccountRecord) -> Result<()> {
        self.write(move |c| {
            let taken: bool = c
                .query_row("SELECT 1 FROM gateway_accounts WHERE name = ?1", [&a.name], |_| Ok(()))
                .optional()?
                .is_some();
            if taken {
                return Err(StoreError::Conflict(format!("a gateway named {:?} exists", a.name)));
            }
            c.execute(
                "INSERT INTO gateway_accounts (id, kind, name, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.id, a.kind, a.name, a.config.to_string(), a.created_at as i64],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn load_accounts(&self) -> Result<Vec<AccountRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, kind, name, config, created_at FROM gateway_accounts ORDER BY created_at, id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AccountRecord {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        name: r.get(2)?,
                        config: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                        created_at: r.get::<_, i64>(4)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Removes an account that no link uses.
    pub async fn delete_account(&self, id: String) -> Result<bool> {
        self.write(move |c| {
            let used: i64 = c.query_row(
                "SELECT COUNT(*) FROM links WHERE gateway_id = ?1",
                [&id],
                |r| r.get(0),
            )?;
            if used > 0 {
                return Err(StoreError::Conflict(format!(
                    "gateway {id} is used by {used} link(s); remove them first"
                )));
            }
            Ok(c.execute("DELETE FROM gateway_accounts WHERE id = ?1", [&id])? == 1)
        })
        .await
    }

    pub async fn insert_link(&self, l: LinkRecord) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO links (id, group_id, gateway_id, chat, direction, nick_format, backfill, options, delivered_seq, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    l.id,
                    &l.group_id.0[..],
                    l.gateway_id,
                    l.chat,
                    l.direction,
                    l.nick_format,
                    l.backfill as i64,
                    l.options.to_string(),
                    l.delivered_seq,
                    l.created_at as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn load_links(&self) -> Result<Vec<LinkRecord>> {
        self.read(|c| query_links(c, "", &[])).await
    }

    pub async fn load_link(&self, id: String) -> Result<Option<LinkRecord>> {
        self.read(move |c| Ok(query_links(c, "WHERE id = ?1", &[&id])?.pop()))
            .await
    }

    pub async fn update_link_chat(&self, id: String, chat: String) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE links SET chat = ?2 WHERE id = ?1",
                params![id, chat],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a link with its ID map and dead letters.
    pub async fn delete_link(&self, id: String) -> Result<bool> {
        self.write(move |c| {
            c.execute("DELETE FROM id_map WHERE link_id = ?1", [&id])?;
            c.execute("DELETE FROM dead_letters WHERE link_id = ?1", [&id])?;
            Ok(c.execute("DELETE FROM links WHERE id = ?1", [&id])? == 1)
        })
        .await
    }

    /// The cursor from which the last `n` POST items of a group are delivered (backfill).
    pub async fn backfill_start(&self, gid: GroupId, n: u64) -> Result<i64> {
        self.read(move |c| {
            let last: i64 = c.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM trx WHERE group_id = ?1",
                [&gid.0[..]],
                |r| r.get(0),
            )?;
            if n == 0 {
                return Ok(last);
            }
            let start: Option<i64> = c
                .query_row(
                    "SELECT seq FROM trx WHERE group_id = ?1 AND kind = 0 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                    params![&gid.0[..], n as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(start.unwrap_or(0))
        })
        .await
    }

    /// Commits one delivery outcome: the ID map change and the link cursor, atomically.
    /// `dead` records the item as a dead letter instead (permanent failure).
    pub async fn commit_delivery(
        &self,
        link_id: String,
        seq: i64,
        change: MapChange,
        dead: Option<DeadLetter>,
    ) -> Result<()> {
        self.write(move |c| {
            match change {
                MapChange::Set { trx_id, parts } => {
                    c.execute("DELETE FROM id_map WHERE link_id = ?1 AND trx_id = ?2", params![link_id, &trx_id.0[..]])?;
                    for (i, p) in parts.iter().enumerate() {
                        c.execute(
                            "INSERT INTO id_map (link_id, trx_id, part, remote_chat, remote_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![link_id, &trx_id.0[..], i as i64, p.chat, p.id],
                        )?;
                    }
                }
                MapChange::Remove { trx_id } => {
                    c.execute("DELETE FROM id_map WHERE link_id = ?1 AND trx_id = ?2", params![link_id, &trx_id.0[..]])?;
                }
                MapChange::None => {}
            }
            if let Some(d) = dead {
                c.execute(
                    "INSERT OR REPLACE INTO dead_letters (link_id, seq, trx_id, error, attempts, failed_at, retry)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                    params![link_id, d.seq, &d.trx_id.0[..], d.error, d.attempts, d.failed_at as i64],
                )?;
            } else {
                // A retried dead letter that went through is no longer dead.
                c.execute("DELETE FROM dead_letters WHERE link_id = ?1 AND seq = ?2", params![link_id, seq])?;
            }
            c.execute(
                "UPDATE links SET delivered_seq = MAX(delivered_seq, ?2) WHERE id = ?1",
                params![link_id, seq],
            )?;
            Ok(())
        })
        .await
    }

    /// The remote parts of a trx on a link, in order.
    pub async fn remote_parts(&self, link_id: String, trx_id: TrxId) -> Result<Vec<RemotePart>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT remote_chat, remote_id FROM id_map WHERE link_id = ?1 AND trx_id = ?2 ORDER BY part",
            )?;
            let rows = stmt
                .query_map(params![link_id, &trx_id.0[..]], |r| {
                    Ok(RemotePart { chat: r.get(0)?, id: r.get(1)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// The trx an inbound remote message became (or that an outbound part carries), for a group.
    pub async fn trx_for_remote(
        &self,
        gateway_id: String,
        chat: String,
        remote_id: String,
        group: GroupId,
    ) -> Result<Option<TrxId>> {
        self.read(move |c| {
            let seen: Option<Vec<u8>> = c
                .query_row(
                    "SELECT trx_id FROM inbound_seen WHERE gateway_id = ?1 AND chat = ?2 AND remote_id = ?3 AND group_id = ?4",
                    params![gateway_id, chat, remote_id, &group.0[..]],
                    |r| r.get(0),
                )
                .optional()?;
            let found = match seen {
                Some(v) => Some(v),
                None => c
                    .query_row(
                        "SELECT m.trx_id FROM id_map m JOIN links l ON l.id = m.link_id
                         WHERE l.gateway_id = ?1 AND l.group_id = ?4 AND m.remote_chat = ?2 AND m.remote_id = ?3",
                        params![gateway_id, chat, remote_id, &group.0[..]],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            found.map(|v| Ok(TrxId(b32(v, "trx id")?))).transpose()
        })
        .await
    }

    pub async fn dead_letters(&self, link_id: String) -> Result<Vec<DeadLetter>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT seq, trx_id, error, attempts, failed_at, retry FROM dead_letters WHERE link_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt
                .query_map([&link_id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(seq, id, error, attempts, at, retry)| {
                    Ok(DeadLetter { seq, trx_id: TrxId(b32(id, "trx id")?), error, attempts, failed_at: at as u64, retry: retry != 0 })
                })
                .collect()
        })
        .await
    }

    /// Marks every dead letter of a link for another delivery attempt; returns how many.
    pub async fn retry_dead_letters(&self, link_id: String) -> Result<usize> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE dead_letters SET retry = 1 WHERE link_id = ?1",
                [&link_id],
            )?)
        })
        .await
    }

    /// Items (POST trx) of a group after `after`, how many, and the oldest one's timestamp.
    pub async fn backlog(&self, gid: GroupId, after: i64) -> Result<(u64, Option<u64>)> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*), MIN(timestamp) FROM trx WHERE group_id = ?1 AND seq > ?2 AND kind = 0",
                params![&gid.0[..], after],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?.map(|t| t as u64))),
            )?)
        })
        .await
    }
}
