//! Writes the seed corpus of the chain and network targets: real blocks, trx, seeds, gossip
//! payloads and sync messages of the fixed fuzzing group, encoded exactly as the node sends them.
//!
//! `cargo run --example gen_corpus` (from `fuzz/`); files land in `corpus/<target>/`, named by
//! what they hold. Re-running overwrites them with identical bytes (everything is deterministic).

use futures::executor::block_on;
use libp2p::request_response::Codec as _;
use rumgate::chain::encoding::encode;
use rumgate::chain::seed::Seed;
use rumgate::chain::{Block, Head, Trx, TrxKind};
use rumgate::p2p::protocol::{
    encode_block, encode_trx, BlocksRequest, BlocksResponse, SYNC_PROTOCOL,
};
use rumgate_fuzz::{group, CREATED_AT, NOW_MS};
use serde_json::json;
use std::path::{Path, PathBuf};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A 1×1 transparent PNG.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let g = group();
    let genesis_head = g.head_for(1);
    let head1 = g.head_for(2);
    let t = CREATED_AT + 10_000;

    let reply = g.post(
        &g.owner,
        json!({"type": "Note", "content": "a reply", "inReplyTo": g.block1.body.trxs[0].trx_id().to_hex()}),
        t,
        2,
    );
    let image = g.post(
        &g.member,
        json!({"type": "Image", "mediaType": "image/png", "url": format!("data:image/png;base64,{PNG_1X1}"), "content": "caption"}),
        t + 1,
        3,
    );
    let like = g.post(&g.member, json!({"type": "Like", "object": ID}), t + 2, 4);
    let update = g.post(
        &g.owner,
        json!({"type": "Update", "object": {"id": ID, "type": "Note", "content": "v2"}}),
        t + 3,
        5,
    );
    let delete = g.post(&g.owner, json!({"type": "Delete", "object": ID}), t + 4, 6);
    let bridged = {
        // A bridged message: the payload carries its origin.
        let plaintext = serde_json::to_vec(&json!({
            "object": {"type": "Note", "content": "from telegram"},
            "origin": {"adapter": "telegram", "chat": "-1001", "message_id": "7", "author": {"id": "1", "name": "Ann"}, "hops": 1}
        }))
        .unwrap_or_default();
        Trx::new_post(
            &g.owner,
            g.rules.group_id,
            &g.key,
            &plaintext,
            t + 5,
            [9; 24],
        )
    };
    let producer = g.control(&g.owner, TrxKind::Producer, &g.member.public(), t + 6);
    let config = g.control(&g.owner, TrxKind::Config, br#"{"name":"renamed"}"#, t + 7);
    let not_owner = g.control(&g.member, TrxKind::Config, b"{}", t + 8);
    let future = g.post(
        &g.member,
        json!({"content": "from the future"}),
        NOW_MS + 3_600_000,
        7,
    );

    let trxs: Vec<(&str, &Trx)> = vec![
        ("post_note", &g.block1.body.trxs[0]),
        ("post_reply", &reply),
        ("post_image", &image),
        ("post_like", &like),
        ("post_update", &update),
        ("post_delete", &delete),
        ("post_bridged", &bridged),
        ("producer", &producer),
        ("config", &config),
        ("config_not_owner", &not_owner),
        ("post_future", &future),
    ];

    let block1: &Block = &g.block1;
    let block2 = g.block(
        &g.owner,
        &head1,
        t + 20,
        vec![reply.clone(), like.clone(), update.clone()],
    );
    let head2 = Head {
        height: 2,
        hash: block2.hash(),
        timestamp: block2.body.timestamp,
    };
    let block3 = g.block(
        &g.owner,
        &head2,
        t + 30,
        vec![delete.clone(), producer.clone()],
    );
    let mixed = g.block(
        &g.owner,
        &genesis_head,
        t + 20,
        vec![image.clone(), bridged.clone(), config.clone()],
    );
    let by_member = g.block(&g.member, &genesis_head, t + 20, vec![like.clone()]);
    let empty = g.block(&g.owner, &genesis_head, t + 20, Vec::new());
    let duplicate = g.block(
        &g.owner,
        &genesis_head,
        t + 20,
        vec![like.clone(), like.clone()],
    );
    let blocks: Vec<(&str, &Block)> = vec![
        ("height1", block1),
        ("height2", &block2),
        ("height3", &block3),
        ("mixed_kinds", &mixed),
        ("not_producer", &by_member),
        ("empty", &empty),
        ("duplicate_trx", &duplicate),
    ];

    // The seeds must reach the deep paths: the valid ones verify against the fixed group.
    let (chain, failure) = rumgate::chain::verify::verify_blocks(
        vec![block1.clone(), block2.clone(), block3.clone()],
        &g.rules,
        &genesis_head,
        NOW_MS,
    );
    assert_eq!(chain.len(), 3, "blocks 1-3 must verify: {failure:?}");
    for (name, block) in [("mixed_kinds", &mixed)] {
        let verified =
            rumgate::chain::verify::verify_block(block.clone(), &g.rules, &genesis_head, NOW_MS);
        assert!(verified.is_ok(), "{name}: {verified:?}");
    }
    for (name, trx) in &trxs[..9] {
        let verified = rumgate::chain::verify::verify_trx((*trx).clone(), &g.rules, NOW_MS);
        assert!(verified.is_ok(), "{name}: {verified:?}");
    }

    for (name, trx) in &trxs {
        write(&root, "trx", name, &encode(*trx))?;
        write(&root, "gossip", &format!("trx_{name}"), &encode_trx(trx))?;
    }
    for (name, block) in &blocks {
        write(&root, "block", name, &encode(*block))?;
        write(
            &root,
            "gossip",
            &format!("block_{name}"),
            &encode_block(block),
        )?;
    }

    // Seeds: public (with the key, padded), private (without), bare blob, and near misses
    // (the plain public URL and an upper-case group id add no coverage to `padded`).
    let public = Seed {
        genesis: (*g.genesis).clone(),
        group_key: Some(*g.key.as_bytes()),
        bootstrap: vec![
            "/ip4/127.0.0.1/tcp/7001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .into(),
            "/dns4/node.example/tcp/7001".into(),
        ],
    };
    let private = Seed {
        genesis: (*g.private_genesis).clone(),
        group_key: None,
        bootstrap: Vec::new(),
    };
    let public_url = public.to_url();
    let blob = public_url
        .rsplit("d=")
        .next()
        .unwrap_or_default()
        .to_string();
    let seeds = [
        ("private", private.to_url()),
        ("bare_blob", blob.clone()),
        ("reordered", format!("rum://seed?d={blob}&v=1")),
        ("version2", public_url.replace("v=1", "v=2")),
        (
            "private_with_key",
            Seed {
                group_key: Some([5; 32]),
                ..private.clone()
            }
            .to_url(),
        ),
        ("padded", format!("  {public_url}\n")),
    ];
    for (name, url) in &seeds {
        write(&root, "seed", name, url.as_bytes())?;
    }

    // Sync: requests and responses through the node's CBOR codec.
    let mut codec = rumgate_fuzz::sync_codec();
    let requests = [
        (
            "from1",
            BlocksRequest {
                group_id: g.rules.group_id,
                from: 1,
                max_blocks: 1024,
                max_bytes: 4 * 1024 * 1024,
            },
        ),
        (
            "from0",
            BlocksRequest {
                group_id: g.rules.group_id,
                from: 0,
                max_blocks: 0,
                max_bytes: 0,
            },
        ),
        (
            "huge_limits",
            BlocksRequest {
                group_id: g.rules.group_id,
                from: u64::MAX,
                max_blocks: u32::MAX,
                max_bytes: u32::MAX,
            },
        ),
    ];
    for (name, req) in requests {
        let mut out = Vec::new();
        block_on(codec.write_request(&SYNC_PROTOCOL, &mut out, req))?;
        write(&root, "sync_request", name, &out)?;
    }
    let bytes = |b: &Block| serde_bytes::ByteBuf::from(encode(b));
    let responses = [
        (
            "blocks_1",
            BlocksResponse::Blocks {
                head_height: 1,
                blocks: vec![bytes(block1)],
            },
        ),
        (
            "blocks_1_to_3",
            BlocksResponse::Blocks {
                head_height: 3,
                blocks: vec![bytes(block1), bytes(&block2), bytes(&block3)],
            },
        ),
        (
            "blocks_2_to_3",
            BlocksResponse::Blocks {
                head_height: 5,
                blocks: vec![bytes(&block2), bytes(&block3)],
            },
        ),
        (
            "blocks_bad_second",
            BlocksResponse::Blocks {
                head_height: 2,
                blocks: vec![bytes(block1), bytes(&by_member)],
            },
        ),
        (
            "no_blocks",
            BlocksResponse::Blocks {
                head_height: 0,
                blocks: Vec::new(),
            },
        ),
        ("unknown_group", BlocksResponse::UnknownGroup),
        ("unavailable", BlocksResponse::Unavailable),
    ];
    for (name, resp) in responses {
        let mut out = Vec::new();
        block_on(codec.write_response(&SYNC_PROTOCOL, &mut out, resp))?;
        write(&root, "sync_response", name, &out)?;
    }

    // Objects as API clients post them.
    let objects = [
        ("shorthand", json!({"content": "hello"})),
        (
            "note",
            json!({"@context": "https://www.w3.org/ns/activitystreams", "type": "Note", "content": "hi", "name": "title"}),
        ),
        (
            "reply",
            json!({"type": "Note", "content": "re", "inReplyTo": ID}),
        ),
        (
            "reply_object",
            json!({"type": "Note", "content": "re", "inReplyTo": {"id": ID.to_uppercase()}}),
        ),
        (
            "image",
            json!({"type": "Image", "url": format!("data:image/png;base64,{PNG_1X1}"), "content": "cap"}),
        ),
        (
            "image_link",
            json!({"type": "Image", "url": {"type": "Link", "href": format!("data:image/gif;base64,R0lGODlhAQABAAAAACw=")}}),
        ),
        ("like", json!({"type": "Like", "object": ID})),
        ("delete", json!({"type": "Delete", "object": {"id": ID}})),
        (
            "update",
            json!({"type": "Update", "object": {"id": ID, "type": "Note", "content": "v2"}}),
        ),
        (
            "update_image",
            json!({"type": "Update", "object": {"id": ID, "type": "Image", "url": format!("data:image/png;base64,{PNG_1X1}")}}),
        ),
        ("unsupported", json!({"type": "Video", "content": "x"})),
        (
            "payload",
            json!({"object": {"type": "Note", "content": "x"}, "origin": {"adapter": "mixin", "hops": 2}}),
        ),
    ];
    for (name, obj) in &objects {
        write(
            &root,
            "object",
            name,
            &serde_json::to_vec(obj).unwrap_or_default(),
        )?;
    }
    println!("corpus written under {}", root.display());
    Ok(())
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}
