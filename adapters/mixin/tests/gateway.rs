//! `MixinGateway` against the fake Mixin: conformance, inbound acks after storage, faults,
//! reconnection. Every wait polls with a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumgate_gateway::conformance::{self, Capabilities};
use rumgate_gateway::{
    inbound_channel, Ack, Attachment, AttachmentKind, Author, FormattedText, Gateway,
    GatewayContext, GatewayError, HealthState, InboundEvent, InboundReceiver, InboundRequest,
    OutboundDelete, OutboundMessage, RemoteRef,
};
use rumgate_mixin::fake::{FakeBot, FakeMixin, Fault, DAVE};
use rumgate_mixin::{BlazeTuning, MixinGateway, Options, RateLimitPolicy};
use tokio_util::sync::CancellationToken;

const GROUP: &str = "3f6e9a2b-1c4d-4e8f-9a7b-6c5d4e3f2a1b";
const DEADLINE: Duration = Duration::from_secs(10);

fn fast() -> Options {
    Options {
        blaze: BlazeTuning {
            ping_interval: Duration::from_millis(500),
            dead_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(200),
            unauthorized_wait: Duration::from_millis(200),
        },
        rate: RateLimitPolicy {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
        },
        http_timeout: Duration::from_secs(5),
        dedup_window: 1000,
        submit_retry: Duration::from_millis(10),
    }
}

async fn fake() -> FakeMixin {
    let fake = FakeMixin::start(FakeBot::fixture())
        .await
        .expect("fake starts");
    fake.add_group(GROUP, &[]);
    fake.add_user(DAVE, "Dave");
    fake
}

fn gateway(fake: &FakeMixin) -> MixinGateway {
    MixinGateway::with_options(fake.config().validate().expect("valid config"), fast())
        .expect("gateway")
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn start(gw: &MixinGateway) -> (InboundReceiver, CancellationToken) {
    let (sink, rx) = inbound_channel(16);
    let token = CancellationToken::new();
    gw.start(GatewayContext::new("mixin:test", &sink, token.clone()))
        .await
        .expect("start");
    (rx, token)
}

async fn next(rx: &mut InboundReceiver) -> InboundRequest {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("an inbound event in time")
        .expect("the channel is open")
}

fn stored(req: InboundRequest) {
    let id = match &req.event {
        InboundEvent::Message(m) => m.message_id.clone(),
        _ => "other".into(),
    };
    assert!(req.respond(Ok(Ack::Stored {
        trx_id: format!("trx-{id}")
    })));
}

fn message_id(req: &InboundRequest) -> String {
    match &req.event {
        InboundEvent::Message(m) => m.message_id.clone(),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn outbound(item: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        item_id: item.into(),
        group_id: "g".into(),
        author: Author {
            id: "a".into(),
            name: "Ann".into(),
        },
        text: FormattedText::plain(text),
        reply_to: None,
        attachments: Vec::new(),
        origin: None,
        item: None,
    }
}

#[tokio::test]
async fn passes_the_outbound_conformance_suite() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let caps = Capabilities {
        max_units: rumgate_mixin::convert::MAX_TEXT_BYTES,
        unit: rumgate_mixin::convert::TEXT_UNIT,
        replies: true,
        edits_and_deletes: true,
    };
    conformance::conformance(&gw, &fake, GROUP, &caps)
        .await
        .expect("conformance");
    // Edits went out as recall + resend: the fake saw recalls and no message was ever sent
    // twice.
    let recalled = fake.messages(GROUP).iter().filter(|m| m.recalled).count();
    assert!(recalled >= 2, "{recalled}");
}

#[tokio::test]
async fn passes_the_inbound_conformance_checks() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let msg = conformance::receives_inbound(&gw, &fake, GROUP)
        .await
        .expect("receives");
    assert_eq!(msg.author.name, "Dave");
    assert_eq!(msg.author.id, DAVE);
    let f = fake.clone();
    conformance::restart_without_loss(move || std::future::ready(gateway(&f)), &fake, GROUP)
        .await
        .expect("restart without loss");
}

#[tokio::test]
async fn acknowledges_only_after_the_node_stored_and_redelivers_after_a_crash() {
    let fake = fake().await;
    let id = fake.inject_text(GROUP, DAVE, "store me once");

    // First life: the message arrives, the node "crashes" before storing it.
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let req = next(&mut rx).await;
    assert_eq!(message_id(&req), id);
    // Give a wrongly eager gateway every chance to acknowledge early.
    eventually("the frame was delivered", || async {
        (fake.deliveries(&id) >= 1).then_some(())
    })
    .await;
    assert!(!fake.is_acked(&id), "acknowledged before the node answered");
    drop(req);
    token.cancel();
    drop(rx);
    gw.shutdown().await;
    assert!(!fake.is_acked(&id));

    // Second life: Mixin lists it again; this time it is stored, then acknowledged.
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let req = next(&mut rx).await;
    assert_eq!(message_id(&req), id);
    assert!(!fake.is_acked(&id));
    stored(req);
    eventually("the ack", || async { fake.is_acked(&id).then_some(()) }).await;
    assert_eq!(fake.deliveries(&id), 2);
    assert_eq!(fake.acks(), vec![id.clone()]);
    // Events come in delivery order: if anything were submitted twice, it would come before
    // a message written now.
    let sentinel = fake.inject_text(GROUP, DAVE, "sentinel");
    let req = next(&mut rx).await;
    assert_eq!(
        message_id(&req),
        sentinel,
        "a stored message was submitted again"
    );
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn duplicate_deliveries_are_submitted_once_and_acknowledged() {
    let fake = fake().await;
    fake.duplicate_deliveries(true);
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let a = fake.inject_text(GROUP, DAVE, "a");
    let b = fake.inject_text(GROUP, DAVE, "b");
    let first = next(&mut rx).await;
    assert_eq!(message_id(&first), a);
    stored(first);
    let second = next(&mut rx).await;
    assert_eq!(
        message_id(&second),
        b,
        "the repeat of a was submitted again"
    );
    stored(second);
    eventually("both acked", || async {
        (fake.is_acked(&a) && fake.is_acked(&b)).then_some(())
    })
    .await;
    assert_eq!(fake.deliveries(&a), 2);
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_dropped_sockets_and_loses_nothing() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let mut ids = Vec::new();
    for round in 0..3 {
        eventually("connected", || async { gw.is_connected().then_some(()) }).await;
        let id = fake.inject_text(GROUP, DAVE, &format!("round {round}"));
        let req = next(&mut rx).await;
        assert_eq!(message_id(&req), id);
        // The socket drops between receipt and the node's answer: the ack cannot go out on it.
        fake.drop_sockets();
        stored(req);
        ids.push(id);
    }
    for id in &ids {
        eventually("every message acked after reconnecting", || async {
            fake.is_acked(id).then_some(())
        })
        .await;
    }
    assert!(fake.connections() >= 3, "{}", fake.connections());
    // Redelivered after the drops, acknowledged without being submitted again: the next event
    // is a message written now (Mixin pushes in order, repeats first).
    let sentinel = fake.inject_text(GROUP, DAVE, "sentinel");
    let req = next(&mut rx).await;
    assert_eq!(
        message_id(&req),
        sentinel,
        "a stored message was submitted again"
    );
    assert!(
        ids.iter().any(|id| fake.deliveries(id) > 1),
        "the drops made Mixin deliver something again"
    );
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn rate_limits_in_202_bodies_are_errors_not_deliveries() {
    let fake = fake().await;
    let gw = gateway(&fake);
    fake.fail_messages([Fault::RateLimited]);
    let err = gw
        .send(GROUP, &outbound("trx-1", "Ann: hello"))
        .await
        .expect_err("a 202-wrapped 429 is not success");
    assert!(matches!(err, GatewayError::RateLimited { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(fake.bot_texts(GROUP).is_empty(), "nothing was delivered");
    assert_eq!(gw.health().await.state, HealthState::Degraded);
    let last = fake.calls().pop().expect("a call");
    assert_eq!((last.http_status, last.error_code), (202, Some(429)));

    // The node retries the same item: same message id, delivered once.
    let first = gw
        .send(GROUP, &outbound("trx-1", "Ann: hello"))
        .await
        .expect("retry succeeds");
    let again = gw
        .send(GROUP, &outbound("trx-1", "Ann: hello"))
        .await
        .expect("a repeat is harmless");
    assert_eq!(first, again);
    assert_eq!(fake.bot_texts(GROUP), ["Ann: hello"]);
    assert_eq!(fake.repeated_ids(), 1);
    assert_eq!(gw.health().await.state, HealthState::Ok);
}

#[tokio::test]
async fn server_errors_are_transient_and_401_is_unauthorized() {
    let fake = fake().await;
    let gw = gateway(&fake);
    fake.fail_messages([Fault::ServerError]);
    let err = gw.send(GROUP, &outbound("t", "x")).await.expect_err("500");
    assert!(matches!(err, GatewayError::Transient(_)), "{err:?}");

    fake.fail_messages([Fault::Unauthorized]);
    let err = gw.send(GROUP, &outbound("t", "x")).await.expect_err("401");
    let GatewayError::Unauthorized(reason) = &err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("keystore"), "{reason}");
    assert!(!err.is_retryable());
    let health = gw.health().await;
    assert_eq!(health.state, HealthState::Failing);
    assert!(health.detail.unwrap_or_default().contains("401"));

    // Refused credentials at start are an error, not a silent retry loop.
    fake.reject_auth(true);
    let (sink, _rx) = inbound_channel(1);
    let err = gateway(&fake)
        .start(GatewayContext::new("m", &sink, CancellationToken::new()))
        .await
        .expect_err("start with refused credentials");
    assert!(matches!(err, GatewayError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn a_blaze_401_makes_the_gateway_failing_until_it_connects_again() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (_rx, token) = start(&gw).await;
    eventually("connected", || async { gw.is_connected().then_some(()) }).await;
    fake.reject_auth(true);
    eventually("failing", || async {
        (gw.health().await.state == HealthState::Failing).then_some(())
    })
    .await;
    assert!(fake.refused_handshakes() >= 1);
    fake.reject_auth(false);
    eventually("healthy again", || async {
        (gw.is_connected() && gw.health().await.state == HealthState::Ok).then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn images_and_recalls_come_in_as_attachments_and_deletes() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3, 4];
    let image = fake.inject_image(GROUP, DAVE, png.clone(), "image/png");
    let req = next(&mut rx).await;
    let InboundEvent::Message(m) = &req.event else {
        panic!("{:?}", req.event)
    };
    assert_eq!(m.message_id, image);
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].data, png);
    assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
    stored(req);

    let big = fake.inject_image(GROUP, DAVE, vec![0; 400 * 1024], "image/jpeg");
    let req = next(&mut rx).await;
    let InboundEvent::Message(m) = &req.event else {
        panic!("{:?}", req.event)
    };
    assert_eq!(m.message_id, big);
    assert!(m.attachments.is_empty());
    assert!(m.text.text.contains("not mirrored"), "{}", m.text.text);
    stored(req);

    let recall = fake.inject_recall(GROUP, DAVE, &image);
    let req = next(&mut rx).await;
    assert_eq!(
        req.event,
        InboundEvent::Delete {
            chat: GROUP.into(),
            message_id: image.clone()
        }
    );
    stored(req);
    eventually("all acked", || async {
        fake.is_acked(&recall).then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn the_bots_own_messages_are_acknowledged_without_being_bridged() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let own = fake.inject_text(GROUP, gw.user_id(), "echo");
    let other = fake.inject_text(GROUP, DAVE, "real");
    let req = next(&mut rx).await;
    assert_eq!(message_id(&req), other);
    stored(req);
    eventually("both acked", || async {
        (fake.is_acked(&own) && fake.is_acked(&other)).then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn images_go_out_via_attachment_upload_and_contacts_get_a_recipient() {
    let fake = fake().await;
    let chat = fake.add_contact(DAVE);
    let gw = gateway(&fake);
    let mut msg = outbound("trx-img", "Ann: look");
    msg.attachments.push(Attachment {
        kind: AttachmentKind::Image,
        mime: "image/png".into(),
        name: None,
        data: vec![1, 2, 3],
        width: Some(2),
        height: Some(2),
    });
    let delivered = gw.send(&chat, &msg).await.expect("send");
    assert_eq!(delivered.parts.len(), 2);
    let seen = fake.messages(&chat);
    assert_eq!(seen[0].category, "PLAIN_IMAGE");
    assert_eq!(seen[1].text, "Ann: look");
    let uploads = fake
        .calls()
        .iter()
        .filter(|c| c.path == "/attachments" && c.method == "POST")
        .count();
    assert_eq!(uploads, 1);

    // Deleting recalls both parts; again is harmless.
    let del = OutboundDelete {
        item_id: "trx-img".into(),
        parts: delivered.parts.clone(),
    };
    gw.delete(&chat, &del).await.expect("delete");
    gw.delete(&chat, &del).await.expect("delete again");
    assert!(fake.messages(&chat).iter().all(|m| m.recalled));
}

#[tokio::test]
async fn unknown_conversations_are_a_permanent_error_with_a_hint() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let err = gw
        .send("0f1e2d3c-4b5a-4968-b7a6-9584736251a0", &outbound("t", "x"))
        .await
        .expect_err("no such conversation");
    let GatewayError::Permanent(m) = &err else {
        panic!("{err:?}")
    };
    assert!(m.contains("add the bot"), "{m}");
    let reply_elsewhere = OutboundMessage {
        reply_to: Some(RemoteRef {
            chat: "another".into(),
            message_id: "x".into(),
        }),
        ..outbound("t2", "y")
    };
    gw.send(GROUP, &reply_elsewhere).await.expect("send");
    assert_eq!(fake.messages(GROUP)[0].quote_message_id, "");
    let _ = Arc::new(gw);
}

#[tokio::test]
async fn a_connection_dropped_after_mixin_took_the_messages_does_not_duplicate_them() {
    let fake = fake().await;
    let gw = gateway(&fake);
    fake.fail_messages([Fault::DropAfterApply]);
    let err = gw
        .send(GROUP, &outbound("trx-drop", "Ann: once"))
        .await
        .expect_err("the answer never arrived");
    assert!(matches!(err, GatewayError::Transient(_)), "{err:?}");
    assert!(fake.calls().iter().any(|c| c.dropped));
    // Mixin has it already; the retry carries the same id and is ignored.
    gw.send(GROUP, &outbound("trx-drop", "Ann: once"))
        .await
        .expect("retry");
    assert_eq!(fake.bot_texts(GROUP), ["Ann: once"]);
    assert_eq!(fake.repeated_ids(), 1);
}

#[tokio::test]
async fn the_rate_limit_backoff_comes_from_the_account_config() {
    let fake = fake().await;
    let mut cfg = fake.config();
    cfg.rate_limit_backoff_ms = Some(40);
    let gw = MixinGateway::new(&cfg).expect("gateway");
    fake.fail_messages([Fault::RateLimited, Fault::RateLimited]);
    let mut waits = Vec::new();
    for _ in 0..2 {
        match gw.send(GROUP, &outbound("t", "x")).await {
            Err(GatewayError::RateLimited { retry_after }) => waits.push(retry_after),
            other => panic!("{other:?}"),
        }
    }
    // 40 ms ± 25 %, then doubled.
    assert!(waits[0] >= Duration::from_millis(30) && waits[0] <= Duration::from_millis(50));
    assert!(waits[1] >= Duration::from_millis(60) && waits[1] <= Duration::from_millis(100));
    cfg.rate_limit_backoff_ms = Some(0);
    assert!(MixinGateway::new(&cfg).is_err());
}

#[tokio::test]
async fn a_server_error_frame_with_401_is_reported_and_the_connection_recovers() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    eventually("connected", || async { gw.is_connected().then_some(()) }).await;
    let before = fake.connections();
    fake.kick_unauthorized();
    eventually("failing after the ERROR frame", || async {
        let h = gw.health().await;
        (h.state == HealthState::Failing).then_some(h)
    })
    .await;
    // The session is valid again (the fake accepts the next handshake): back to ok, and
    // messages flow.
    eventually("reconnected", || async {
        (fake.connections() > before && gw.health().await.state == HealthState::Ok).then_some(())
    })
    .await;
    let id = fake.inject_text(GROUP, DAVE, "after the kick");
    let req = next(&mut rx).await;
    assert_eq!(message_id(&req), id);
    stored(req);
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn the_fake_holds_us_to_the_wire_rules() {
    use base64::Engine as _;
    let fake = fake().await;
    let gw = gateway(&fake);
    let message = |data_base64: String| rumgate_mixin::MessageRequest {
        conversation_id: GROUP.into(),
        recipient_id: String::new(),
        message_id: uuid::Uuid::new_v4().to_string(),
        category: "PLAIN_TEXT".into(),
        data_base64,
        representative_id: String::new(),
        quote_message_id: String::new(),
        silent: false,
    };
    // "??>" encodes with `+`/`/` and padding in standard base64: refused, code 10002.
    let standard = base64::engine::general_purpose::STANDARD.encode("??>?");
    assert!(standard.contains(['/', '=']), "{standard}");
    let err = gw
        .client()
        .post_messages(&[message(standard)])
        .await
        .expect_err("standard base64 is refused");
    let gateway_error: GatewayError = err.into();
    assert!(
        matches!(gateway_error, GatewayError::Invalid(_)),
        "{gateway_error:?}"
    );
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("??>?");
    gw.client()
        .post_messages(&[message(url_safe)])
        .await
        .expect("URL-safe without padding is accepted");
    assert_eq!(fake.bot_texts(GROUP), ["??>?"]);
    // Tokens are single-use and bound to their request.
    let bot = FakeBot::fixture();
    let signer = rumgate_mixin::Signer::new(
        bot.user_id.clone(),
        bot.session_id.clone(),
        rumgate_mixin::SessionKey::parse(&bot.seed_hex).expect("key"),
    );
    let token = signer.sign_request("GET", "/me", b"");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", fake.api_url()))
            .bearer_auth(&token)
            .send()
    };
    let first: serde_json::Value = get("/me").await.expect("send").json().await.expect("json");
    assert_eq!(first["data"]["user_id"], bot.user_id.as_str());
    for path in ["/me", "/users/x"] {
        let again = get(path).await.expect("send");
        assert_eq!(again.status().as_u16(), 202);
        let body: serde_json::Value = again.json().await.expect("json");
        assert_eq!(body["error"]["code"], 401, "{path}: {body}");
    }
}

#[tokio::test]
async fn messages_with_null_fields_are_bridged_and_acknowledged() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    // A text whose optional fields come as JSON null.
    let text = fake.view(GROUP, DAVE, "PLAIN_TEXT", b"nulls are empty");
    let nulls = [
        "quote_message_id",
        "representative_id",
        "data",
        "silent",
        "expire_in",
        "updated_at",
        "status",
    ]
    .map(|k| (k, serde_json::Value::Null));
    let text = fake.inject_view_with(text, &nulls);
    let req = next(&mut rx).await;
    let InboundEvent::Message(m) = &req.event else {
        panic!("{:?}", req.event)
    };
    assert_eq!(m.message_id, text);
    assert_eq!(m.text.text, "nulls are empty");
    assert_eq!(m.reply_to, None);
    stored(req);
    // An image whose payload has nulls too.
    let png = vec![0x89, b'P', b'N', b'G', 9];
    let attachment = fake.add_attachment(png.clone());
    let payload = serde_json::json!({"attachment_id": attachment, "mime_type": null,
        "width": null, "height": null, "size": null, "thumbnail": null, "name": null});
    let image = fake.view(
        GROUP,
        DAVE,
        "PLAIN_IMAGE",
        &serde_json::to_vec(&payload).unwrap(),
    );
    let image = fake.inject_view(image);
    let req = next(&mut rx).await;
    let InboundEvent::Message(m) = &req.event else {
        panic!("{:?}", req.event)
    };
    assert_eq!(m.message_id, image);
    assert_eq!(m.attachments.len(), 1, "{m:?}");
    assert_eq!(m.attachments[0].data, png);
    stored(req);
    eventually("both acknowledged", || async {
        (fake.is_acked(&text) && fake.is_acked(&image)).then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_retry_that_mixin_refuses_because_it_has_the_ids_counts_as_delivered() {
    let fake = fake().await;
    fake.refuse_known_message_ids(true);
    let gw = gateway(&fake);
    // One part: the first attempt lands, its answer is lost.
    fake.fail_messages([Fault::DropAfterApply]);
    let err = gw
        .send(GROUP, &outbound("trx-one", "Ann: once"))
        .await
        .expect_err("the answer never arrived");
    assert!(matches!(err, GatewayError::Transient(_)), "{err:?}");
    let delivered = gw
        .send(GROUP, &outbound("trx-one", "Ann: once"))
        .await
        .expect("a refusal naming the known id is a delivery");
    assert_eq!(delivered.parts.len(), 1);
    assert_eq!(fake.bot_texts(GROUP), ["Ann: once"]);
    // Several parts in one request: the refusal of the whole request is resolved per message.
    let long = format!("Ann: {}", "x".repeat(20_000));
    fake.fail_messages([Fault::DropAfterApply]);
    gw.send(GROUP, &outbound("trx-long", &long))
        .await
        .expect_err("the answer never arrived");
    let delivered = gw
        .send(GROUP, &outbound("trx-long", &long))
        .await
        .expect("retry of a two-part post");
    assert!(delivered.parts.len() >= 2, "{delivered:?}");
    assert_eq!(
        fake.bot_texts(GROUP).len(),
        1 + delivered.parts.len(),
        "each part once"
    );
    // A request mixing a known id with a new one still delivers the new one: the first edit
    // attempt landed (recall and new text), the retry carries the same recall and another text.
    let edit = |text: &str| rumgate_gateway::OutboundEdit {
        item_id: "trx-one".into(),
        parts: delivered_parts(&fake, "Ann: once"),
        text: FormattedText::plain(text),
        author: Author {
            id: "a".into(),
            name: "Ann".into(),
        },
    };
    let (first, second) = (edit("Ann: edited"), edit("Ann: edited again"));
    fake.fail_messages([Fault::DropAfterApply]);
    gw.edit(GROUP, &first).await.expect_err("answer lost");
    let delivered = gw.edit(GROUP, &second).await.expect("the edit's retry");
    assert_eq!(delivered.parts.len(), 1);
    let texts = fake.bot_texts(GROUP);
    assert!(
        texts.contains(&"Ann: edited again".to_string()),
        "{texts:?}"
    );
    assert!(
        !texts.contains(&"Ann: once".to_string()),
        "recalled: {texts:?}"
    );
}

fn delivered_parts(fake: &FakeMixin, text: &str) -> Vec<RemoteRef> {
    fake.messages(GROUP)
        .into_iter()
        .filter(|m| m.text == text)
        .map(|m| RemoteRef {
            chat: GROUP.into(),
            message_id: m.message_id,
        })
        .collect()
}

#[tokio::test]
async fn an_unreadable_message_is_acknowledged_instead_of_repeating_forever() {
    let fake = fake().await;
    let gw = gateway(&fake);
    let (mut rx, token) = start(&gw).await;
    let view = fake.view(GROUP, DAVE, "PLAIN_TEXT", b"a bool that is not one");
    let bad = fake.inject_view_with(view, &[("silent", serde_json::json!("sometimes"))]);
    let good = fake.inject_text(GROUP, DAVE, "after it");
    let req = next(&mut rx).await;
    assert_eq!(message_id(&req), good, "the unreadable one is not bridged");
    stored(req);
    eventually("both acknowledged", || async {
        (fake.is_acked(&bad) && fake.is_acked(&good)).then_some(())
    })
    .await;
    token.cancel();
    gw.shutdown().await;
}
