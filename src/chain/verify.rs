//! Verification: the only way to obtain a `Verified<T>`, which is what the store accepts.

use super::encoding::encode;
use super::types::*;
use super::{MAX_BLOCK_BYTES, MAX_FUTURE_SKEW_MS, MAX_TRX_BYTES, PROTOCOL_VERSION};
use crate::crypto::{verify_strict, Identity, PublicKey};
use std::collections::HashSet;
use std::ops::Deref;

/// Why a genesis, trx or block was rejected. Messages are safe to show to API clients and peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    #[error("trx belongs to group {got}, expected {expected}")]
    WrongGroup { expected: GroupId, got: GroupId },
    #[error("{what} is {size} bytes, the limit is {max}")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("timestamp {timestamp} is out of range ({reason})")]
    Timestamp {
        timestamp: u64,
        reason: &'static str,
    },
    #[error("duplicate trx {0}")]
    DuplicateTrx(TrxId),
    #[error("block height {got} does not follow head {expected_prev}")]
    WrongHeight { expected_prev: u64, got: u64 },
    #[error("block prev_hash {got} does not match head {expected}")]
    WrongPrevHash { expected: BlockHash, got: BlockHash },
    #[error("block producer {0} is not a producer of this group")]
    NotProducer(String),
    #[error("sender {sender} may not send {kind} trx in this group")]
    SenderNotAllowed { sender: String, kind: &'static str },
    #[error("empty block")]
    EmptyBlock,
    #[error("genesis app {0:?} is not supported (expected \"timeline\")")]
    UnsupportedApp(String),
}

/// A value that passed verification. Only this module constructs it; the store only accepts it.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    value: T,
    id: [u8; 32],
    encoded_len: usize,
}

impl<T> Verified<T> {
    pub fn into_inner(self) -> T {
        self.value
    }
    /// The encoded size of the whole signed structure.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl Verified<Genesis> {
    pub fn group_id(&self) -> GroupId {
        GroupId(self.id)
    }
}
impl Verified<Trx> {
    pub fn id(&self) -> TrxId {
        TrxId(self.id)
    }
}
impl Verified<Block> {
    pub fn hash(&self) -> BlockHash {
        BlockHash(self.id)
    }
}

/// Checks the owner's signature; the group id is recomputed from the body, never trusted.
pub fn verify_genesis(genesis: Genesis) -> Result<Verified<Genesis>, ChainError> {
    if genesis.body.version != PROTOCOL_VERSION {
        return Err(ChainError::UnsupportedVersion(genesis.body.version));
    }
    if genesis.body.app != "timeline" {
        return Err(ChainError::UnsupportedApp(genesis.body.app.clone()));
    }
    let id = genesis.group_id();
    if !verify_strict(&genesis.body.owner, &id.0, &genesis.signature) {
        return Err(ChainError::BadSignature("genesis"));
    }
    let encoded_len = encode(&genesis).len();
    Ok(Verified {
        value: genesis,
        id: id.0,
        encoded_len,
    })
}

/// The rules of one group at its current head: who produces and who may send what.
#[derive(Clone, Debug)]
pub struct GroupRules {
    pub group_id: GroupId,
    pub kind: GroupKind,
    pub owner: PublicKey,
    pub producers: Vec<PublicKey>,
}

impl GroupRules {
    pub fn from_genesis(genesis: &Verified<Genesis>) -> Self {
        Self {
            group_id: genesis.group_id(),
            kind: genesis.body.kind,
            owner: genesis.body.owner,
            producers: vec![genesis.body.owner],
        }
    }

    pub fn is_producer(&self, key: &PublicKey) -> bool {
        self.producers.contains(key)
    }

    /// Public groups accept posts from anyone holding the seed; private groups only from the
    /// owner until membership lands. Control trx (producer/member/config) are owner-only.
    fn allows(&self, sender: &PublicKey, kind: TrxKind) -> bool {
        match kind {
            TrxKind::Post => self.kind == GroupKind::Public || *sender == self.owner,
            TrxKind::Producer | TrxKind::Member | TrxKind::Config => *sender == self.owner,
        }
    }
}

/// Full check of one trx: version, group, size, sender rights, timestamp and signature.
/// `now_ms` bounds how far in the future a timestamp may be.
pub fn verify_trx(trx: Trx, rules: &GroupRules, now_ms: u64) -> Result<Verified<Trx>, ChainError> {
    let encoded_len = encode(&trx).len();
    let id = check_trx(&trx, encoded_len, rules, now_ms)?;
    Ok(Verified {
        value: trx,
        id: id.0,
        encoded_len,
    })
}

/// How old a trx may be when a node first admits it as pending (from the API or gossip).
pub const MAX_ADMISSION_AGE_MS: u64 = 24 * 60 * 60 * 1000;

/// The lower bound on a trx's timestamp, relative to the verifier's clock, for admitting it as a
/// new pending trx. Deliberately not part of [`verify_trx`]: blocks already final stay valid
/// forever, so stored and synced trx are never held to it — only new submissions are, which
/// keeps a captured trx from being replayed into a group long after it was signed.
pub fn check_admission_age(trx: &Trx, now_ms: u64) -> Result<(), ChainError> {
    if trx.body.timestamp < now_ms.saturating_sub(MAX_ADMISSION_AGE_MS) {
        return Err(ChainError::Timestamp {
            timestamp: trx.body.timestamp,
            reason: "more than 24 hours old: too old to admit as a new pending trx",
        });
    }
    Ok(())
}

/// The protocol version and group every trx and block must carry.
fn check_version_and_group(
    version: u16,
    group_id: GroupId,
    rules: &GroupRules,
) -> Result<(), ChainError> {
    if version != PROTOCOL_VERSION {
        return Err(ChainError::UnsupportedVersion(version));
    }
    if group_id != rules.group_id {
        return Err(ChainError::WrongGroup {
            expected: rules.group_id,
            got: group_id,
        });
    }
    Ok(())
}

fn check_trx(
    trx: &Trx,
    encoded_len: usize,
    rules: &GroupRules,
    now_ms: u64,
) -> Result<TrxId, ChainError> {
    let b = &trx.body;
    check_version_and_group(b.version, b.group_id, rules)?;
    if encoded_len > MAX_TRX_BYTES {
        return Err(ChainError::TooLarge {
            what: "trx",
            size: encoded_len,
            max: MAX_TRX_BYTES,
        });
    }
    if !rules.allows(&b.sender, b.kind) {
        return Err(ChainError::SenderNotAllowed {
            sender: hex::encode(b.sender),
            kind: b.kind.as_str(),
        });
    }
    if b.timestamp > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(ChainError::Timestamp {
            timestamp: b.timestamp,
            reason: "more than 5 minutes in the future",
        });
    }
    let id = b.trx_id();
    if !verify_strict(&b.sender, &id.0, &trx.signature) {
        return Err(ChainError::BadSignature("trx"));
    }
    Ok(id)
}

/// Verifies a block from anywhere (peer or disk) against the head it must extend,
/// including every trx in it. Duplicates against already stored trx are caught by the store.
pub fn verify_block(
    block: Block,
    rules: &GroupRules,
    head: &Head,
    now_ms: u64,
) -> Result<Verified<Block>, ChainError> {
    let encoded_len = encode(&block).len();
    check_block_header(&block, encoded_len, rules, head, now_ms)?;
    let hash = block.hash();
    if !verify_strict(&block.body.producer, &hash.0, &block.signature) {
        return Err(ChainError::BadSignature("block"));
    }
    let mut seen = HashSet::with_capacity(block.body.trxs.len());
    for trx in &block.body.trxs {
        let id = check_trx(trx, encode(trx).len(), rules, now_ms)?;
        if trx.body.timestamp > block.body.timestamp.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(ChainError::Timestamp {
                timestamp: trx.body.timestamp,
                reason: "trx is later than its block",
            });
        }
        if !seen.insert(id) {
            return Err(ChainError::DuplicateTrx(id));
        }
    }
    Ok(Verified {
        value: block,
        id: hash.0,
        encoded_len,
    })
}

fn check_block_header(
    block: &Block,
    encoded_len: usize,
    rules: &GroupRules,
    head: &Head,
    now_ms: u64,
) -> Result<(), ChainError> {
    let b = &block.body;
    check_version_and_group(b.version, b.group_id, rules)?;
    if encoded_len > MAX_BLOCK_BYTES {
        return Err(ChainError::TooLarge {
            what: "block",
            size: encoded_len,
            max: MAX_BLOCK_BYTES,
        });
    }
    if b.height != head.height + 1 {
        return Err(ChainError::WrongHeight {
            expected_prev: head.height,
            got: b.height,
        });
    }
    if b.prev_hash != head.hash {
        return Err(ChainError::WrongPrevHash {
            expected: head.hash,
            got: b.prev_hash,
        });
    }
    if !rules.is_producer(&b.producer) {
        return Err(ChainError::NotProducer(hex::encode(b.producer)));
    }
    if b.trxs.is_empty() {
        return Err(ChainError::EmptyBlock);
    }
    if b.timestamp < head.timestamp {
        return Err(ChainError::Timestamp {
            timestamp: b.timestamp,
            reason: "earlier than the previous block",
        });
    }
    if b.timestamp > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(ChainError::Timestamp {
            timestamp: b.timestamp,
            reason: "more than 5 minutes in the future",
        });
    }
    Ok(())
}

/// Builds and signs the next block from trx that were already verified, checking the header
/// (the trx signatures are not checked twice).
pub fn produce_block(
    producer: &Identity,
    rules: &GroupRules,
    head: &Head,
    trxs: Vec<Verified<Trx>>,
    now_ms: u64,
) -> Result<Verified<Block>, ChainError> {
    let mut seen = HashSet::with_capacity(trxs.len());
    for t in &trxs {
        if !seen.insert(t.id()) {
            return Err(ChainError::DuplicateTrx(t.id()));
        }
    }
    let body = BlockBody {
        version: PROTOCOL_VERSION,
        group_id: rules.group_id,
        height: head.height + 1,
        prev_hash: head.hash,
        // Block timestamps never go backwards, even if the wall clock does.
        timestamp: now_ms.max(head.timestamp),
        producer: producer.public(),
        trxs: trxs.into_iter().map(Verified::into_inner).collect(),
    };
    let block = Block::sign(body, producer);
    let encoded_len = encode(&block).len();
    check_block_header(&block, encoded_len, rules, head, now_ms)?;
    Ok(Verified {
        id: block.hash().0,
        value: block,
        encoded_len,
    })
}

/// Trx per worker thread below which a batch is verified on the calling thread.
const PARALLEL_MIN_TRX: usize = 64;

/// Verifies consecutive blocks (a sync batch) against `head`, each extending the previous one.
/// Returns the verified prefix and, if a block failed, its height and the reason. The trx
/// signatures — nearly all of the work — are checked on all cores.
pub fn verify_blocks(
    blocks: Vec<Block>,
    rules: &GroupRules,
    head: &Head,
    now_ms: u64,
) -> (Vec<Verified<Block>>, Option<(u64, ChainError)>) {
    // Pass 1 (sequential, cheap): headers, linkage and block signatures.
    let mut cur = *head;
    let mut headers = Vec::with_capacity(blocks.len());
    let mut failure = None;
    for block in blocks {
        let encoded_len = encode(&block).len();
        if let Err(e) = check_block_header(&block, encoded_len, rules, &cur, now_ms) {
            failure = Some((block.body.height, e));
            break;
        }
        let hash = block.hash();
        if !verify_strict(&block.body.producer, &hash.0, &block.signature) {
            failure = Some((block.body.height, ChainError::BadSignature("block")));
            break;
        }
        cur = Head {
            height: block.body.height,
            hash,
            timestamp: block.body.timestamp,
        };
        headers.push((block, hash, encoded_len));
    }
    // Pass 2 (parallel): every trx of the blocks whose header passed.
    let flat: Vec<(usize, &Trx, u64)> = headers
        .iter()
        .enumerate()
        .flat_map(|(i, (b, _, _))| b.body.trxs.iter().map(move |t| (i, t, b.body.timestamp)))
        .collect();
    let check = |(i, trx, block_ts): &(usize, &Trx, u64)| -> Result<TrxId, (usize, ChainError)> {
        let id = check_trx(trx, encode(*trx).len(), rules, now_ms).map_err(|e| (*i, e))?;
        if trx.body.timestamp > block_ts.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err((
                *i,
                ChainError::Timestamp {
                    timestamp: trx.body.timestamp,
                    reason: "trx is later than its block",
                },
            ));
        }
        Ok(id)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<Result<TrxId, (usize, ChainError)>> =
        if threads < 2 || flat.len() < PARALLEL_MIN_TRX * 2 {
            flat.iter().map(check).collect()
        } else {
            let chunk = flat.len().div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = flat
                    .chunks(chunk)
                    .map(|part| s.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        h.join().unwrap_or_else(|_| {
                            vec![Err((
                                0,
                                ChainError::BadSignature("trx (verifier panicked)"),
                            ))]
                        })
                    })
                    .collect()
            })
        };
    // The first failing block (by position) truncates the batch; duplicates within a block too.
    let mut bad: Option<(usize, ChainError)> = None;
    let mut ids: Vec<Vec<TrxId>> = vec![Vec::new(); headers.len()];
    for (r, (i, _, _)) in results.into_iter().zip(&flat) {
        match r {
            Ok(id) => ids[*i].push(id),
            Err((j, e)) => {
                if bad.as_ref().is_none_or(|(k, _)| j < *k) {
                    bad = Some((j, e));
                }
            }
        }
    }
    for (i, list) in ids.iter().enumerate() {
        if bad.as_ref().is_some_and(|(k, _)| *k <= i) {
            break;
        }
        let mut seen = HashSet::with_capacity(list.len());
        if let Some(dup) = list.iter().find(|id| !seen.insert(**id)) {
            bad = Some((i, ChainError::DuplicateTrx(*dup)));
            break;
        }
    }
    let keep = bad.as_ref().map_or(headers.len(), |(k, _)| *k);
    if let Some((k, e)) = bad {
        failure = Some((headers[k].0.body.height, e));
    }
    let verified = headers
        .into_iter()
        .take(keep)
        .map(|(value, hash, encoded_len)| Verified {
            value,
            id: hash.0,
            encoded_len,
        })
        .collect();
    (verified, failure)
}

/// Checks what can be checked of a block without the head it extends: version, group, size,
/// producer, non-empty and its signature. Used to forward blocks that arrive ahead of a gap;
/// they are fully verified with [`verify_blocks`] once the gap is filled.
pub fn check_block_detached(block: &Block, rules: &GroupRules) -> Result<(), ChainError> {
    let b = &block.body;
    check_version_and_group(b.version, b.group_id, rules)?;
    let encoded_len = encode(block).len();
    if encoded_len > MAX_BLOCK_BYTES {
        return Err(ChainError::TooLarge {
            what: "block",
            size: encoded_len,
            max: MAX_BLOCK_BYTES,
        });
    }
    if !rules.is_producer(&b.producer) {
        return Err(ChainError::NotProducer(hex::encode(b.producer)));
    }
    if b.trxs.is_empty() {
        return Err(ChainError::EmptyBlock);
    }
    if !verify_strict(&b.producer, &block.hash().0, &block.signature) {
        return Err(ChainError::BadSignature("block"));
    }
    Ok(())
}
