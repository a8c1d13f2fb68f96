//! Typed store operations used by the node: groups, pending trx, block commits and reads.

use super::{Result, Store, StoreError};
use crate::chain::encoding::{decode, encode};
use crate::chain::{Block, BlockBody, BlockHash, Genesis, GroupId, Head, Trx, TrxId, Verified};
use crate::crypto::{GroupKey, Signature};
use rusqlite::{params, Connection, OptionalExtension};

/// A joined group as stored.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub genesis: Genesis,
    pub group_key: Option<GroupKey>,
    pub bootstrap: Vec<String>,
    pub joined_at: u64,
    pub head: Head,
    /// Cursor of the latest included trx (0 if none).
    pub last_cursor: i64,
}

/// A page of included trx and whether more may follow (the page hit its row limit or its byte
/// budget).
#[derive(Debug, Clone)]
pub struct TrxPage {
    pub rows: Vec<IncludedTrx>,
    pub more: bool,
}

/// One included trx with its position.
#[derive(Debug, Clone)]
pub struct IncludedTrx {
    pub seq: i64,
    pub height: u64,
    pub idx: u32,
    pub trx: Trx,
}

/// Where a trx stands.
#[derive(Debug, Clone)]
pub enum TrxStatus {
    Pending { trx: Trx, received_at: u64 },
    Included(IncludedTrx),
    Rejected { group_id: GroupId, reason: String },
}

/// Result of committing a block: each trx's stream cursor.
#[derive(Debug, Clone)]
pub struct Committed {
    pub group_id: GroupId,
    /// The group's last cursor before this block (0 if none): lets subscribers detect gaps.
    pub prev_seq: i64,
    pub height: u64,
    pub hash: BlockHash,
    pub trx: Vec<(TrxId, i64)>,
}

/// Block header as stored, with its trx ids (for listings).
#[derive(Debug, Clone)]
pub struct BlockSummary {
    pub height: u64,
    pub hash: BlockHash,
    pub prev_hash: BlockHash,
    pub timestamp: u64,
    pub producer: [u8; 32],
    pub signature: Signature,
    pub trx_ids: Vec<TrxId>,
}

fn blob32(v: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

fn decode_trx(data: &[u8]) -> Result<Trx> {
    decode(data).map_err(|e| StoreError::Corrupt(format!("stored trx: {e}")))
}

pub enum JoinOutcome {
    Created,
    AlreadyJoined,
    Rejoined,
}

impl Store {
    /// Records a verified genesis as a joined group (idempotent: re-joining a left group
    /// restores it and keeps its data; a key learned later is kept).
    pub async fn join_group(
        &self,
        genesis: &Verified<Genesis>,
        key: Option<GroupKey>,
        bootstrap: Vec<String>,
        now_ms: u64,
    ) -> Result<JoinOutcome> {
        let gid = genesis.group_id();
        let bytes = encode(&**genesis);
        let key_bytes = key.as_ref().map(|k| k.as_bytes().to_vec());
        let bootstrap = serde_json::to_string(&bootstrap).unwrap_or_else(|_| "[]".into());
        self.write(move |c| {
            let existing: Option<String> = c
                .query_row(
                    "SELECT status FROM groups WHERE group_id = ?1",
                    [&gid.0[..]],
                    |r| r.get(0),
                )
                .optional()?;
            match existing.as_deref() {
                None => {
                    c.execute(
                        "INSERT INTO groups (group_id, genesis, group_key, bootstrap, status, joined_at)
                         VALUES (?1, ?2, ?3, ?4, 'joined', ?5)",
                        params![&gid.0[..], bytes, key_bytes, bootstrap, now_ms as i64],
                    )?;
                    Ok(JoinOutcome::Created)
                }
                Some(status) => {
                    c.execute(
                        "UPDATE groups SET status = 'joined',
                                group_key = COALESCE(group_key, ?2), bootstrap = ?3
                         WHERE group_id = ?1",
                        params![&gid.0[..], key_bytes, bootstrap],
                    )?;
                    Ok(if status == "joined" {
                        JoinOutcome::AlreadyJoined
                    } else {
                        JoinOutcome::Rejoined
                    })
                }
            }
        })
        .await
    }

    /// Marks a group as left; with `purge` its blocks, trx and pending trx are deleted too.
    pub async fn leave_group(&self, gid: GroupId, purge: bool) -> Result<bool> {
        self.write(move |c| {
            let g = &gid.0[..];
            let n = if purge {
                c.execute("DELETE FROM trx WHERE group_id = ?1", [g])?;
                c.execute("DELETE FROM blocks WHERE group_id = ?1", [g])?;
                c.execute("DELETE FROM pending WHERE group_id = ?1", [g])?;
                c.execute("DELETE FROM rejected WHERE group_id = ?1", [g])?;
                c.execute("DELETE FROM groups WHERE group_id = ?1", [g])?
            } else {
                c.execute(
                    "UPDATE groups SET status = 'left' WHERE group_id = ?1 AND status = 'joined'",
                    [g],
                )?
            };
            Ok(n > 0)
        })
        .await
    }

    /// All joined groups with their heads. Cost is per group, not per trx (start-up path).
    pub async fn load_groups(&self) -> Result<Vec<GroupRecord>> {
        self.read(|c| query_groups(c, None)).await
    }

    /// One joined group with its head.
    pub async fn load_group(&self, gid: GroupId) -> Result<Option<GroupRecord>> {
        self.read(move |c| Ok(query_groups(c, Some(gid))?.pop()))
            .await
    }

    /// Stores a verified trx as pending. Fails with `Duplicate` if it is pending or included.
    pub async fn insert_pending(&self, trx: &Verified<Trx>, now_ms: u64) -> Result<()> {
        self.submit_pending(trx, now_ms, None).await.map(|_| ())
    }

    /// Pending trx of a group in arrival order (start-up: refill the producer queue).
    pub async fn load_pending(&self, gid: GroupId) -> Result<Vec<Trx>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT data FROM pending WHERE group_id = ?1 ORDER BY received_at, trx_id",
            )?;
            let rows = stmt
                .query_map([&gid.0[..]], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter().map(|d| decode_trx(d)).collect()
        })
        .await
    }

    /// Stores a verified block and its trx, removing them from pending, in one transaction.
    /// Fails (storing nothing) if the height is taken or any trx was already included.
    pub async fn commit_block(&self, block: &Verified<Block>) -> Result<Committed> {
        self.commit_block_with_refs(block, Vec::new()).await
    }

    /// As `commit_block`, also recording which earlier item each trx refers to
    /// (`(trx, kind, target)`, computed by the caller from the decrypted payloads).
    pub async fn commit_block_with_refs(
        &self,
        block: &Verified<Block>,
        refs: BlockRefs,
    ) -> Result<Committed> {
        let rows = BlockRows::new(block, refs);
        self.write(move |c| rows.insert(c)).await
    }

    /// Included trx of a group after cursor `after` (exclusive), in chain order.
    pub async fn list_trx(
        &self,
        gid: GroupId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<IncludedTrx>> {
        Ok(self
            .list_trx_within(gid, after, limit, usize::MAX)
            .await?
            .rows)
    }

    /// Like [`Store::list_trx`], but stops after the row whose stored bytes reach `max_bytes`
    /// (at least one row), so that a page of large trx stays within a memory budget.
    pub async fn list_trx_within(
        &self,
        gid: GroupId,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<TrxPage> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, height, idx, data FROM trx
                 WHERE group_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![&gid.0[..], after, limit as i64])?;
            page_rows(&mut rows, limit, max_bytes)
        })
        .await
    }

    /// Included trx of a group with `after < seq < before`, newest first (reverse paging), within
    /// a byte budget like [`Store::list_trx_within`].
    pub async fn list_trx_desc_within(
        &self,
        gid: GroupId,
        before: i64,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<TrxPage> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, height, idx, data FROM trx
                 WHERE group_id = ?1 AND seq < ?2 AND seq > ?3 ORDER BY seq DESC LIMIT ?4",
            )?;
            let mut rows = stmt.query(params![&gid.0[..], before, after, limit as i64])?;
            page_rows(&mut rows, limit, max_bytes)
        })
        .await
    }

    pub async fn trx_status(&self, id: TrxId) -> Result<Option<TrxStatus>> {
        self.read(move |c| {
            let k = &id.0[..];
            if let Some((seq, height, idx, data)) = c
                .query_row(
                    "SELECT seq, height, idx, data FROM trx WHERE trx_id = ?1",
                    [k],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ))
                    },
                )
                .optional()?
            {
                return Ok(Some(TrxStatus::Included(IncludedTrx {
                    seq,
                    height: height as u64,
                    idx: idx as u32,
                    trx: decode_trx(&data)?,
                })));
            }
            if let Some((data, at)) = c
                .query_row(
                    "SELECT data, received_at FROM pending WHERE trx_id = ?1",
                    [k],
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?
            {
                return Ok(Some(TrxStatus::Pending {
                    trx: decode_trx(&data)?,
                    received_at: at as u64,
                }));
            }
            c.query_row(
                "SELECT group_id, reason FROM rejected WHERE trx_id = ?1",
                [k],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
            .map(|(g, reason)| {
                Ok(TrxStatus::Rejected {
                    group_id: GroupId(blob32(g, "group id")?),
                    reason,
                })
            })
            .transpose()
        })
        .await
    }

    /// Block headers from `from` (inclusive), at most `limit`.
    pub async fn list_blocks(
        &self,
        gid: GroupId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<BlockSummary>> {
        self.list_blocks_within(gid, from, limit, usize::MAX).await
    }

    /// Like [`Store::list_blocks`], but stops after the block that brings the estimated JSON
    /// size of the page (header plus 67 bytes per trx id) to `max_bytes` (at least one block).
    pub async fn list_blocks_within(
        &self,
        gid: GroupId,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<BlockSummary>> {
        /// A block header as JSON (hashes, producer and signature in hex, field names).
        const HEADER_JSON: usize = 512;
        /// One trx id as a JSON string plus its comma.
        const TRX_ID_JSON: usize = 67;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT height, hash, prev_hash, timestamp, producer, signature FROM blocks
                 WHERE group_id = ?1 AND height >= ?2 ORDER BY height LIMIT ?3",
            )?;
            let mut ids = c.prepare_cached(
                "SELECT trx_id FROM trx WHERE group_id = ?1 AND height = ?2 ORDER BY idx",
            )?;
            let mut headers = stmt.query(params![&gid.0[..], from as i64, limit as i64])?;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            while bytes < max_bytes {
                let Some(r) = headers.next()? else { break };
                let (height, hash, prev, ts, producer, sig) = (
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                );
                let trx_ids = ids
                    .query_map(params![&gid.0[..], height], |r| r.get::<_, Vec<u8>>(0))?
                    .map(|v| Ok(TrxId(blob32(v?, "trx id")?)))
                    .collect::<Result<Vec<_>>>()?;
                let sig: [u8; 64] = sig
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("signature is not 64 bytes".into()))?;
                bytes = bytes.saturating_add(HEADER_JSON + TRX_ID_JSON * trx_ids.len());
                out.push(BlockSummary {
                    height: height as u64,
                    hash: BlockHash(blob32(hash, "block hash")?),
                    prev_hash: BlockHash(blob32(prev, "prev hash")?),
                    timestamp: ts as u64,
                    producer: blob32(producer, "producer")?,
                    signature: Signature(sig),
                    trx_ids,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Rebuilds a full signed block from its stored parts (for sync and verification).
    pub async fn get_block(&self, gid: GroupId, height: u64) -> Result<Option<Block>> {
        self.read(move |c| block_at(c, gid, height)).await
    }
}

fn query_groups(c: &Connection, only: Option<GroupId>) -> Result<Vec<GroupRecord>> {
    let mut stmt = c.prepare(
        "SELECT genesis, group_key, bootstrap, joined_at FROM groups
         WHERE status = 'joined' AND (?1 IS NULL OR group_id = ?1)",
    )?;
    let rows = stmt
        .query_map([only.map(|g| g.0.to_vec())], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(genesis, key, bootstrap, joined_at)| {
            let genesis: Genesis = decode(&genesis)
                .map_err(|e| StoreError::Corrupt(format!("stored genesis: {e}")))?;
            let group_key = key
                .map(|k| blob32(k, "group key").map(GroupKey::from_bytes))
                .transpose()?;
            let head = head_of(c, &genesis)?;
            let last_cursor: i64 = c.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM trx WHERE group_id = ?1",
                [&genesis.group_id().0[..]],
                |r| r.get(0),
            )?;
            Ok(GroupRecord {
                last_cursor,
                group_key,
                bootstrap: serde_json::from_str(&bootstrap).unwrap_or_default(),
                joined_at: joined_at as u64,
                head,
                genesis,
            })
        })
        .collect()
}

fn head_of(c: &Connection, genesis: &Genesis) -> Result<Head> {
    let gid = genesis.group_id();
    let row = c
        .query_row(
            "SELECT height, hash, timestamp FROM blocks WHERE group_id = ?1
             ORDER BY height DESC LIMIT 1",
            [&gid.0[..]],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()?;
    match row {
        None => Ok(Head::genesis(gid, genesis.body.created_at)),
        Some((height, hash, ts)) => Ok(Head {
            height: height as u64,
            hash: BlockHash(blob32(hash, "block hash")?),
            timestamp: ts as u64,
        }),
    }
}

fn block_at(c: &Connection, gid: GroupId, height: u64) -> Result<Option<Block>> {
    let Some((version, prev, ts, producer, sig)) = c
        .query_row(
            "SELECT version, prev_hash, timestamp, producer, signature FROM blocks
             WHERE group_id = ?1 AND height = ?2",
            params![&gid.0[..], height as i64],
            |r| {
                Ok((
                    r.get::<_, u16>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt =
        c.prepare_cached("SELECT data FROM trx WHERE group_id = ?1 AND height = ?2 ORDER BY idx")?;
    let trxs = stmt
        .query_map(params![&gid.0[..], height as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .map(|d| decode_trx(&d?))
        .collect::<Result<Vec<_>>>()?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| StoreError::Corrupt("signature is not 64 bytes".into()))?;
    Ok(Some(Block {
        body: BlockBody {
            version,
            group_id: gid,
            height,
            prev_hash: BlockHash(blob32(prev, "prev hash")?),
            timestamp: ts as u64,
            producer: blob32(producer, "producer")?,
            trxs,
        },
        signature: Signature(sig),
    }))
}

/// A verified block prepared for insertion: header fields and each trx with its encoding.
/// References of a block's trx to earlier items: `(trx, kind, target)`.
pub type BlockRefs = Vec<(TrxId, crate::chain::object::RefKind, TrxId)>;

pub(super) struct BlockRows {
    gid: GroupId,
    height: u64,
    hash: BlockHash,
    header: (BlockHash, u64, [u8; 32], Signature, usize, u16),
    trxs: Vec<(TrxId, Trx, Vec<u8>)>,
    refs: BlockRefs,
}

impl BlockRows {
    pub(super) fn new(block: &Verified<Block>, refs: BlockRefs) -> Self {
        let hash = block.hash();
        let b = &block.body;
        let header = (
            b.prev_hash,
            b.timestamp,
            b.producer,
            block.signature,
            b.trxs.len(),
            b.version,
        );
        let trxs: Vec<(TrxId, Trx, Vec<u8>)> = b
            .trxs
            .iter()
            .map(|t| (t.trx_id(), t.clone(), encode(t)))
            .collect();
        Self {
            gid: b.group_id,
            height: b.height,
            hash,
            header,
            trxs,
            refs,
        }
    }

    /// Inserts the block, its trx and their references and removes the trx from pending. Fails
    /// if the height is taken or any trx was already included (the caller's savepoint then
    /// stores nothing).
    pub(super) fn insert(&self, c: &Connection) -> Result<Committed> {
        let (gid, height, hash, header, trxs) =
            (self.gid, self.height, self.hash, self.header, &self.trxs);
        let (prev_hash, timestamp, producer, signature, count, version) = header;
        let taken = c
            .execute(
                "INSERT OR IGNORE INTO blocks
                 (group_id, height, version, hash, prev_hash, timestamp, producer, signature, trx_count)
                 VALUES (?1, ?2, ?9, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &gid.0[..],
                    height as i64,
                    &hash.0[..],
                    &prev_hash.0[..],
                    timestamp as i64,
                    &producer[..],
                    &signature.0[..],
                    count as i64,
                    version
                ],
            )?
            == 0;
        if taken {
            return Err(StoreError::Conflict(format!(
                "block {height} of group {gid} is already stored"
            )));
        }
        let prev_seq: i64 = c.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM trx WHERE group_id = ?1",
            [&gid.0[..]],
            |r| r.get(0),
        )?;
        let mut ins = c.prepare_cached(
            "INSERT OR IGNORE INTO trx (trx_id, group_id, height, idx, kind, sender, timestamp, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut del = c.prepare_cached("DELETE FROM pending WHERE trx_id = ?1")?;
        let mut out = Vec::with_capacity(trxs.len());
        for (idx, (id, trx, data)) in trxs.iter().enumerate() {
            let n = ins.execute(params![
                &id.0[..],
                &gid.0[..],
                height as i64,
                idx as i64,
                trx.body.kind.to_code(),
                &trx.body.sender[..],
                trx.body.timestamp as i64,
                data
            ])?;
            if n == 0 {
                return Err(StoreError::Duplicate(*id));
            }
            out.push((*id, c.last_insert_rowid()));
            del.execute([&id.0[..]])?;
        }
        if !self.refs.is_empty() {
            let mut r = c.prepare_cached(
                "INSERT OR IGNORE INTO refs (trx_id, group_id, kind, target, sender, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (id, kind, target) in &self.refs {
                let Some(pos) = out.iter().position(|(t, _)| t == id) else {
                    continue;
                };
                r.execute(params![
                    &id.0[..],
                    &gid.0[..],
                    kind.as_str(),
                    &target.0[..],
                    &trxs[pos].1.body.sender[..],
                    out[pos].1
                ])?;
            }
        }
        Ok(Committed {
            prev_seq,
            group_id: gid,
            height,
            hash,
            trx: out,
        })
    }
}

/// Rows of `SELECT seq, height, idx, data FROM trx …` as included trx.
/// Reads `(seq, height, idx, data)` rows until `limit` rows or the row whose bytes reach
/// `max_bytes` (at least one row); `more` says whether the range may hold more.
fn page_rows(rows: &mut rusqlite::Rows<'_>, limit: usize, max_bytes: usize) -> Result<TrxPage> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut cut = false;
    while let Some(r) = rows.next()? {
        if bytes >= max_bytes {
            cut = true;
            break;
        }
        let data: Vec<u8> = r.get(3)?;
        bytes = bytes.saturating_add(data.len());
        out.push(IncludedTrx {
            seq: r.get(0)?,
            height: r.get::<_, i64>(1)? as u64,
            idx: r.get::<_, i64>(2)? as u32,
            trx: decode_trx(&data)?,
        });
    }
    Ok(TrxPage {
        more: cut || out.len() == limit,
        rows: out,
    })
}
