//! Protocol tests: canonical encoding round-trips and rejection of tampered trx and blocks.

use super::encoding::{decode, encode, DecodeError};
use super::verify::{produce_block, verify_block, verify_genesis, verify_trx, GroupRules};
use super::*;
use crate::crypto::{GroupKey, Identity, Signature};
use proptest::prelude::*;

const NOW: u64 = 1_767_225_600_000;

fn group(owner: &Identity, kind: GroupKind) -> (Verified<Genesis>, GroupRules, GroupKey) {
    let body = GenesisBody {
        version: PROTOCOL_VERSION,
        name: "g".into(),
        app: "timeline".into(),
        kind,
        owner: owner.public(),
        consensus: Consensus::Poa,
        created_at: NOW - 1000,
        salt: [9; 16],
    };
    let g = verify_genesis(Genesis::sign(body, owner)).unwrap();
    let rules = GroupRules::from_genesis(&g);
    (g, rules, GroupKey::generate())
}

fn post(sender: &Identity, rules: &GroupRules, key: &GroupKey, text: &str) -> Trx {
    Trx::new_post(
        sender,
        rules.group_id,
        key,
        text.as_bytes(),
        NOW,
        crate::crypto::random_bytes(),
    )
}

fn first_head(rules: &GroupRules) -> Head {
    Head::genesis(rules.group_id, NOW - 1000)
}

fn block_of(owner: &Identity, rules: &GroupRules, head: &Head, trxs: Vec<Trx>) -> Block {
    let verified = trxs
        .into_iter()
        .map(|t| verify_trx(t, rules, NOW).unwrap())
        .collect();
    produce_block(owner, rules, head, verified, NOW)
        .unwrap()
        .into_inner()
}

#[test]
fn valid_trx_and_block_verify() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let t = post(&owner, &rules, &key, "hi");
    let head = first_head(&rules);
    let b = block_of(&owner, &rules, &head, vec![t.clone()]);
    let vb = verify_block(b, &rules, &head, NOW).unwrap();
    assert_eq!(vb.body.height, 1);
    assert_eq!(vb.body.prev_hash, head.hash);
    assert_eq!(vb.body.trxs[0].open_payload(&key).unwrap(), b"hi");
}

#[test]
fn rejects_trx_with_bad_signature() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let mut t = post(&owner, &rules, &key, "hi");
    t.signature.0[5] ^= 0x40;
    assert_eq!(
        verify_trx(t, &rules, NOW).unwrap_err(),
        ChainError::BadSignature("trx")
    );
    // A changed payload under the original signature fails the same way.
    let mut t = post(&owner, &rules, &key, "hi");
    t.body.payload[0] ^= 1;
    assert_eq!(
        verify_trx(t, &rules, NOW).unwrap_err(),
        ChainError::BadSignature("trx")
    );
}

#[test]
fn rejects_trx_signed_by_someone_else() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let mut t = post(&owner, &rules, &key, "hi");
    t.signature = Identity::generate().sign(&t.trx_id().0);
    assert_eq!(
        verify_trx(t, &rules, NOW).unwrap_err(),
        ChainError::BadSignature("trx")
    );
}

#[test]
fn rejects_trx_for_wrong_group() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let (_, other, _) = group(&Identity::generate(), GroupKind::Public);
    let t = post(&owner, &other, &key, "hi");
    assert!(matches!(
        verify_trx(t, &rules, NOW),
        Err(ChainError::WrongGroup { .. })
    ));
}

#[test]
fn rejects_oversize_trx() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let big = "x".repeat(MAX_TRX_BYTES);
    let t = post(&owner, &rules, &key, &big);
    assert!(matches!(
        verify_trx(t, &rules, NOW),
        Err(ChainError::TooLarge { what: "trx", .. })
    ));
}

#[test]
fn rejects_trx_from_the_future() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let t = Trx::new_post(
        &owner,
        rules.group_id,
        &key,
        b"x",
        NOW + MAX_FUTURE_SKEW_MS + 1,
        [0; 24],
    );
    assert!(matches!(
        verify_trx(t, &rules, NOW),
        Err(ChainError::Timestamp { .. })
    ));
}

#[test]
fn private_group_rejects_posts_from_non_members() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Private);
    let stranger = Identity::generate();
    let t = post(&stranger, &rules, &key, "hi");
    assert!(matches!(
        verify_trx(t, &rules, NOW),
        Err(ChainError::SenderNotAllowed { .. })
    ));
    assert!(verify_trx(post(&owner, &rules, &key, "hi"), &rules, NOW).is_ok());
}

#[test]
fn rejects_block_with_wrong_prev_hash_or_height() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let head = first_head(&rules);
    let b = block_of(&owner, &rules, &head, vec![post(&owner, &rules, &key, "a")]);
    let mut bad = b.clone();
    bad.body.prev_hash = BlockHash([7; 32]);
    let bad = Block::sign(bad.body, &owner);
    assert!(matches!(
        verify_block(bad, &rules, &head, NOW),
        Err(ChainError::WrongPrevHash { .. })
    ));
    let mut bad = b.clone();
    bad.body.height = 2;
    let bad = Block::sign(bad.body, &owner);
    assert!(matches!(
        verify_block(bad, &rules, &head, NOW),
        Err(ChainError::WrongHeight { .. })
    ));
}

#[test]
fn rejects_block_with_bad_signature_or_foreign_producer() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let head = first_head(&rules);
    let mut b = block_of(&owner, &rules, &head, vec![post(&owner, &rules, &key, "a")]);
    b.signature.0[0] ^= 1;
    assert_eq!(
        verify_block(b, &rules, &head, NOW).unwrap_err(),
        ChainError::BadSignature("block")
    );
    let intruder = Identity::generate();
    let mut b = block_of(&owner, &rules, &head, vec![post(&owner, &rules, &key, "a")]);
    b.body.producer = intruder.public();
    let b = Block::sign(b.body, &intruder);
    assert!(matches!(
        verify_block(b, &rules, &head, NOW),
        Err(ChainError::NotProducer(_))
    ));
}

#[test]
fn rejects_block_with_tampered_trx_inside() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let head = first_head(&rules);
    let mut b = block_of(&owner, &rules, &head, vec![post(&owner, &rules, &key, "a")]);
    b.body.trxs[0].body.payload[0] ^= 1;
    // Re-signed by the producer, so only the inner trx signature catches it.
    let b = Block::sign(b.body, &owner);
    assert_eq!(
        verify_block(b, &rules, &head, NOW).unwrap_err(),
        ChainError::BadSignature("trx")
    );
}

fn chain_of(
    owner: &Identity,
    rules: &GroupRules,
    key: &GroupKey,
    n: usize,
    per: usize,
) -> Vec<Block> {
    let mut head = first_head(rules);
    let mut out = Vec::new();
    for i in 0..n {
        let trxs = (0..per)
            .map(|j| post(owner, rules, key, &format!("{i}/{j}")))
            .collect();
        let b = block_of(owner, rules, &head, trxs);
        head = Head {
            height: b.body.height,
            hash: b.hash(),
            timestamp: b.body.timestamp,
        };
        out.push(b);
    }
    out
}

#[test]
fn verify_blocks_accepts_a_linked_batch() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    // Enough trx to take the parallel path.
    let blocks = chain_of(&owner, &rules, &key, 5, 60);
    let (ok, err) = verify::verify_blocks(blocks.clone(), &rules, &first_head(&rules), NOW);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(ok.len(), 5);
    assert_eq!(ok[4].hash(), blocks[4].hash());
}

#[test]
fn verify_blocks_stops_at_the_first_bad_block() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let mut blocks = chain_of(&owner, &rules, &key, 4, 40);
    // Block 3 carries a tampered trx, re-signed by the producer: only the trx check sees it.
    blocks[2].body.trxs[7].body.payload[0] ^= 1;
    blocks[2] = Block::sign(blocks[2].body.clone(), &owner);
    let (ok, err) = verify::verify_blocks(blocks.clone(), &rules, &first_head(&rules), NOW);
    assert_eq!(ok.len(), 2);
    assert_eq!(err, Some((3, ChainError::BadSignature("trx"))));
    // A wrong link is caught in the header pass.
    let mut blocks = chain_of(&owner, &rules, &key, 3, 1);
    blocks.swap(1, 2);
    let (ok, err) = verify::verify_blocks(blocks, &rules, &first_head(&rules), NOW);
    assert_eq!(ok.len(), 1);
    assert!(
        matches!(err, Some((3, ChainError::WrongHeight { .. }))),
        "{err:?}"
    );
}

#[test]
fn detached_check_sees_signature_and_producer_but_not_linkage() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let blocks = chain_of(&owner, &rules, &key, 3, 1);
    assert!(verify::check_block_detached(&blocks[2], &rules).is_ok());
    let mut bad = blocks[2].clone();
    bad.signature.0[0] ^= 1;
    assert_eq!(
        verify::check_block_detached(&bad, &rules),
        Err(ChainError::BadSignature("block"))
    );
    let stranger = Identity::generate();
    let foreign = Block::sign(blocks[2].body.clone(), &stranger);
    assert!(verify::check_block_detached(&foreign, &rules).is_err());
}

#[test]
fn rejects_block_with_duplicate_trx_or_no_trx() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let head = first_head(&rules);
    let t = post(&owner, &rules, &key, "a");
    let mut b = block_of(&owner, &rules, &head, vec![t.clone()]);
    b.body.trxs.push(t);
    let b = Block::sign(b.body, &owner);
    assert!(matches!(
        verify_block(b, &rules, &head, NOW),
        Err(ChainError::DuplicateTrx(_))
    ));
    let mut b = block_of(&owner, &rules, &head, vec![post(&owner, &rules, &key, "b")]);
    b.body.trxs.clear();
    let b = Block::sign(b.body, &owner);
    assert_eq!(
        verify_block(b, &rules, &head, NOW).unwrap_err(),
        ChainError::EmptyBlock
    );
}

#[test]
fn rejects_block_from_wrong_group() {
    let owner = Identity::generate();
    let (_, rules, _) = group(&owner, GroupKind::Public);
    let other_owner = Identity::generate();
    let (_, other_rules, other_key) = group(&other_owner, GroupKind::Public);
    assert_ne!(rules.group_id, other_rules.group_id);
    let head = first_head(&other_rules);
    let b = block_of(
        &other_owner,
        &other_rules,
        &head,
        vec![post(&other_owner, &other_rules, &other_key, "a")],
    );
    assert!(matches!(
        verify_block(b, &rules, &first_head(&rules), NOW),
        Err(ChainError::WrongGroup { .. })
    ));
}

#[test]
fn genesis_with_bad_owner_signature_is_rejected() {
    let owner = Identity::generate();
    let (g, _, _) = group(&owner, GroupKind::Public);
    let mut g = g.into_inner();
    g.body.name = "renamed".into();
    assert_eq!(
        verify_genesis(g).unwrap_err(),
        ChainError::BadSignature("genesis")
    );
}

#[test]
fn decode_rejects_trailing_and_truncated_bytes() {
    let owner = Identity::generate();
    let (_, rules, key) = group(&owner, GroupKind::Public);
    let t = post(&owner, &rules, &key, "hi");
    let mut bytes = encode(&t);
    assert_eq!(decode::<Trx>(&bytes).unwrap(), t);
    bytes.push(0);
    assert_eq!(decode::<Trx>(&bytes).unwrap_err(), DecodeError::Trailing(1));
    bytes.truncate(bytes.len() - 10);
    assert!(matches!(
        decode::<Trx>(&bytes),
        Err(DecodeError::Malformed(_))
    ));
}

fn arb_trx() -> impl Strategy<Value = Trx> {
    (
        any::<[u8; 32]>(),
        0u64..u64::MAX,
        any::<[u8; 24]>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        0usize..4,
    )
        .prop_map(|(g, ts, nonce, payload, sender, sig, kind)| Trx {
            body: TrxBody {
                version: PROTOCOL_VERSION,
                group_id: GroupId(g),
                kind: [
                    TrxKind::Post,
                    TrxKind::Producer,
                    TrxKind::Member,
                    TrxKind::Config,
                ][kind],
                sender,
                timestamp: ts,
                nonce,
                payload,
            },
            signature: Signature({
                let mut s = [0u8; 64];
                s[..32].copy_from_slice(&sig);
                s[32..].copy_from_slice(&g);
                s
            }),
        })
}

proptest! {
    #[test]
    fn trx_encoding_round_trips(t in arb_trx()) {
        let bytes = encode(&t);
        prop_assert_eq!(decode::<Trx>(&bytes).unwrap(), t);
    }

    #[test]
    fn block_encoding_round_trips(
        trxs in proptest::collection::vec(arb_trx(), 0..5),
        height in any::<u64>(),
        ts in any::<u64>(),
        prev in any::<[u8; 32]>(),
    ) {
        let b = Block {
            body: BlockBody {
                version: PROTOCOL_VERSION,
                group_id: GroupId(prev),
                height,
                prev_hash: BlockHash(prev),
                timestamp: ts,
                producer: prev,
                trxs,
            },
            signature: Signature([3; 64]),
        };
        let bytes = encode(&b);
        prop_assert_eq!(decode::<Block>(&bytes).unwrap(), b);
    }

    #[test]
    fn genesis_encoding_round_trips(name in ".{0,64}", created in any::<u64>(), salt in any::<[u8; 16]>(), private in any::<bool>()) {
        let g = Genesis {
            body: GenesisBody {
                version: PROTOCOL_VERSION,
                name,
                app: "timeline".into(),
                kind: if private { GroupKind::Private } else { GroupKind::Public },
                owner: [5; 32],
                consensus: Consensus::Poa,
                created_at: created,
                salt,
            },
            signature: Signature([1; 64]),
        };
        prop_assert_eq!(decode::<Genesis>(&encode(&g)).unwrap(), g);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Trx>(&bytes);
        let _ = decode::<Block>(&bytes);
        let _ = decode::<super::seed::Seed>(&bytes);
    }
}
