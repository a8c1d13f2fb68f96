//! REST API behaviour through the real router (`oneshot`, no socket) over a real node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{app, eventually, start_node, TOKEN};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    raw(app, req.body(body).unwrap()).await
}

async fn raw(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON body for {status}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {v}"))
}

async fn create_group(app: &axum::Router, name: &str, kind: &str) -> Value {
    let (s, v) = call(
        app,
        Method::POST,
        "/api/v1/groups",
        Some(TOKEN),
        Some(json!({"name": name, "kind": kind})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn post_text(app: &axum::Router, gid: &str, text: &str) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/groups/{gid}/posts"),
        Some(TOKEN),
        Some(json!({"content": text})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "pending");
    v["trx_id"].as_str().unwrap().to_string()
}

async fn wait_included(app: &axum::Router, trx_id: &str) -> Value {
    eventually(Duration::from_secs(10), "trx inclusion", || async {
        let (_, v) = call(
            app,
            Method::GET,
            &format!("/api/v1/trx/{trx_id}"),
            Some(TOKEN),
            None,
        )
        .await;
        (v["status"] == "included").then_some(v)
    })
    .await
}

#[tokio::test]
async fn health_needs_no_token_but_everything_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let app = app(&node);
    let (s, v) = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    for uri in ["/api/v1/node", "/api/v1/groups", "/api/v1/trx/00"] {
        let (s, v) = call(&app, Method::GET, uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(code(&v), "unauthorized");
        let (s, _) = call(
            &app,
            Method::GET,
            uri,
            Some("wrong-token-wrong-token"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (s, v) = call(&app, Method::GET, "/api/v1/node", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    node.shutdown().await;
}

#[tokio::test]
async fn create_post_read_back_in_order_with_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let app = app(&node);
    let g = create_group(&app, "notes", "public").await;
    let gid = g["group_id"].as_str().unwrap();
    assert_eq!(g["role"], "owner");
    assert!(g["seed"].as_str().unwrap().starts_with("rum://seed?v=1&g="));

    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(post_text(&app, gid, &format!("post {i}")).await);
    }
    let last = wait_included(&app, ids.last().unwrap()).await;
    assert!(last["height"].as_u64().unwrap() >= 1);

    // Page through with limit=3 and `after`.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (s, v) = call(
            &app,
            Method::GET,
            &format!("/api/v1/groups/{gid}/posts?limit=3&after={after}"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().unwrap();
        if items.is_empty() {
            assert_eq!(v["next_cursor"].as_str().unwrap(), after);
            break;
        }
        assert!(items.len() <= 3);
        for it in items {
            seen.push((
                it["trx_id"].as_str().unwrap().to_string(),
                it["object"]["content"].as_str().unwrap().to_string(),
            ));
        }
        after = v["next_cursor"].as_str().unwrap().to_string();
    }
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("post {i}")))
        .collect();
    assert_eq!(seen, expected);

    // Blocks link up and list every trx exactly once.
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}/blocks"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let blocks = v["blocks"].as_array().unwrap();
    let mut prev = gid.to_string();
    let mut trx_in_blocks = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b["height"].as_u64().unwrap(), i as u64 + 1);
        assert_eq!(b["prev_hash"].as_str().unwrap(), prev);
        prev = b["hash"].as_str().unwrap().to_string();
        assert!(
            !b["trx_ids"].as_array().unwrap().is_empty(),
            "no empty blocks"
        );
        trx_in_blocks.extend(
            b["trx_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string()),
        );
    }
    assert_eq!(trx_in_blocks, ids);
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}/blocks/1"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["height"], 1);
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}/blocks/999"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_block"));
    node.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_4xx_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let app = app(&node);
    let g = create_group(&app, "g", "public").await;
    let gid = g["group_id"].as_str().unwrap();
    let posts = format!("/api/v1/groups/{gid}/posts");

    let req = |body: &str, ct: Option<&str>| {
        let mut r = Request::post(&posts).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if let Some(ct) = ct {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    let (s, v) = raw(&app, req("{not json", Some("application/json"))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let (s, v) = raw(&app, req("{\"content\":\"x\"}", None)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let big = format!("{{\"content\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, v) = raw(&app, req(&big, Some("application/json"))).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));

    for (body, field) in [
        (json!({"content": ""}), "content"),
        (json!({"content": 42}), "content"),
        (json!({"type": "Note"}), "content"),
        (json!({"type": "Hologram", "content": "x"}), "Hologram"),
        (json!(["not", "an", "object"]), "JSON object"),
    ] {
        let (s, v) = call(&app, Method::POST, &posts, Some(TOKEN), Some(body.clone())).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_object"),
            "{body}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }

    let unknown = "ab".repeat(32);
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("/api/v1/groups/{unknown}/posts"),
        Some(TOKEN),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_group"));
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{unknown}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_group"));
    let (s, v) = call(
        &app,
        Method::GET,
        "/api/v1/groups/not-hex",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_group_id"));
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("{posts}?after=-3"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_cursor"));
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("{posts}?limit=abc"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}/blocks/xyz"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_path"));
    let (s, v) = call(&app, Method::GET, "/api/v1/trx/zz", Some(TOKEN), None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_trx_id"));
    let (s, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/trx/{unknown}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_trx"));
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/groups",
        Some(TOKEN),
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/groups",
        Some(TOKEN),
        Some(json!({"name": "x", "kind": "secret"})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let (s, v) = call(&app, Method::GET, "/api/v1/nope", Some(TOKEN), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = call(&app, Method::PUT, "/api/v1/groups", Some(TOKEN), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    node.shutdown().await;
}

#[tokio::test]
async fn join_rejects_tampered_seeds_with_clear_errors() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = start_node(a_dir.path()).await;
    let b = start_node(b_dir.path()).await;
    let (a_app, b_app) = (app(&a), app(&b));
    let g = create_group(&a_app, "shared", "public").await;
    let seed = g["seed"].as_str().unwrap().to_string();
    let gid = g["group_id"].as_str().unwrap().to_string();

    // Mismatched hash: the stated group id is not the genesis hash.
    let wrong_g = seed.replace(&gid, &"0".repeat(64));
    let (s, v) = call(
        &b_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": wrong_g})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_seed"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hashes to"),
        "{v}"
    );

    // Bad owner signature: flip one bit of the signature inside the seed data, keep `g` consistent.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let d = seed.split("&d=").nth(1).unwrap();
    let mut bytes = b64.decode(d).unwrap();
    let decoded: rumgate::chain::seed::Seed = rumgate::chain::encoding::decode(&bytes).unwrap();
    let body_len = rumgate::chain::encoding::encode(&decoded.genesis.body).len();
    bytes[body_len + 3] ^= 0x01; // inside the 64 signature bytes that follow the body
    let tampered = format!("rum://seed?v=1&g={gid}&d={}", b64.encode(&bytes));
    let (s, v) = call(
        &b_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": tampered})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_seed"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad signature on genesis"),
        "{v}"
    );

    for junk in ["", "hello", "rum://seed?v=2&d=AA", "rum://seed?v=1&d=!!!"] {
        let (s, v) = call(
            &b_app,
            Method::POST,
            "/api/v1/groups/join",
            Some(TOKEN),
            Some(json!({"seed": junk})),
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_seed"),
            "{junk}"
        );
    }
    // Nothing was stored by the failed joins.
    let (_, v) = call(&b_app, Method::GET, "/api/v1/groups", Some(TOKEN), None).await;
    assert_eq!(v["groups"].as_array().unwrap().len(), 0);

    // The genuine seed joins (201), a second join is 200, and the joiner is a member.
    let (s, v) = call(
        &b_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": seed})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["role"], "member");
    assert_eq!(v["group_id"], gid.as_str());
    let (s, _) = call(
        &b_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": seed})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The owner joining its own seed is also a no-op 200.
    let (s, _) = call(
        &a_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": seed})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn private_group_seed_carries_no_key_and_joiner_is_relay_only() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = start_node(a_dir.path()).await;
    let b = start_node(b_dir.path()).await;
    let (a_app, b_app) = (app(&a), app(&b));
    let g = create_group(&a_app, "private", "private").await;
    let seed = g["seed"].as_str().unwrap();
    let parsed = rumgate::chain::seed::Seed::parse_and_verify(seed).unwrap();
    assert!(parsed.group_key.is_none());
    let (s, v) = call(
        &b_app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": seed})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["role"], "relay-only");
    let gid = v["group_id"].as_str().unwrap();
    let (s, v) = call(
        &b_app,
        Method::POST,
        &format!("/api/v1/groups/{gid}/posts"),
        Some(TOKEN),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "no_group_key"));
    // The owner can post in its private group.
    post_text(&a_app, gid, "owner only").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn leave_then_rejoin_keeps_data_and_purge_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let app = app(&node);
    let g = create_group(&app, "g", "public").await;
    let gid = g["group_id"].as_str().unwrap();
    let seed = g["seed"].as_str().unwrap();
    let id = post_text(&app, gid, "keep me").await;
    wait_included(&app, &id).await;

    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/groups/{gid}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/groups/{gid}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_group"));

    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/groups/join",
        Some(TOKEN),
        Some(json!({"seed": seed})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["role"], "owner");
    assert_eq!(v["height"], 1);
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/groups/{gid}/posts"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(v["items"][0]["object"]["content"], "keep me");
    // Posting still works after rejoin: the chain continues at height 2.
    let id2 = post_text(&app, gid, "after rejoin").await;
    assert_eq!(wait_included(&app, &id2).await["height"], 2);

    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/groups/{gid}?purge=true"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["purged"], true);
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/trx/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code(&v), "unknown_trx");
    node.shutdown().await;
}

#[tokio::test]
async fn duplicate_trx_is_refused_by_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let app = app(&node);
    let g = create_group(&app, "g", "public").await;
    let gid = rumgate::chain::GroupId::from_hex(g["group_id"].as_str().unwrap()).unwrap();
    let id = post_text(&app, &gid.to_hex(), "once").await;
    let included = wait_included(&app, &id).await;
    let store = node.engine().store().clone();
    let stored = store
        .trx_status(rumgate::chain::TrxId::from_hex(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let rumgate::store::TrxStatus::Included(row) = stored else {
        panic!("not included")
    };
    let entry = node.engine().group(&gid).unwrap();
    let v =
        rumgate::chain::verify::verify_trx(row.trx, &entry.rules, rumgate::util::now_ms()).unwrap();
    let err = store.insert_pending(&v, 0).await.unwrap_err();
    assert!(
        matches!(err, rumgate::store::StoreError::Duplicate(_)),
        "{err}"
    );
    assert_eq!(included["height"], 1);
    node.shutdown().await;
}

#[tokio::test]
async fn pending_trx_that_no_longer_verifies_is_rejected_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let router = app(&node);
    let g = create_group(&router, "g", "public").await;
    let gid = rumgate::chain::GroupId::from_hex(g["group_id"].as_str().unwrap()).unwrap();
    let entry = node.engine().group(&gid).unwrap();
    // Signed an hour ahead: it verifies only against a clock an hour ahead.
    let later = rumgate::util::now_ms() + 3_600_000;
    let other = rumgate::crypto::Identity::generate();
    let trx = rumgate::chain::Trx::new_post(
        &other,
        gid,
        entry.key.as_ref().unwrap(),
        b"{}",
        later,
        [1; 24],
    );
    let v = rumgate::chain::verify::verify_trx(trx, &entry.rules, later).unwrap();
    node.engine()
        .store()
        .insert_pending(&v, later)
        .await
        .unwrap();
    let id = v.id().to_hex();
    node.shutdown().await;

    let node = start_node(dir.path()).await;
    let router = app(&node);
    let (s, v) = call(
        &router,
        Method::GET,
        &format!("/api/v1/trx/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "rejected");
    assert!(v["reason"].as_str().unwrap().contains("future"), "{v}");
    let (_, info) = call(
        &router,
        Method::GET,
        &format!("/api/v1/groups/{gid}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(info["pending"], 0);
    node.shutdown().await;
}
