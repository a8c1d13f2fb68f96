//! Store operations behind the consumer API: idempotent submission, refs, tokens.

use super::{Result, Store, StoreError};
use crate::chain::encoding::encode;
use crate::chain::object::RefKind;
use crate::chain::{GroupId, Trx, TrxId, Verified};
use rusqlite::{params, OptionalExtension};

/// An `Idempotency-Key` and the hash of the request it was first used with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// A remote message identity: a message bridged in once per group, whatever happens.
#[derive(Debug, Clone)]
pub struct InboundKey {
    pub gateway_id: String,
    pub chat: String,
    pub remote_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Stored now as pending.
    New,
    /// The key was used before (within 24 h) for this trx; nothing new was stored.
    Existing(TrxId),
}

/// One row of the refs index.
#[derive(Debug, Clone)]
pub struct RefRow {
    pub trx_id: TrxId,
    pub kind: RefKind,
    pub target: TrxId,
    pub sender: [u8; 32],
    pub seq: i64,
}

/// A scoped API token as stored (the secret is only its hash).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub hash: [u8; 32],
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

impl Store {
    /// Stores a pending trx, honouring an idempotency key atomically in the same transaction:
    /// a key seen within 24 h returns the earlier trx id and stores nothing.
    pub async fn submit_pending(
        &self,
        trx: &Verified<Trx>,
        now_ms: u64,
        idem: Option<IdempotencyKey>,
    ) -> Result<Submitted> {
        self.submit_pending_from(trx, now_ms, idem, None).await
    }

    /// As `submit_pending`, also recording (or finding) the remote message it bridges.
    pub async fn submit_pending_from(
        &self,
        trx: &Verified<Trx>,
        now_ms: u64,
        idem: Option<IdempotencyKey>,
        inbound: Option<InboundKey>,
    ) -> Result<Submitted> {
        let id = trx.id();
        let gid = trx.body.group_id;
        let data = encode(&**trx);
        self.write(move |c| {
            if let Some(k) = &inbound {
                let seen: Option<Vec<u8>> = c
                    .query_row(
                        "SELECT trx_id FROM inbound_seen
                         WHERE gateway_id = ?1 AND chat = ?2 AND remote_id = ?3 AND group_id = ?4",
                        params![k.gateway_id, k.chat, k.remote_id, &gid.0[..]],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(existing) = seen {
                    let existing: [u8; 32] = existing
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("inbound trx id".into()))?;
                    return Ok(Submitted::Existing(TrxId(existing)));
                }
                c.execute(
                    "INSERT INTO inbound_seen (gateway_id, chat, remote_id, group_id, trx_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![k.gateway_id, k.chat, k.remote_id, &gid.0[..], &id.0[..], now_ms as i64],
                )?;
            }
            if let Some(k) = &idem {
                let cutoff = now_ms.saturating_sub(IDEMPOTENCY_TTL_MS) as i64;
                let found: Option<(Vec<u8>, Vec<u8>)> = c
                    .query_row(
                        "SELECT request_hash, trx_id FROM idempotency
                         WHERE group_id = ?1 AND key = ?2 AND created_at > ?3",
                        params![&gid.0[..], k.key, cutoff],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((hash, existing)) = found {
                    if hash != k.request_hash {
                        return Err(StoreError::IdempotencyMismatch(format!(
                            "Idempotency-Key {:?} was already used with a different request",
                            k.key
                        )));
                    }
                    let existing: [u8; 32] = existing
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("idempotency trx id".into()))?;
                    return Ok(Submitted::Existing(TrxId(existing)));
                }
            }
            let rejected: Option<String> = c
                .query_row(
                    "SELECT reason FROM rejected WHERE trx_id = ?1",
                    [&id.0[..]],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(reason) = rejected {
                return Err(StoreError::PreviouslyRejected { id, reason });
            }
            let included = c
                .query_row("SELECT 1 FROM trx WHERE trx_id = ?1", [&id.0[..]], |_| Ok(()))
                .optional()?
                .is_some();
            let inserted = !included
                && c.execute(
                    "INSERT OR IGNORE INTO pending (trx_id, group_id, received_at, data)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![&id.0[..], &gid.0[..], now_ms as i64, data],
                )? == 1;
            if !inserted {
                return Err(StoreError::Duplicate(id));
            }
            if let Some(k) = &idem {
                c.execute(
                    "INSERT OR REPLACE INTO idempotency (group_id, key, request_hash, trx_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![&gid.0[..], k.key, &k.request_hash[..], &id.0[..], now_ms as i64],
                )?;
            }
            Ok(Submitted::New)
        })
        .await
    }

    /// Moves a pending trx to `rejected` with the reason (shown by `GET /api/v1/trx/{id}`).
    pub async fn reject_pending(
        &self,
        id: TrxId,
        gid: GroupId,
        reason: String,
        now_ms: u64,
    ) -> Result<()> {
        self.write(move |c| {
            c.execute("DELETE FROM pending WHERE trx_id = ?1", [&id.0[..]])?;
            c.execute(
                "INSERT OR REPLACE INTO rejected (trx_id, group_id, reason, rejected_at) VALUES (?1, ?2, ?3, ?4)",
                params![&id.0[..], &gid.0[..], reason, now_ms as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets idempotency keys older than the TTL.
    pub async fn purge_idempotency(&self, now_ms: u64) -> Result<usize> {
        let cutoff = now_ms.saturating_sub(IDEMPOTENCY_TTL_MS) as i64;
        self.write(move |c| {
            Ok(c.execute("DELETE FROM idempotency WHERE created_at <= ?1", [cutoff])?)
        })
        .await
    }

    /// Every ref pointing at one of `targets`, in chain order.
    pub async fn refs_to(&self, targets: Vec<TrxId>) -> Result<Vec<RefRow>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT trx_id, kind, target, sender, seq FROM refs WHERE target = ?1 ORDER BY seq",
            )?;
            let mut out = Vec::new();
            for t in &targets {
                let rows = stmt
                    .query_map([&t.0[..]], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (id, kind, target, sender, seq) in rows {
                    let b32 = |v: Vec<u8>| -> Result<[u8; 32]> {
                        v.try_into()
                            .map_err(|_| StoreError::Corrupt("refs row".into()))
                    };
                    out.push(RefRow {
                        trx_id: TrxId(b32(id)?),
                        kind: RefKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("ref kind {kind}")))?,
                        target: TrxId(b32(target)?),
                        sender: b32(sender)?,
                        seq,
                    });
                }
            }
            out.sort_by_key(|r| r.seq);
            Ok(out)
        })
        .await
    }

    /// Whether a trx of this group exists, pending or included, and who sent it.
    pub async fn trx_in_group(&self, gid: GroupId, id: TrxId) -> Result<Option<Trx>> {
        Ok(match self.trx_status(id).await? {
            Some(super::TrxStatus::Included(r)) if r.trx.body.group_id == gid => Some(r.trx),
            Some(super::TrxStatus::Pending { trx, .. }) if trx.body.group_id == gid => Some(trx),
            _ => None,
        })
    }

    pub async fn insert_token(&self, t: TokenRecord) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO tokens (id, name, hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    t.id,
                    t.name,
                    &t.hash[..],
                    serde_json::to_string(&t.scopes).unwrap_or_else(|_| "[]".into()),
                    t.created_at as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Marks a token revoked; false if there is no such active token.
    pub async fn revoke_token(&self, id: String, now_ms: u64) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now_ms as i64],
            )? == 1)
        })
        .await
    }

    pub async fn load_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, name, hash, scopes, created_at, revoked_at FROM tokens ORDER BY created_at, id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, name, hash, scopes, created, revoked)| {
                    Ok(TokenRecord {
                        id,
                        name,
                        hash: hash
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("token hash".into()))?,
                        scopes: serde_json::from_str(&scopes)
                            .map_err(|e| StoreError::Corrupt(format!("token scopes: {e}")))?,
                        created_at: created as u64,
                        revoked_at: revoked.map(|v| v as u64),
                    })
                })
                .collect()
        })
        .await
    }
}
