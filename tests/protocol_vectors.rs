//! Checks the test vectors printed in docs/PROTOCOL.md against the implementation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rumgate::chain::encoding::encode;
use rumgate::chain::seed::Seed;
use rumgate::chain::verify::{produce_block, verify_block, verify_genesis, verify_trx, GroupRules};
use rumgate::chain::*;
use rumgate::crypto::{GroupKey, Identity};
use std::collections::BTreeMap;

/// RFC 8032 §7.1 TEST 1 secret key, so anyone can cross-check the owner public key.
const OWNER_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn computed() -> BTreeMap<&'static str, String> {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(OWNER_SECRET, &mut secret).unwrap();
    let owner = Identity::from_secret(secret);
    let mut salt = [0u8; 16];
    for (i, b) in salt.iter_mut().enumerate() {
        *b = i as u8;
    }
    let body = GenesisBody {
        version: 1,
        name: "rumgate test vector".into(),
        app: "timeline".into(),
        kind: GroupKind::Public,
        owner: owner.public(),
        consensus: Consensus::Poa,
        created_at: 1_767_225_600_000,
        salt,
    };
    let genesis = Genesis::sign(body.clone(), &owner);
    let genesis = verify_genesis(genesis).unwrap();
    let gid = genesis.group_id();

    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    let group_key = GroupKey::from_bytes(key);
    let mut nonce = [0u8; 24];
    for (i, b) in nonce.iter_mut().enumerate() {
        *b = 0x10 + i as u8;
    }
    let plaintext = br#"{"object":{"type":"Note","content":"hello, rum"}}"#;
    let trx = Trx::new_post(&owner, gid, &group_key, plaintext, 1_767_225_601_000, nonce);
    let rules = GroupRules::from_genesis(&genesis);
    let now = 1_767_225_700_000;
    let vtrx = verify_trx(trx.clone(), &rules, now).unwrap();
    let head = Head::genesis(gid, body.created_at);
    let block = produce_block(&owner, &rules, &head, vec![vtrx], 1_767_225_602_000).unwrap();
    let block = verify_block(block.into_inner(), &rules, &head, now).unwrap();
    let seed = Seed {
        genesis: (*genesis).clone(),
        group_key: Some(key),
        bootstrap: vec![],
    };

    let mut m = BTreeMap::new();
    m.insert("owner_public_key", hex::encode(owner.public()));
    m.insert("genesis_body", hex::encode(encode(&body)));
    m.insert("group_id", gid.to_hex());
    m.insert("genesis_signature", hex::encode(genesis.signature.0));
    m.insert("trx_payload", hex::encode(&trx.body.payload));
    m.insert("trx_body", hex::encode(encode(&trx.body)));
    m.insert("trx_id", trx.trx_id().to_hex());
    m.insert("trx_signature", hex::encode(trx.signature.0));
    m.insert("block_body", hex::encode(encode(&block.body)));
    m.insert("block_hash", block.hash().to_hex());
    m.insert("block_signature", hex::encode(block.signature.0));
    m.insert("seed_url", seed.to_url());
    m
}

fn documented() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let start = doc
        .find("<!-- vectors:begin -->")
        .expect("vectors:begin marker");
    let end = doc
        .find("<!-- vectors:end -->")
        .expect("vectors:end marker");
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc[start..end].lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("<!--") || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line
            .split_once(':')
            .filter(|(k, v)| !k.is_empty() && (v.is_empty() || v.starts_with(' ')))
        {
            if k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                out.insert(k.to_string(), v.trim().to_string());
                current = Some(k.to_string());
                continue;
            }
        }
        // Continuation lines of a long hex value.
        if let Some(k) = &current {
            out.get_mut(k).unwrap().push_str(line);
        }
    }
    out
}

#[test]
fn protocol_md_vectors_match_the_implementation() {
    let computed = computed();
    let documented = documented();
    let mut report = String::new();
    for (k, v) in &computed {
        match documented.get(*k) {
            Some(d) if d == v => {}
            other => report.push_str(&format!("{k}: expected {v}\n   doc has {other:?}\n")),
        }
    }
    assert!(report.is_empty(), "PROTOCOL.md vectors differ:\n{report}");
}

#[test]
fn documented_seed_joins_and_matches_group() {
    let documented = documented();
    let seed = Seed::parse_and_verify(&documented["seed_url"]).unwrap();
    assert_eq!(seed.genesis.group_id().to_hex(), documented["group_id"]);
}
