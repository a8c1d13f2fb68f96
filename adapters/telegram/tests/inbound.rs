//! Inbound: the getUpdates loop, offsets, files, service messages, conflicts, webhook mode.

mod common;

use std::time::Duration;

use common::{eventually, next_request, start, start_raw, SimNode, DEADLINE};
use rumgate_gateway::{Ack, AttachmentKind, Gateway, HealthState, InboundEvent, Style};
use rumgate_telegram::fake::{FakeBotApi, Fault, Incoming, BOT_ID};
use rumgate_telegram::{
    TelegramConfig, TelegramGateway, WebhookError, WebhookOutcome, WebhookSecret,
};
use serde_json::json;

const GROUP: &str = "-1002345678901";

#[tokio::test]
async fn converts_text_entities_replies_and_topics() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;

    // "😀 bold" with the bold at UTF-16 offset 3.
    let first = fake.inject_message(
        GROUP,
        Incoming::text("😀 bold and a link").entities(vec![
            json!({"type": "bold", "offset": 3, "length": 4}),
            json!({"type": "text_link", "offset": 14, "length": 4, "url": "https://e.org"}),
        ]),
    );
    let reply = fake.inject_message(GROUP, Incoming::text("a reply").reply_to(first));
    let topic = fake.inject_text("-1003456789012/2051", "in a topic");
    eventually("three messages stored", DEADLINE, || async {
        (node.messages().len() == 3).then_some(())
    })
    .await;
    running.stop(&gw).await;

    let events = node.events();
    let by_id = |chat: &str, id: i64| {
        events
            .iter()
            .find_map(|e| match e {
                InboundEvent::Message(m) if m.chat == chat && m.message_id == id.to_string() => {
                    Some(m.clone())
                }
                _ => None,
            })
            .expect("message stored")
    };
    let m = by_id(GROUP, first);
    assert_eq!(m.chat, GROUP);
    assert_eq!(&m.text.text[m.text.spans[0].range()], "bold");
    assert_eq!(m.text.spans[0].style, Style::Bold);
    assert_eq!(
        m.text.spans[1].style,
        Style::Link {
            url: "https://e.org".into()
        }
    );
    assert_eq!(by_id(GROUP, reply).reply_to, Some(first.to_string()));
    assert_eq!(
        by_id("-1003456789012/2051", topic).chat,
        "-1003456789012/2051"
    );
    // Everything stored was confirmed to Telegram by the offset.
    eventually("the offset confirms every update", DEADLINE, || async {
        fake.pending_updates().is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_update_read_but_not_acknowledged_is_read_again_after_a_restart_and_stored_once() {
    let fake = FakeBotApi::start().await;
    let node = SimNode::default();
    let id = fake.inject_text(GROUP, "stored, but the ack was lost");
    let update_id = fake.pending_updates()[0];

    // The node stores the trx, but the adapter is gone before the ack reaches it.
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let (mut rx, token) = start_raw(&gw).await;
    let (event, reply) = next_request(&mut rx).await;
    assert!(matches!(node.ingest(&event), Ok(Ack::Stored { .. })));
    token.cancel();
    gw.shutdown().await;
    drop(reply);
    drop(rx);
    drop(gw);
    assert!(
        fake.confirmed_below() <= update_id,
        "the offset moved past an update that was never acknowledged"
    );
    assert_eq!(fake.pending_updates(), [update_id]);

    // A new adapter reads it again; the node recognises it.
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let (mut rx, token) = start_raw(&gw).await;
    let (again, reply) = next_request(&mut rx).await;
    assert_eq!(again, event);
    let answer = node.ingest(&again);
    assert!(matches!(answer, Ok(Ack::Duplicate { .. })), "{answer:?}");
    let _ = reply.send(answer);
    eventually("the re-read update is confirmed", DEADLINE, || async {
        fake.pending_updates().is_empty().then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;

    assert_eq!(node.submissions().len(), 2, "seen twice");
    assert_eq!(node.messages().len(), 1, "stored once");
    assert_eq!(node.messages()[0].1, id.to_string());
}

#[tokio::test]
async fn a_retryable_node_error_leaves_the_update_unconfirmed_until_stored() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let (mut rx, token) = start_raw(&gw).await;
    fake.inject_text(GROUP, "first try fails");
    let (event, reply) = next_request(&mut rx).await;
    let _ = reply.send(Err(rumgate_gateway::GatewayError::Transient(
        "database busy".into(),
    )));
    // Not confirmed: it comes again.
    let (again, reply) = next_request(&mut rx).await;
    assert_eq!(again, event);
    assert!(!fake.pending_updates().is_empty());
    let _ = reply.send(Ok(Ack::Stored { trx_id: "t".into() }));
    eventually("confirmed after the store", DEADLINE, || async {
        fake.pending_updates().is_empty().then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn photos_are_fetched_with_get_file_and_large_files_become_placeholders() {
    let fake = FakeBotApi::start().await;
    let mut config = fake.config();
    config.max_file_bytes = 4000;
    let gw = TelegramGateway::new(config).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;

    let photo: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let small = fake.inject_message(GROUP, Incoming::photo(photo.clone(), Some("sunset 🌅")));
    // Too large at full size; its small size (1/8) fits, and is taken.
    let big: Vec<u8> = vec![7; 20_000];
    let scaled = fake.inject_message(GROUP, Incoming::photo(big.clone(), None));
    // Too large at every size.
    let huge = fake.inject_message(GROUP, Incoming::photo(vec![9; 80_000], Some("huge")));
    let doc = fake.inject_message(GROUP, Incoming::document("report.pdf", vec![1; 9_000]));
    eventually("four messages stored", DEADLINE, || async {
        (node.messages().len() == 4).then_some(())
    })
    .await;
    running.stop(&gw).await;

    let get = |id: i64| {
        node.events()
            .into_iter()
            .find_map(|e| match e {
                InboundEvent::Message(m) if m.message_id == id.to_string() => Some(m),
                _ => None,
            })
            .expect("stored")
    };
    let m = get(small);
    assert_eq!(m.text.text, "sunset 🌅");
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(m.attachments[0].data, photo);
    assert_eq!(get(scaled).attachments[0].data, big[..2500].to_vec());
    let m = get(huge);
    assert!(m.attachments.is_empty());
    assert!(
        m.text.text.starts_with("huge\n[photo photo_"),
        "{}",
        m.text.text
    );
    assert!(
        m.text
            .text
            .contains("not mirrored: larger than the 3 KiB limit"),
        "{}",
        m.text.text
    );
    let m = get(doc);
    assert!(m.attachments.is_empty());
    assert!(
        m.text
            .text
            .contains("[file report.pdf (9 KiB) not mirrored"),
        "{}",
        m.text.text
    );
    assert!(!fake.calls_to("getFile").is_empty());
}

#[tokio::test]
async fn edits_arrive_as_edit_events_and_the_bots_own_messages_are_not_submitted() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    let id = fake.inject_text(GROUP, "before");
    fake.inject_edit(GROUP, id, "after");
    fake.inject_message(
        "-1004567890123",
        Incoming::text("the bot's own channel post").from(BOT_ID, "Rumgate Test Bot"),
    );
    fake.inject_text(GROUP, "last");
    eventually("the last message stored", DEADLINE, || async {
        node.messages()
            .iter()
            .any(|(_, _, t)| t == "last")
            .then_some(())
    })
    .await;
    running.stop(&gw).await;
    let subs = node.submissions();
    assert!(subs.iter().any(|e| matches!(e,
        InboundEvent::Edit { message_id, text, .. } if *message_id == id.to_string() && text.text == "after")));
    assert!(
        !subs.iter().any(
            |e| matches!(e, InboundEvent::Message(m) if m.text.text.contains("own channel post"))
        ),
        "{subs:?}"
    );
}

#[tokio::test]
async fn migration_and_removal_service_messages_are_reported() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    fake.migrate_chat(-4512345678, -1005678901234);
    fake.kick_bot(-1006789012345);
    eventually("the migration stored", DEADLINE, || async {
        node.events()
            .iter()
            .any(|e| {
                matches!(e, InboundEvent::ChatMigrated { chat, new_chat }
                    if chat == "-4512345678" && new_chat == "-1005678901234")
            })
            .then_some(())
    })
    .await;
    // The lost chat's links fail; the account and its other chats go on.
    let health = eventually("chat failing", DEADLINE, || async {
        let h = gw.chat_health("-1006789012345").await;
        (h.state == HealthState::Failing).then_some(h)
    })
    .await;
    assert!(
        health.detail.unwrap_or_default().contains("-1006789012345"),
        "the reason is shown"
    );
    assert_ne!(
        gw.chat_health("-1005678901234").await.state,
        HealthState::Failing
    );
    let account = gw.health().await;
    assert_eq!(account.state, HealthState::Degraded);
    let detail = account.detail.unwrap_or_default();
    assert!(
        detail.contains("-1006789012345") && detail.contains("removed"),
        "{detail}"
    );
    assert!(gw.removed_chats().contains_key("-1006789012345"));
    assert_eq!(
        gw.migrated_chats().get("-4512345678").map(String::as_str),
        Some("-1005678901234")
    );
    running.stop(&gw).await;
}

#[tokio::test]
async fn a_second_poller_makes_health_degraded_with_an_explanation() {
    let fake = FakeBotApi::start().await;
    let node = SimNode::default();
    let first = TelegramGateway::new(fake.config()).expect("gateway");
    let second = TelegramGateway::new(fake.config()).expect("gateway");
    let a = start(&first, &node).await;
    let b = start(&second, &node).await;
    let detail = eventually("a 409 in health", DEADLINE, || async {
        for gw in [&first, &second] {
            let h = gw.health().await;
            if h.state == HealthState::Degraded {
                return h.detail;
            }
        }
        None
    })
    .await;
    assert!(detail.contains("409"), "{detail}");
    assert!(
        detail.contains("Another process is polling updates for this bot"),
        "{detail}"
    );
    b.stop(&second).await;
    // Alone again, the first recovers.
    eventually("health ok again", Duration::from_secs(90), || async {
        (first.health().await.state == HealthState::Ok).then_some(())
    })
    .await;
    a.stop(&first).await;
}

#[tokio::test]
async fn polling_deletes_an_active_webhook_keeping_pending_updates_and_resumes() {
    let fake = FakeBotApi::start().await;
    fake.inject_text(GROUP, "sent while the webhook was set");
    fake.set_webhook_active("https://elsewhere.example/hook");
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    eventually("the pending update stored", DEADLINE, || async {
        (node.messages().len() == 1).then_some(())
    })
    .await;
    assert_eq!(fake.webhook(), None, "the webhook was deleted");
    let deletes = fake.calls_to("deletewebhook");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].params.get("drop_pending_updates"),
        Some(&json!(false)),
        "pending updates are kept"
    );
    fake.inject_text(GROUP, "after");
    eventually("polling resumed", DEADLINE, || async {
        (node.messages().len() == 2).then_some(())
    })
    .await;
    assert_eq!(gw.health().await.state, HealthState::Ok);
    running.stop(&gw).await;
}

#[tokio::test]
async fn a_webhook_that_cannot_be_deleted_makes_polling_degraded_and_says_so() {
    let fake = FakeBotApi::start().await;
    fake.set_webhook_active("https://elsewhere.example/hook");
    fake.inject_fault(
        Some("deletewebhook"),
        None,
        Fault::ServerError(502),
        usize::MAX,
    );
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    let detail = eventually("degraded", DEADLINE, || async {
        let h = gw.health().await;
        (h.state == HealthState::Degraded).then_some(h.detail.unwrap_or_default())
    })
    .await;
    assert!(detail.contains("webhook is active"), "{detail}");
    assert!(detail.contains("deleteWebhook"), "{detail}");
    running.stop(&gw).await;
}

#[tokio::test]
async fn updates_after_telegram_restarts_its_update_ids_are_stored() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    fake.inject_text(GROUP, "before a week of silence");
    eventually("stored and confirmed", DEADLINE, || async {
        (node.messages().len() == 1 && fake.pending_updates().is_empty()).then_some(())
    })
    .await;
    // After a week without updates Telegram picks the next id at random, here far below ours.
    fake.restart_update_ids(1_000);
    let first = fake.inject_text(GROUP, "after the reset");
    let second = fake.inject_text(GROUP, "and another");
    eventually("both stored and confirmed", DEADLINE, || async {
        (node.messages().len() == 3 && fake.pending_updates().is_empty()).then_some(())
    })
    .await;
    let ids: Vec<String> = node.messages().into_iter().map(|m| m.1).collect();
    assert!(ids.contains(&first.to_string()) && ids.contains(&second.to_string()));
    assert_eq!(fake.confirmed_below(), 1_002, "the new ids are confirmed");
    running.stop(&gw).await;
}

#[tokio::test]
async fn poll_failures_are_retried_and_nothing_is_lost() {
    let fake = FakeBotApi::start().await;
    fake.inject_fault(Some("getupdates"), None, Fault::DropConnection, 1);
    fake.inject_fault(Some("getupdates"), None, Fault::RetryAfter(1), 1);
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    fake.inject_text(GROUP, "survives faults");
    eventually("stored", DEADLINE, || async {
        (node.messages().len() == 1).then_some(())
    })
    .await;
    running.stop(&gw).await;
}

#[tokio::test]
async fn privacy_mode_shows_a_hint_and_degrades_when_groups_stay_silent() {
    let fake = FakeBotApi::start().await;
    fake.set_privacy_mode(true);
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    let h = gw.health().await;
    assert_eq!(h.state, HealthState::Ok);
    assert!(h.detail.unwrap_or_default().contains("/setprivacy"));
    // The bot is in a group (it posts there) but receives nothing from it.
    let msg = rumgate_gateway::OutboundMessage {
        item_id: "x".into(),
        group_id: "g".into(),
        author: Default::default(),
        text: "hello".into(),
        reply_to: None,
        attachments: vec![],
        origin: None,
        item: None,
    };
    gw.send(GROUP, &msg).await.expect("send");
    let h = gw.health().await;
    assert_eq!(h.state, HealthState::Degraded);
    assert!(h
        .detail
        .unwrap_or_default()
        .contains("no group messages received"));
    fake.inject_text(GROUP, "a command the bot does see");
    eventually("health ok after a group message", DEADLINE, || async {
        (gw.health().await.state == HealthState::Ok).then_some(())
    })
    .await;
    running.stop(&gw).await;
}

#[tokio::test]
async fn a_rejected_token_fails_start_and_health() {
    let fake = FakeBotApi::start().await;
    let config = TelegramConfig::with_token("7412345678:AAAAwrongwrongwrongwrongwrongwrong00")
        .api_url(fake.url());
    let gw = TelegramGateway::new(config).expect("gateway");
    let (sink, _rx) = rumgate_gateway::inbound_channel(1);
    let err = gw
        .start(rumgate_gateway::GatewayContext::new(
            "t",
            &sink,
            tokio_util::sync::CancellationToken::new(),
        ))
        .await
        .expect_err("unauthorized");
    assert!(
        matches!(err, rumgate_gateway::GatewayError::Unauthorized(_)),
        "{err}"
    );
    assert_eq!(gw.health().await.state, HealthState::Failing);
}

fn webhook_config(fake: &FakeBotApi, url: Option<&str>) -> TelegramConfig {
    let mut config = fake.config();
    config.webhook_secret = Some(WebhookSecret::new("hook-secret_1"));
    config.webhook_url = url.map(str::to_owned);
    config
}

#[tokio::test]
async fn webhook_mode_checks_the_secret_and_answers_after_the_node_stored() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(webhook_config(&fake, Some("https://node.example/hooks/l1")))
        .expect("gateway");
    let node = SimNode::default();
    let running = start(&gw, &node).await;
    assert_eq!(
        fake.webhook().as_deref(),
        Some("https://node.example/hooks/l1")
    );
    assert!(
        fake.calls_to("getUpdates").is_empty(),
        "no polling in webhook mode"
    );

    let body = serde_json::to_vec(&json!({
        "update_id": 1,
        "message": {"message_id": 5, "date": 1, "chat": {"id": -1002345678901i64, "type": "supergroup"},
                    "from": {"id": 42, "first_name": "Hook"}, "text": "via webhook"}
    }))
    .expect("json");
    assert_eq!(
        gw.handle_webhook(Some("wrong"), &body).await,
        Err(WebhookError::BadSecret)
    );
    assert_eq!(
        gw.handle_webhook(None, &body).await,
        Err(WebhookError::BadSecret)
    );
    assert!(node.messages().is_empty());
    assert_eq!(
        gw.handle_webhook(Some("hook-secret_1"), &body).await,
        Ok(WebhookOutcome::Accepted)
    );
    assert_eq!(
        node.messages(),
        [(GROUP.to_owned(), "5".to_owned(), "via webhook".to_owned())]
    );
    assert_eq!(
        gw.handle_webhook(Some("hook-secret_1"), b"not json").await,
        Ok(WebhookOutcome::Ignored)
    );
    running.stop(&gw).await;
    assert!(matches!(
        gw.handle_webhook(Some("hook-secret_1"), &body).await,
        Err(WebhookError::Unavailable(_))
    ));
}

#[tokio::test]
async fn webhook_mode_answers_unavailable_when_the_node_cannot_store() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(webhook_config(&fake, None)).expect("gateway");
    let (mut rx, token) = start_raw(&gw).await;
    let body = br#"{"update_id":2,"message":{"message_id":6,"date":1,"chat":{"id":-1,"type":"group"},"from":{"id":4,"first_name":"A"},"text":"x"}}"#;
    let node = tokio::spawn(async move {
        let (_, reply) = next_request(&mut rx).await;
        let _ = reply.send(Err(rumgate_gateway::GatewayError::Transient(
            "disk full".into(),
        )));
        rx
    });
    let answer = gw.handle_webhook(Some("hook-secret_1"), body).await;
    assert!(
        matches!(&answer, Err(e @ WebhookError::Unavailable(_)) if e.status() == 503),
        "{answer:?}"
    );
    let _rx = node.await.expect("node");
    token.cancel();
    gw.shutdown().await;
}
