//! The fake Bot API against the recorded fixtures, and the token kept out of logs.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rumgate_gateway::{Author, FormattedText, Gateway, OutboundMessage};
use rumgate_telegram::fake::{FakeBotApi, Fault, TOKEN};
use rumgate_telegram::{TelegramConfig, TelegramGateway};
use serde_json::Value;

/// A copy of a recorded sample from `shared/fixtures/telegram` (provenance in the `.source.txt`
/// next to it), kept in `tests/fixtures`.
fn fixture(name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join(name)).expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Every key of `want` (recursively, for objects) is in `got`.
fn has_keys_of(got: &Value, want: &Value, path: &str) -> Vec<String> {
    let mut missing = Vec::new();
    if let (Value::Object(g), Value::Object(w)) = (got, want) {
        for (k, v) in w {
            match g.get(k) {
                None => missing.push(format!("{path}.{k}")),
                Some(gv) => missing.extend(has_keys_of(gv, v, &format!("{path}.{k}"))),
            }
        }
    }
    missing
}

async fn call(fake: &FakeBotApi, method: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/bot{}/{method}", fake.url(), fake.token()))
        .json(&body)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn answers_have_the_shapes_of_the_recorded_fixtures() {
    let get_me = fixture("getMe.json");
    let fake = FakeBotApi::start().await;
    let me = call(&fake, "getMe", serde_json::json!({})).await;
    assert_eq!(has_keys_of(&me, &get_me, ""), Vec::<String>::new());
    assert_eq!(me, get_me, "the fake bot is the fixtures' bot");

    let sent = call(
        &fake,
        "sendMessage",
        serde_json::json!({"chat_id": -1002345678901i64, "text": "<b>[Mixin] Dave:</b> hi", "parse_mode": "HTML"}),
    )
    .await;
    let want = fixture("sendMessage.json");
    let mut want_no_optional = want.clone();
    want_no_optional["result"]["chat"]
        .as_object_mut()
        .map(|c| c.remove("title"));
    assert_eq!(
        has_keys_of(&sent, &want_no_optional, ""),
        Vec::<String>::new()
    );
    assert_eq!(sent["result"]["entities"][0]["type"], "bold");

    let id = sent["result"]["message_id"].clone();
    let edited = call(
        &fake,
        "editMessageText",
        serde_json::json!({"chat_id": -1002345678901i64, "message_id": id, "text": "changed"}),
    )
    .await;
    // `entities` is present only when the text has some; the fixture's edit had.
    let mut want_edit = fixture("editMessageText.json");
    want_edit["result"]
        .as_object_mut()
        .map(|r| r.remove("entities"));
    assert_eq!(has_keys_of(&edited, &want_edit, ""), Vec::<String>::new());
    let same = call(
        &fake,
        "editMessageText",
        serde_json::json!({"chat_id": -1002345678901i64, "message_id": id, "text": "changed"}),
    )
    .await;
    assert_eq!(same, fixture("error.400.message_not_modified.json"));
    let deleted = call(
        &fake,
        "deleteMessage",
        serde_json::json!({"chat_id": -1002345678901i64, "message_id": id}),
    )
    .await;
    assert_eq!(deleted, fixture("deleteMessage.json"));

    let cases = [
        (Fault::RetryAfter(17), "error.429.retry_after.json"),
        (Fault::ChatNotFound, "error.400.chat_not_found.json"),
        (Fault::BotKicked, "error.403.bot_kicked.json"),
        (
            Fault::MigrateTo(-1005678901234),
            "error.400.migrate_to_chat_id.json",
        ),
        (Fault::Unauthorized, "error.401.unauthorized.json"),
        (Fault::Conflict, "error.409.conflict_getupdates.json"),
    ];
    for (fault, name) in cases {
        fake.inject_fault(None, None, fault, 1);
        let got = call(
            &fake,
            "sendMessage",
            serde_json::json!({"chat_id": -1002345678901i64, "text": "x"}),
        )
        .await;
        assert_eq!(got, fixture(name), "{name}");
    }
    let got = call(&fake, "getWhatever", serde_json::json!({})).await;
    assert_eq!(got, fixture("error.404.method_not_found.json"));
    fake.set_webhook_active("https://x.example/");
    let got = call(&fake, "getUpdates", serde_json::json!({})).await;
    assert_eq!(got, fixture("error.409.conflict_webhook_active.json"));
    fake.clear_webhook();
    let got = call(&fake, "getUpdates", serde_json::json!({"timeout": 0})).await;
    assert_eq!(got, fixture("getUpdates.empty.json"));
}

#[tokio::test]
async fn serves_the_fixture_updates_to_the_adapter() {
    let updates = fixture("getUpdates.json");
    let fake = FakeBotApi::start().await;
    for u in updates["result"].as_array().expect("result") {
        fake.push_update(u.clone());
    }
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = common::SimNode::default();
    let running = common::start(&gw, &node).await;
    common::eventually("every fixture update handled", common::DEADLINE, || async {
        fake.pending_updates().is_empty().then_some(())
    })
    .await;
    running.stop(&gw).await;
    // 6 messages (one a photo the fake has no file for, so a placeholder), 1 edit, 1 migration;
    // the rest are service messages and membership changes.
    let subs = node.submissions();
    assert_eq!(subs.len(), 8, "{subs:#?}");
    let photo = subs
        .iter()
        .find_map(|e| match e {
            rumgate_gateway::InboundEvent::Message(m) if m.message_id == "1044" => Some(m),
            _ => None,
        })
        .expect("the photo message");
    assert!(
        photo
            .text
            .text
            .contains("[photo photo_AQADydIv3jne_6LT.jpg"),
        "{}",
        photo.text.text
    );
    assert!(gw.removed_chats().contains_key("-1006789012345"));
}

/// A writer that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_appears_in_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = common::SimNode::default();
    let running = common::start(&gw, &node).await;
    fake.inject_fault(None, None, Fault::DropConnection, 2);
    fake.inject_fault(Some("getUpdates"), None, Fault::Conflict, 1);
    let msg = OutboundMessage {
        item_id: "t".into(),
        group_id: "g".into(),
        author: Author::default(),
        text: FormattedText::plain("hi"),
        reply_to: None,
        attachments: vec![],
        origin: None,
        item: None,
    };
    let mut errors = Vec::new();
    for _ in 0..3 {
        if let Err(e) = gw.send("-1001", &msg).await {
            errors.push(e.to_string());
        }
    }
    fake.inject_text("-1001", "inbound");
    common::eventually("stored", common::DEADLINE, || async {
        (!node.messages().is_empty()).then_some(())
    })
    .await;
    running.stop(&gw).await;
    // A server that is gone: connection errors carry the URL, which must not carry the token.
    let gone = TelegramConfig::with_token(TOKEN).api_url("http://127.0.0.1:9");
    let gw2 = TelegramGateway::new(gone.clone()).expect("gateway");
    if let Err(e) = gw2.send("-1001", &msg).await {
        errors.push(e.to_string());
    }
    let secret = TOKEN.split_once(':').map(|(_, s)| s).expect("token");
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    assert!(!logs.is_empty());
    assert!(!logs.contains(secret), "token in logs:\n{logs}");
    for e in &errors {
        assert!(!e.contains(secret), "token in error: {e}");
    }
    assert!(!errors.is_empty());
    for dbg in [format!("{gw:?}"), format!("{gone:?}"), format!("{gw2:?}")] {
        assert!(!dbg.contains(secret), "token in Debug: {dbg}");
    }
}

#[tokio::test]
async fn get_updates_with_a_webhook_set_answers_the_real_409_body() {
    let want = fixture("error.409.conflict_webhook_active.json");
    let fake = FakeBotApi::start().await;
    fake.set_webhook_active("https://elsewhere.example/hook");
    let response = reqwest::Client::new()
        .post(format!("{}/bot{}/getUpdates", fake.url(), fake.token()))
        .json(&serde_json::json!({"timeout": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 409);
    let got: Value = response.json().await.expect("json");
    assert_eq!(got, want);
}
