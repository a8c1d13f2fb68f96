//! Shared set-up of the fuzz targets: one deterministic group that the generated corpus is
//! signed for, and the checks several targets run on what they decoded.
//!
//! Everything here is deterministic (fixed secrets, fixed clock), so a corpus file written by
//! `examples/gen_corpus.rs` verifies in every run and a crash reproduces from its input alone.

use rumgate::chain::encoding::encode;
use rumgate::chain::object::{self, PostPayload};
use rumgate::chain::verify::{
    check_block_detached, verify_block, verify_blocks, verify_genesis, verify_trx, GroupRules,
};
use rumgate::chain::{
    Block, BlockBody, Consensus, Genesis, GenesisBody, GroupKind, Head, Trx, TrxBody, TrxId,
    TrxKind, Verified, PROTOCOL_VERSION,
};
use rumgate::crypto::{GroupKey, Identity, NONCE_LEN};
use std::sync::OnceLock;

/// The fuzzing clock: 2026-01-01T00:00:00Z in Unix milliseconds.
pub const NOW_MS: u64 = 1_767_225_600_000;
/// When the fixed group was created (a day before [`NOW_MS`]).
pub const CREATED_AT: u64 = NOW_MS - 86_400_000;

/// The group every generated block, trx and seed belongs to.
pub struct Group {
    /// Owner and only producer.
    pub owner: Identity,
    /// Another member of the (public) group: may post, may not produce or configure.
    pub member: Identity,
    pub key: GroupKey,
    pub genesis: Verified<Genesis>,
    pub rules: GroupRules,
    /// A private group of the same owner (for seeds).
    pub private_genesis: Verified<Genesis>,
    /// Block 1 of the group, so that height-2 inputs can be verified against a real head.
    pub block1: Verified<Block>,
}

impl Group {
    /// The head a block of `height` is verified against: genesis for 1, block 1 otherwise.
    pub fn head_for(&self, height: u64) -> Head {
        if height <= 1 {
            Head::genesis(self.rules.group_id, CREATED_AT)
        } else {
            Head {
                height: 1,
                hash: self.block1.hash(),
                timestamp: self.block1.body.timestamp,
            }
        }
    }

    /// A signed POST of `object` by `sender`, sealed with the group key.
    pub fn post(&self, sender: &Identity, object: serde_json::Value, timestamp: u64, n: u8) -> Trx {
        sign_post(&self.rules, &self.key, sender, object, timestamp, n)
    }

    /// A signed control trx (plaintext payload) of `kind` by `sender`.
    pub fn control(&self, sender: &Identity, kind: TrxKind, payload: &[u8], timestamp: u64) -> Trx {
        Trx::sign(
            TrxBody {
                version: PROTOCOL_VERSION,
                group_id: self.rules.group_id,
                kind,
                sender: sender.public(),
                timestamp,
                nonce: [0; NONCE_LEN],
                payload: payload.to_vec(),
            },
            sender,
        )
    }

    /// A block signed by `producer` that extends `head` with `trxs`.
    pub fn block(&self, producer: &Identity, head: &Head, timestamp: u64, trxs: Vec<Trx>) -> Block {
        sign_block(&self.rules, producer, head, timestamp, trxs)
    }
}

fn sign_post(
    rules: &GroupRules,
    key: &GroupKey,
    sender: &Identity,
    object: serde_json::Value,
    timestamp: u64,
    n: u8,
) -> Trx {
    let plaintext = serde_json::to_vec(&PostPayload {
        object,
        origin: None,
    })
    .unwrap_or_default();
    Trx::new_post(
        sender,
        rules.group_id,
        key,
        &plaintext,
        timestamp,
        [n; NONCE_LEN],
    )
}

fn sign_block(
    rules: &GroupRules,
    producer: &Identity,
    head: &Head,
    timestamp: u64,
    trxs: Vec<Trx>,
) -> Block {
    Block::sign(
        BlockBody {
            version: PROTOCOL_VERSION,
            group_id: rules.group_id,
            height: head.height + 1,
            prev_hash: head.hash,
            timestamp,
            producer: producer.public(),
            trxs,
        },
        producer,
    )
}

fn make_genesis(owner: &Identity, kind: GroupKind, name: &str) -> Verified<Genesis> {
    let body = GenesisBody {
        version: PROTOCOL_VERSION,
        name: name.into(),
        app: "timeline".into(),
        kind,
        owner: owner.public(),
        consensus: Consensus::Poa,
        created_at: CREATED_AT,
        salt: [7; 16],
    };
    match verify_genesis(Genesis::sign(body, owner)) {
        Ok(g) => g,
        Err(e) => panic!("the fixed genesis must verify: {e}"),
    }
}

/// The fixed group (built once per process).
pub fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        let owner = Identity::from_secret([1; 32]);
        let member = Identity::from_secret([2; 32]);
        let key = GroupKey::from_bytes([3; 32]);
        let genesis = make_genesis(&owner, GroupKind::Public, "fuzz");
        let private_genesis = make_genesis(&owner, GroupKind::Private, "fuzz-private");
        let rules = GroupRules::from_genesis(&genesis);
        let head = Head::genesis(rules.group_id, CREATED_AT);
        let first = sign_post(
            &rules,
            &key,
            &member,
            serde_json::json!({"type": "Note", "content": "first post"}),
            CREATED_AT + 1_000,
            1,
        );
        let block1 = sign_block(&rules, &owner, &head, CREATED_AT + 2_000, vec![first]);
        let block1 = match verify_block(block1, &rules, &head, NOW_MS) {
            Ok(b) => b,
            Err(e) => panic!("the fixed block 1 must verify: {e}"),
        };
        Group {
            owner,
            member,
            key,
            genesis,
            rules,
            private_genesis,
            block1,
        }
    })
}

/// What the node does with a trx that passed verification and carries a post: decrypt, parse
/// the payload JSON, read the reference for the refs index (engine `open_block`).
pub fn open_post(trx: &Trx) {
    if trx.body.kind != TrxKind::Post {
        return;
    }
    let Ok(plain) = trx.open_payload(&group().key) else {
        return;
    };
    if let Ok(payload) = serde_json::from_slice::<PostPayload>(&plain) {
        if let Some((_, target)) = object::reference_of(&payload.object) {
            let _ = TrxId::from_hex(&target);
        }
    }
}

/// Every way a block from a peer is checked, against the fixed group, with the verdicts
/// cross-checked: the detached check is a subset of full verification, and the batch verifier
/// (sync) agrees with the single-block one (gossip).
pub fn check_block(block: &Block, encoded_len: usize) {
    let g = group();
    let head = g.head_for(block.body.height);
    let detached = check_block_detached(block, &g.rules);
    let single = verify_block(block.clone(), &g.rules, &head, NOW_MS);
    let (batch, failure) = verify_blocks(vec![block.clone()], &g.rules, &head, NOW_MS);
    assert!(
        detached.is_ok() || single.is_err(),
        "a block failing the detached check ({detached:?}) verified in full"
    );
    match &single {
        Ok(v) => {
            assert_eq!(
                batch.len(),
                1,
                "verify_blocks rejected a valid block: {failure:?}"
            );
            assert!(failure.is_none());
            assert_eq!(batch[0].hash(), v.hash());
            assert_eq!(v.hash(), block.hash());
            assert_eq!(v.encoded_len(), encoded_len);
            for trx in &v.body.trxs {
                open_post(trx);
            }
        }
        Err(e) => {
            assert!(
                batch.is_empty(),
                "verify_blocks accepted a block verify_block refused: {e}"
            );
            assert!(failure.is_some());
        }
    }
}

/// Every way a trx from a peer is checked against the fixed group.
pub fn check_trx(trx: &Trx, encoded_len: usize) {
    let g = group();
    if let Ok(v) = verify_trx(trx.clone(), &g.rules, NOW_MS) {
        assert_eq!(v.id(), trx.trx_id());
        assert_eq!(v.encoded_len(), encoded_len);
        assert_eq!(encode(trx).len(), encoded_len);
        open_post(trx);
    }
}

/// The block-sync codec exactly as the node's behaviour builds it (libp2p's CBOR codec with the
/// protocol's size limits).
pub fn sync_codec() -> libp2p::request_response::cbor::codec::Codec<
    rumgate::p2p::protocol::BlocksRequest,
    rumgate::p2p::protocol::BlocksResponse,
> {
    use rumgate::p2p::protocol::{MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES};
    libp2p::request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_SYNC_REQUEST_BYTES)
        .set_response_size_maximum(MAX_SYNC_RESPONSE_BYTES)
}

/// What the node does with a message an adapter received: the ActivityStreams object it
/// becomes, through the same validation as an API post.
pub fn to_object(event: &rumgate_gateway::InboundEvent) {
    if let rumgate_gateway::InboundEvent::Message(m) = event {
        let object = rumgate::gateways::render::object_of(m, m.reply_to.clone());
        let _ = object::normalize(object);
    }
}
