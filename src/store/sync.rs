//! Store operations of network sync: batched block commits, block ranges as wire bytes, and
//! expiry of pending trx that never got included.

use super::ops::BlockRows;
use super::{Committed, Result, Store, StoreError};
use crate::chain::encoding::encode;
use crate::chain::{Block, GroupId, TrxId, Verified};
use rusqlite::params;

impl Store {
    /// Stores consecutive verified blocks (of any groups, each group's in chain order) in one
    /// transaction: all of them or, if any fails, none.
    pub async fn commit_blocks(
        &self,
        blocks: Vec<(&Verified<Block>, super::BlockRefs)>,
    ) -> Result<Vec<Committed>> {
        let rows: Vec<BlockRows> = blocks
            .into_iter()
            .map(|(b, refs)| BlockRows::new(b, refs))
            .collect();
        self.write(move |c| rows.iter().map(|r| r.insert(c)).collect())
            .await
    }

    /// Blocks of a group from `from` to at most `to` (inclusive), as the canonical encoding of
    /// each signed `Block`, at most `max_blocks` and — past the first block — `max_bytes`.
    /// The bytes are assembled from the stored (canonical) trx encodings without re-encoding.
    pub async fn encoded_blocks(
        &self,
        gid: GroupId,
        from: u64,
        to: u64,
        max_blocks: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        self.read(move |c| {
            let last = to.min(from.saturating_add(max_blocks as u64).saturating_sub(1));
            let mut headers = c.prepare_cached(
                "SELECT height, version, prev_hash, timestamp, producer, signature, trx_count
                 FROM blocks WHERE group_id = ?1 AND height BETWEEN ?2 AND ?3 ORDER BY height",
            )?;
            let mut trx = c.prepare_cached(
                "SELECT data FROM trx WHERE group_id = ?1 AND height = ?2 ORDER BY idx",
            )?;
            let mut rows = headers.query(params![&gid.0[..], from as i64, last as i64])?;
            let mut out = Vec::new();
            let mut total = 0usize;
            let mut expected = from;
            while let Some(r) = rows.next()? {
                let height = r.get::<_, i64>(0)? as u64;
                if height != expected {
                    // A hole (should not happen): stop at the consecutive prefix.
                    break;
                }
                let version: u16 = r.get(1)?;
                let prev: Vec<u8> = r.get(2)?;
                let ts = r.get::<_, i64>(3)? as u64;
                let producer: Vec<u8> = r.get(4)?;
                let sig: Vec<u8> = r.get(5)?;
                let count = r.get::<_, i64>(6)? as u64;
                if prev.len() != 32 || producer.len() != 32 || sig.len() != 64 {
                    return Err(StoreError::Corrupt(format!(
                        "block {height} of {gid} has malformed header fields"
                    )));
                }
                let mut bytes = Vec::with_capacity(256);
                bytes.extend(encode(&version));
                bytes.extend(gid.0);
                bytes.extend(encode(&height));
                bytes.extend(&prev);
                bytes.extend(encode(&ts));
                bytes.extend(&producer);
                bytes.extend(encode(&count));
                let mut n = 0u64;
                let mut datas = trx.query(params![&gid.0[..], height as i64])?;
                while let Some(d) = datas.next()? {
                    let data = d
                        .get_ref(0)?
                        .as_blob()
                        .map_err(|e| StoreError::Corrupt(format!("stored trx: {e}")))?;
                    bytes.extend(data);
                    n += 1;
                }
                if n != count {
                    return Err(StoreError::Corrupt(format!(
                        "block {height} of {gid} has {n} stored trx, expected {count}"
                    )));
                }
                bytes.extend(&sig);
                if !out.is_empty() && total + bytes.len() > max_bytes {
                    break;
                }
                total += bytes.len();
                out.push(bytes);
                expected += 1;
            }
            Ok(out)
        })
        .await
    }

    /// Moves a pending trx that was never included to `rejected` with `reason`.
    /// Returns false if it is no longer pending (included meanwhile, or unknown).
    pub async fn expire_pending(&self, id: TrxId, reason: String, now_ms: u64) -> Result<bool> {
        self.write(move |c| {
            let Some(gid) = c
                .query_row(
                    "SELECT group_id FROM pending WHERE trx_id = ?1",
                    [&id.0[..]],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?
            else {
                return Ok(false);
            };
            c.execute("DELETE FROM pending WHERE trx_id = ?1", [&id.0[..]])?;
            c.execute(
                "INSERT OR REPLACE INTO rejected (trx_id, group_id, reason, rejected_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![&id.0[..], gid, reason, now_ms as i64],
            )?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    fn no_refs(blocks: &[Verified<Block>]) -> Vec<(&Verified<Block>, crate::store::BlockRefs)> {
        blocks.iter().map(|b| (b, Vec::new())).collect()
    }

    use crate::chain::encoding::{decode, encode};
    use crate::chain::verify::{produce_block, verify_genesis, verify_trx, GroupRules};
    use crate::chain::*;
    use crate::crypto::{random_bytes, GroupKey, Identity};
    use crate::store::Store;

    #[tokio::test]
    async fn encoded_blocks_are_the_canonical_block_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let owner = Identity::generate();
        let genesis = verify_genesis(Genesis::sign(
            GenesisBody {
                version: PROTOCOL_VERSION,
                name: "g".into(),
                app: "timeline".into(),
                kind: GroupKind::Public,
                owner: owner.public(),
                consensus: Consensus::Poa,
                created_at: 1,
                salt: random_bytes(),
            },
            &owner,
        ))
        .unwrap();
        let key = GroupKey::generate();
        store
            .join_group(&genesis, Some(key.clone()), vec![], 1)
            .await
            .unwrap();
        let rules = GroupRules::from_genesis(&genesis);
        let mut head = Head::genesis(rules.group_id, 1);
        let mut blocks = Vec::new();
        for h in 0..3u64 {
            let trxs = (0..(h + 1))
                .map(|i| {
                    let t = Trx::new_post(
                        &owner,
                        rules.group_id,
                        &key,
                        &[i as u8; 10],
                        5,
                        random_bytes(),
                    );
                    verify_trx(t, &rules, 10).unwrap()
                })
                .collect();
            let b = produce_block(&owner, &rules, &head, trxs, 10).unwrap();
            head = Head {
                height: b.body.height,
                hash: b.hash(),
                timestamp: b.body.timestamp,
            };
            blocks.push(b);
        }
        let committed = store.commit_blocks(no_refs(&blocks)).await.unwrap();
        assert_eq!(committed.len(), 3);
        let got = store
            .encoded_blocks(rules.group_id, 1, 3, 10, 1 << 20)
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        for (bytes, b) in got.iter().zip(&blocks) {
            assert_eq!(bytes, &encode(&**b));
            let _: Block = decode(bytes).unwrap();
        }
        // Count and byte limits; at least one block whatever the byte budget.
        assert_eq!(
            store
                .encoded_blocks(rules.group_id, 2, 3, 1, 1 << 20)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .encoded_blocks(rules.group_id, 1, 3, 10, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .encoded_blocks(rules.group_id, 2, 2, 10, 1 << 20)
                .await
                .unwrap()
                .len(),
            1
        );
        // A second commit of the same blocks fails as a whole.
        assert!(store.commit_blocks(no_refs(&blocks[2..])).await.is_err());
    }
}
