//! Telegram end to end: real nodes (HTTP API, store, workers) and the fake Bot API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::Api;
use common::{eventually, start_node};
use rumgate_telegram::fake::{FakeBotApi, Incoming};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const CHAT_A: i64 = -1001111111111;
const CHAT_B: i64 = -1002222222222;

async fn telegram_gateway(api: &Api, fake: &FakeBotApi) -> String {
    api.gateway(
        json!({"kind": "telegram", "name": "tg", "token": fake.token(), "api_url": fake.url()}),
    )
    .await
}

async fn link(api: &Api, gid: &str, gw: &str, chat: i64, direction: &str) -> String {
    api.link(json!({"group_id": gid, "gateway_id": gw, "chat": chat.to_string(), "direction": direction}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn bot_texts(fake: &FakeBotApi, chat: i64) -> Vec<String> {
    fake.visible_bot_messages(chat)
        .into_iter()
        .map(|m| m.text)
        .collect()
}

/// Waits until `chat` shows exactly `n` messages from the bot; returns their texts.
async fn wait_bot_texts(fake: &FakeBotApi, chat: i64, n: usize) -> Vec<String> {
    eventually(LIMIT, &format!("{n} bot messages in {chat}"), || async {
        let t = bot_texts(fake, chat);
        (t.len() >= n).then_some(t)
    })
    .await
}

#[tokio::test]
async fn inbound_is_stored_once_not_echoed_to_its_chat_but_mirrored_to_other_links() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = FakeBotApi::start().await;
    let gid = api.group("tg").await;
    let gw = telegram_gateway(&api, &fake).await;
    let a = link(&api, &gid, &gw, CHAT_A, "both").await;
    link(&api, &gid, &gw, CHAT_B, "out").await;

    // The token is write-only.
    let listed = api.get("/api/v1/gateways").await.to_string();
    assert!(!listed.contains(fake.token()), "{listed}");
    assert!(listed.contains("***"), "{listed}");

    fake.inject_message(
        &CHAT_A.to_string(),
        Incoming::text("hi from A").from(5012345678, "Alice"),
    );
    let texts = eventually(LIMIT, "the Telegram message as a post", || async {
        let t = api.texts(&gid).await;
        t.iter().any(|t| t.contains("hi from A")).then_some(t)
    })
    .await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let items = api.get(&format!("/api/v1/groups/{gid}/posts")).await;
    let origin = &items["items"][0]["origin"];
    assert_eq!(origin["chat"], CHAT_A.to_string(), "{origin}");
    assert!(origin["author"].to_string().contains("Alice"), "{origin}");

    // Mirrored to the other chat, with its author.
    let b = wait_bot_texts(&fake, CHAT_B, 1).await;
    assert!(
        b[0].contains("Alice") && b[0].contains("hi from A"),
        "{b:?}"
    );

    // A post from the group reaches both chats; by then A's worker has passed the inbound item,
    // so its absence in A is the no-echo rule, not a delay.
    api.note(&gid, "from rum").await;
    let a_texts = wait_bot_texts(&fake, CHAT_A, 1).await;
    assert_eq!(a_texts.len(), 1, "{a_texts:?}");
    assert!(a_texts[0].ends_with("from rum"), "{a_texts:?}");
    let b = wait_bot_texts(&fake, CHAT_B, 2).await;
    assert!(b[1].ends_with("from rum"), "{b:?}");
    let status = api.get(&format!("/api/v1/links/{a}")).await;
    assert_eq!(status["health"], "ok", "{status}");
    assert_eq!(status["chat"], CHAT_A.to_string());
    node.shutdown().await;
}

#[tokio::test]
async fn edits_and_deletes_follow_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = FakeBotApi::start().await;
    let gid = api.group("edits").await;
    let gw = telegram_gateway(&api, &fake).await;
    link(&api, &gid, &gw, CHAT_A, "both").await;

    // Out: a post, its Update, its Delete.
    let trx = api.note(&gid, "first version").await;
    wait_bot_texts(&fake, CHAT_A, 1).await;
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts"),
        json!({"type": "Update", "object": {"id": trx, "type": "Note", "content": "second version"}}),
    )
    .await;
    let edited = eventually(LIMIT, "the edit in Telegram", || async {
        let m = fake.messages(CHAT_A).into_iter().find(|m| m.from_bot)?;
        (m.edited && m.text.ends_with("second version")).then_some(m)
    })
    .await;
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts"),
        json!({"type": "Delete", "object": trx}),
    )
    .await;
    eventually(LIMIT, "the delete in Telegram", || async {
        fake.messages(CHAT_A)
            .iter()
            .any(|m| m.message_id == edited.message_id && m.deleted)
            .then_some(())
    })
    .await;
    assert!(fake
        .calls_to("editMessageText")
        .iter()
        .all(|c| c.status == 200));

    // In: a message, then its edit → the post's current state changes.
    let id = fake.inject_text(&CHAT_A.to_string(), "typo hree");
    eventually(LIMIT, "the message as a post", || async {
        api.texts(&gid)
            .await
            .iter()
            .any(|t| t.contains("typo hree"))
            .then_some(())
    })
    .await;
    fake.inject_edit(&CHAT_A.to_string(), id, "typo here");
    eventually(LIMIT, "the edit as an Update", || async {
        let t = api.texts(&gid).await;
        (t.iter().any(|t| t.contains("typo here")) && !t.iter().any(|t| t.contains("hree")))
            .then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_supergroup_migration_mid_stream_moves_the_link_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = FakeBotApi::start().await;
    let (old, new) = (-4512345678i64, -1005678901234i64);
    let gid = api.group("migrating").await;
    let gw = telegram_gateway(&api, &fake).await;
    let l = link(&api, &gid, &gw, old, "both").await;
    for i in 0..3 {
        api.note(&gid, &format!("before {i}")).await;
    }
    wait_bot_texts(&fake, old, 3).await;
    fake.migrate_chat(old, new);
    for i in 0..3 {
        api.note(&gid, &format!("after {i}")).await;
    }
    let moved = wait_bot_texts(&fake, new, 3).await;
    for (i, t) in moved.iter().enumerate() {
        assert!(t.ends_with(&format!("after {i}")), "{moved:?}");
    }
    let stayed = bot_texts(&fake, old);
    assert_eq!(stayed.len(), 3, "{stayed:?}");
    for (i, t) in stayed.iter().enumerate() {
        assert!(t.ends_with(&format!("before {i}")), "{stayed:?}");
    }
    let new_id = new.to_string();
    let status = eventually(LIMIT, "the link on the new chat", || async {
        let s = api.get(&format!("/api/v1/links/{l}")).await;
        (s["chat"] == new_id.as_str()).then_some(s)
    })
    .await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("migrated"),
        "the status says why the chat changed: {status}"
    );
    // Messages written in the supergroup come in through the moved link.
    fake.inject_text(&new.to_string(), "hello from the supergroup");
    eventually(LIMIT, "the supergroup message as a post", || async {
        api.texts(&gid)
            .await
            .iter()
            .any(|t| t.contains("hello from the supergroup"))
            .then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn the_bot_removed_from_a_chat_fails_that_link_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = FakeBotApi::start().await;
    let gid = api.group("kicked").await;
    let gw = telegram_gateway(&api, &fake).await;
    let a = link(&api, &gid, &gw, CHAT_A, "both").await;
    let b = link(&api, &gid, &gw, CHAT_B, "both").await;
    fake.kick_bot(CHAT_A);
    let sa = eventually(LIMIT, "link A failing", || async {
        let s = api.get(&format!("/api/v1/links/{a}")).await;
        (s["health"] == "failing").then_some(s)
    })
    .await;
    assert!(
        sa["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(&CHAT_A.to_string()),
        "{sa}"
    );
    api.note(&gid, "still here").await;
    wait_bot_texts(&fake, CHAT_B, 1).await;
    let sb = api.get(&format!("/api/v1/links/{b}")).await;
    assert_ne!(sb["health"], "failing", "{sb}");
    node.shutdown().await;
}

/// SIGKILL of the real binary while updates are read: every update is stored exactly once after
/// the restart (the offset is confirmed to Telegram only after the trx are stored).
#[tokio::test]
async fn kill_9_while_reading_updates_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBotApi::start().await;
    let envs = [("RUMGATE_API_TOKEN", common::TOKEN)];
    let (mut child, base) = common::spawn_run(dir.path(), &[], &envs);
    let api = Api::at(base);
    let gid = api.group("kill").await;
    let gw = telegram_gateway(&api, &fake).await;
    link(&api, &gid, &gw, CHAT_A, "in").await;

    const N: usize = 300;
    for i in 0..N {
        fake.inject_text(&CHAT_A.to_string(), &format!("update {i}"));
    }
    // Kill as soon as the node has read updates and started storing them.
    let stored = eventually(LIMIT, "some updates stored", || async {
        let n = api.texts(&gid).await.len();
        (n > 0).then_some(n)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let read_before_kill = fake
        .calls_to("getUpdates")
        .iter()
        .filter(|c| c.status == 200)
        .count();
    assert!(read_before_kill >= 1);

    let (mut child, base) = common::spawn_run(dir.path(), &[], &envs);
    let api = Api::at(base);
    let texts = eventually(LIMIT, "every update stored", || async {
        let t = api.texts(&gid).await;
        (t.len() >= N).then_some(t)
    })
    .await;
    assert_eq!(texts.len(), N, "no update stored twice");
    for i in 0..N {
        let want = format!("update {i}");
        let n = texts.iter().filter(|t| t.ends_with(&want)).count();
        assert_eq!(n, 1, "{want} stored {n} times");
    }
    // Only stored updates are confirmed: in the end, all of them.
    eventually(LIMIT, "offset confirmed", || async {
        fake.pending_updates().is_empty().then_some(())
    })
    .await;
    eprintln!("killed with at least {stored} of {N} stored; all {N} stored once after the restart");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn bad_accounts_and_links_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let (s, v) = api
        .post(
            "/api/v1/gateways",
            json!({"kind": "telegram", "name": "x", "token_file": "/nonexistent/token"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token_file"),
        "{v}"
    );
    let (s, v) = api
        .post(
            "/api/v1/gateways",
            json!({"kind": "telegram", "name": "x", "token": "123:abc", "tokn": 1}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tokn"),
        "{v}"
    );
    assert!(!v.to_string().contains("123:abc"), "{v}");

    let fake = FakeBotApi::start().await;
    let gid = api.group("refuse").await;
    let gw = telegram_gateway(&api, &fake).await;
    let (s, v) = api
        .post(
            "/api/v1/links",
            json!({"group_id": gid, "gateway_id": gw, "chat": "my group", "direction": "both"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("chat id"),
        "{v}"
    );
    let ok: Value = api
        .link(json!({"group_id": gid, "gateway_id": gw, "chat": "-1001234567890/2051", "direction": "out"}))
        .await;
    assert_eq!(ok["chat"], "-1001234567890/2051");
    node.shutdown().await;
}

/// Webhook mode: Telegram POSTs updates to a link's `/hooks/{link}` with the secret header; the
/// answer comes after the update is stored, a wrong secret stores nothing, a repeat is stored once.
#[tokio::test]
async fn webhook_mode_stores_updates_pushed_to_the_hook_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let fake = FakeBotApi::start().await;
    let gid = api.group("hooked").await;
    let gw = api
        .gateway(
            json!({"kind": "telegram", "name": "tgw", "token": fake.token(),
                        "api_url": fake.url(), "webhook_secret": "s3cret-Value_1"}),
        )
        .await;
    let l = link(&api, &gid, &gw, CHAT_A, "in").await;
    let listed = api.get("/api/v1/gateways").await.to_string();
    assert!(!listed.contains("s3cret-Value_1"), "{listed}");

    let update = json!({"update_id": 900001, "message": {
        "message_id": 77, "date": 1764000000,
        "chat": {"id": CHAT_A, "type": "supergroup", "title": "Team"},
        "from": {"id": 5012345678i64, "is_bot": false, "first_name": "Alice"},
        "text": "pushed by Telegram"}});
    let hook = format!("{}/hooks/{l}", api.base);
    let send = |secret: &'static str| {
        api.http
            .post(&hook)
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .json(&update)
            .send()
    };
    let bad = send("wrong").await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    assert!(
        api.texts(&gid).await.is_empty(),
        "a wrong secret stores nothing"
    );

    let ok = send("s3cret-Value_1").await.unwrap();
    assert_eq!(ok.status().as_u16(), 200, "{:?}", ok.text().await);
    let again = send("s3cret-Value_1").await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    // Both answers came after the trx was stored (pending); a post included after them shows
    // whether the repeat became a second trx.
    api.note_wait(&gid, json!({"content": "sentinel"})).await;
    assert_eq!(
        api.texts(&gid).await,
        vec!["pushed by Telegram".to_string(), "sentinel".to_string()],
        "a repeated update is stored once"
    );
    assert!(
        fake.calls_to("getUpdates").is_empty(),
        "webhook mode does not poll"
    );
    node.shutdown().await;
}

/// A node restarted in the middle of a 429 storm: the chat gets every post exactly once, in
/// order, and the fake sees no breach of Telegram's pacing limits.
#[tokio::test]
async fn restart_during_a_429_storm_delivers_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBotApi::start().await;
    fake.set_429_storm(0.3, 1..=2, 20261125);
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("storm").await;
    let gw = telegram_gateway(&api, &fake).await;
    api.link(
        json!({"group_id": gid, "gateway_id": gw, "chat": CHAT_A.to_string(),
                    "direction": "out", "nick_format": ""}),
    )
    .await;
    const N: usize = 8;
    for i in 0..N {
        api.note(&gid, &format!("storm {i}")).await;
    }
    wait_bot_texts(&fake, CHAT_A, 3).await;
    node.shutdown().await;

    let node = start_node(dir.path()).await;
    let texts = wait_bot_texts(&fake, CHAT_A, N).await;
    let want: Vec<String> = (0..N).map(|i| format!("storm {i}")).collect();
    // Settle: nothing more arrives after the last post (a repeat would come after it).
    Api::of(&node)
        .note_wait(&gid, json!({"content": "end"}))
        .await;
    let texts_end = wait_bot_texts(&fake, CHAT_A, N + 1).await;
    assert_eq!(texts, want, "every post once, in order");
    assert_eq!(texts_end.len(), N + 1, "{texts_end:?}");
    assert!(
        fake.calls_to("sendMessage").iter().any(|c| c.status == 429),
        "the storm happened"
    );
    let violations = fake.pacing_violations(&rumgate_telegram::PacingLimits::default());
    assert!(violations.is_empty(), "{violations:?}");
    node.shutdown().await;
}
