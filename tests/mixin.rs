//! Mixin end to end: a real node (HTTP API, store, workers) and the fake Mixin (REST + Blaze).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::Api;
use common::{eventually, start_node};
use rumgate_mixin::fake::{FakeBot, FakeMixin, Fault, DAVE, FIXTURE_SEED_HEX};
use serde_json::{json, Value};
use std::time::Duration;

const CONV: &str = "3f6e9a2b-1c4d-4e8f-9a7b-6c5d4e3f2a1b";
const LIMIT: Duration = Duration::from_secs(20);

async fn list_items(api: &Api, gid: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/groups/{gid}/posts?limit=500"))
        .await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn fake() -> FakeMixin {
    let fake = FakeMixin::start(FakeBot::fixture()).await.unwrap();
    fake.add_group(CONV, &[]);
    fake.add_user(DAVE, "Dave");
    fake
}

/// A group, a Mixin gateway on the fake and a `both` link to [`CONV`]: (group, gateway, link).
async fn setup(api: &Api, fake: &FakeMixin) -> (String, String, String) {
    let gid = api.post_ok("/api/v1/groups", json!({"name": "mx"})).await["group_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = fake.config_json();
    body["kind"] = "mixin".into();
    body["name"] = "mx".into();
    let gw = api.post_ok("/api/v1/gateways", body).await;
    let gw_id = gw["id"].as_str().unwrap().to_string();
    let link = api
        .post_ok(
            "/api/v1/links",
            json!({"group_id": gid, "gateway_id": gw_id, "chat": CONV, "direction": "both"}),
        )
        .await;
    (gid, gw_id, link["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn posts_reach_the_conversation_once_and_messages_come_back_as_trx_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = fake().await;
    let (gid, gw_id, link) = setup(&api, &fake).await;

    // The secret is write-only.
    let listed = api.get("/api/v1/gateways").await.to_string();
    assert!(!listed.contains(FIXTURE_SEED_HEX), "{listed}");
    assert!(listed.contains("***"), "{listed}");

    // Out: one post, one Mixin message (after a 202-wrapped 429 and a 500 on the way).
    fake.fail_messages([Fault::RateLimited, Fault::ServerError]);
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts"),
        json!({"content": "hello Mixin"}),
    )
    .await;
    let texts = eventually(LIMIT, "the post in Mixin", || async {
        let t = fake.bot_texts(CONV);
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].ends_with(": hello Mixin"), "{texts:?}");
    let failed: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.path == "/messages" && c.error_code.is_some())
        .map(|c| c.error_code)
        .collect();
    assert_eq!(failed, [Some(429), Some(500)]);

    // In: Dave writes; it becomes a trx with its origin, acknowledged only once stored.
    let id = fake.inject_text(CONV, DAVE, "hi from Mixin");
    eventually(LIMIT, "the ack", || async {
        fake.is_acked(&id).then_some(())
    })
    .await;
    // Acknowledged means stored (as a pending trx); it shows in the timeline once in a block.
    let bridged = eventually(LIMIT, "the bridged post", || async {
        let b: Vec<Value> = list_items(&api, &gid)
            .await
            .into_iter()
            .filter(|i| i["object"]["content"] == "hi from Mixin")
            .collect();
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(bridged.len(), 1, "{bridged:?}");
    let origin = &bridged[0]["origin"];
    assert_eq!(origin["adapter"], "mixin");
    assert_eq!(origin["chat"], CONV);
    assert_eq!(origin["message_id"], id.as_str());
    assert_eq!(origin["author"]["name"], "Dave");
    assert_eq!(origin["gateway"], gw_id.as_str());

    // The outbound worker has passed the bridged trx without sending it back.
    let cursor = bridged[0]["cursor"].as_str().unwrap().to_string();
    eventually(LIMIT, "the worker past the bridged item", || async {
        let s = api.get(&format!("/api/v1/links/{link}")).await;
        let delivered: i64 = s["delivered_cursor"].as_str()?.parse().ok()?;
        (delivered >= cursor.parse::<i64>().ok()?).then_some(())
    })
    .await;
    assert_eq!(fake.bot_texts(CONV).len(), 1, "echoed back to Mixin");

    // Mixin repeats it (a dropped ack): stored once all the same.
    fake.duplicate_deliveries(true);
    fake.drop_sockets();
    let second = fake.inject_text(CONV, DAVE, "second");
    eventually(LIMIT, "the second ack", || async {
        fake.is_acked(&second).then_some(())
    })
    .await;
    let items = eventually(LIMIT, "the second post", || async {
        let items = list_items(&api, &gid).await;
        items
            .iter()
            .any(|i| i["object"]["content"] == "second")
            .then_some(items)
    })
    .await;
    assert!(fake.deliveries(&second) >= 2, "the fake delivered it twice");
    for text in ["hi from Mixin", "second"] {
        let n = items
            .iter()
            .filter(|i| i["object"]["content"] == text)
            .count();
        assert_eq!(n, 1, "{text} stored {n} times");
    }
    node.shutdown().await;
    fake.stop();
}

#[tokio::test]
async fn a_message_that_arrives_while_the_node_is_down_is_stored_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake().await;
    let gid = {
        let node = start_node(dir.path()).await;
        let api = Api::of(&node);
        let (gid, _, _) = setup(&api, &fake).await;
        let first = fake.inject_text(CONV, DAVE, "before");
        eventually(LIMIT, "the first ack", || async {
            fake.is_acked(&first).then_some(())
        })
        .await;
        node.shutdown().await;
        gid
    };
    let id = fake.inject_text(CONV, DAVE, "while down");
    assert!(!fake.is_acked(&id));
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    eventually(LIMIT, "the ack after restart", || async {
        fake.is_acked(&id).then_some(())
    })
    .await;
    let items = eventually(LIMIT, "both posts", || async {
        let items = list_items(&api, &gid).await;
        (items.len() >= 2).then_some(items)
    })
    .await;
    let texts: Vec<&str> = items
        .iter()
        .filter_map(|i| i["object"]["content"].as_str())
        .collect();
    assert_eq!(texts, ["before", "while down"]);
    node.shutdown().await;
    fake.stop();
}

#[tokio::test]
async fn bad_accounts_and_links_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = fake().await;
    let (gid, gw_id, _) = setup(&api, &fake).await;

    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/gateways",
            Some(json!({"kind": "mixin", "name": "bad", "keystore": {
                "app_id": "nope", "session_id": "x", "session_private_key": "zz"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    for key in [
        "keystore.app_id",
        "keystore.session_id",
        "keystore.session_private_key",
    ] {
        assert!(msg.contains(key), "{msg}");
    }
    assert!(!msg.contains("zz"), "{msg}");

    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/gateways",
            Some(
                json!({"kind": "mixin", "name": "nofile", "keystore_file": "/nonexistent/k.json"}),
            ),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("keystore_file"));

    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/links",
            Some(json!({"group_id": gid, "gateway_id": gw_id, "chat": "-1001234", "direction": "both"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("conversation id"));
    node.shutdown().await;
    fake.stop();
}

#[tokio::test]
async fn refused_credentials_make_the_link_failing_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = fake().await;
    let (gid, _, link) = setup(&api, &fake).await;
    fake.reject_auth(true);
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts"),
        json!({"content": "will wait"}),
    )
    .await;
    let status = eventually(LIMIT, "a failing link", || async {
        let s = api.get(&format!("/api/v1/links/{link}")).await;
        (s["health"] == "failing").then_some(s)
    })
    .await;
    let reason = status["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("401"), "{status}");
    assert!(status["dead_letters"].as_array().unwrap().is_empty());
    // Fixed credentials: the waiting post goes out.
    fake.reject_auth(false);
    eventually(LIMIT, "the post after recovery", || async {
        (fake.bot_texts(CONV).len() == 1).then_some(())
    })
    .await;
    node.shutdown().await;
    fake.stop();
}

#[tokio::test]
async fn a_keystore_file_stays_out_of_the_database_and_a_missing_one_is_a_clear_link_error() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let keystore = keys.path().join("keystore.json");
    let fake = fake().await;
    std::fs::write(&keystore, fake.bot().keystore_json().to_string()).unwrap();
    let link = {
        let node = start_node(dir.path()).await;
        let api = Api::of(&node);
        let gid = api.group("file").await;
        let gw = api
            .post_ok(
                "/api/v1/gateways",
                json!({"kind": "mixin", "name": "mxf", "keystore_file": keystore,
                       "api_url": fake.api_url(), "blaze_url": fake.blaze_url()}),
            )
            .await;
        assert_eq!(
            gw["config"]["keystore_file"],
            keystore.display().to_string()
        );
        let link = api
            .post_ok(
                "/api/v1/links",
                json!({"group_id": gid, "gateway_id": "mxf", "chat": CONV, "direction": "both"}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        api.post_ok(
            &format!("/api/v1/groups/{gid}/posts"),
            json!({"content": "via file"}),
        )
        .await;
        eventually(LIMIT, "the post in Mixin", || async {
            (fake.bot_texts(CONV).len() == 1).then_some(())
        })
        .await;
        node.shutdown().await;
        link
    };
    // The session key is in the file, not in the database.
    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            db.extend(std::fs::read(path).unwrap());
        }
    }
    let seed = FIXTURE_SEED_HEX.as_bytes();
    assert!(
        !db.windows(seed.len()).any(|w| w == seed),
        "the key leaked into the data dir"
    );

    std::fs::remove_file(&keystore).unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let status = api.get(&format!("/api/v1/links/{link}")).await;
    assert_eq!(status["health"], "failing", "{status}");
    let reason = status["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("keystore_file"), "{status}");
    node.shutdown().await;
    fake.stop();
}
