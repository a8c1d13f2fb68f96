//! The webhook adapter against the fixtures' vectors and a real local receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::HeaderMap;
use rumgate_gateway::conformance::{conformance, Capabilities};
use rumgate_gateway::text::Unit;
use rumgate_gateway::{
    Author, FormattedText, Gateway, GatewayError, InboundEvent, OutboundMessage,
};
use rumgate_webhook::fake::{Fault, Receiver};
use rumgate_webhook::{
    check_target, sign, verify_inbound, Format, InboundError, LinkConfig, WebhookGateway,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Copies of the recorded samples in `shared/fixtures/webhooks` (provenance in the `.source.txt`
/// files next to them).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn cfg(format: Format, secret: Option<&str>, allow_private: bool) -> LinkConfig {
    let mut c: LinkConfig = serde_json::from_value(serde_json::json!({
        "format": format, "allow_private_target": allow_private,
    }))
    .unwrap();
    c.secret = secret.map(|s| s.to_string().into());
    c
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

#[test]
fn standard_webhooks_vectors_from_the_fixtures() {
    let v = json_fixture("standard-webhooks.vectors.json");
    let mut checked = 0;
    for case in v["published"].as_array().unwrap() {
        let (Some(secret), Some(id), Some(ts), Some(payload), Some(expected)) = (
            case["secret"].as_str(),
            case["msg_id"].as_str(),
            case["timestamp"].as_u64(),
            case["payload"].as_str(),
            case["expected_signature"].as_str(),
        ) else {
            continue;
        };
        assert_eq!(
            sign::standard_sign(secret, id, ts, payload.as_bytes()),
            expected
        );
        assert!(sign::standard_verify(
            secret,
            id,
            &ts.to_string(),
            payload.as_bytes(),
            expected
        ));
        // Verified through the inbound path with a clock at the vector's time.
        let at = UNIX_EPOCH + Duration::from_secs(ts);
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", expected),
        ]);
        let c = cfg(Format::Standard, Some(secret), false);
        // The published payload has no `content`: signature passes, the body is refused.
        match verify_inbound(&c, &h, payload.as_bytes(), at) {
            Err(InboundError::BadBody(_)) => {}
            other => panic!("expected a body error after a valid signature, got {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 1, "no published vector was checked");
}

#[test]
fn github_vectors_from_the_fixtures() {
    let v = json_fixture("github.signature_vectors.json");
    let p = &v["published"];
    assert_eq!(
        sign::github_sign(
            p["secret"].as_str().unwrap(),
            p["payload"].as_str().unwrap().as_bytes()
        ),
        p["x_hub_signature_256"].as_str().unwrap()
    );
    for c in v["computed"].as_array().unwrap() {
        let body = fixture(c["payload_file"].as_str().unwrap());
        let secret = c["secret"].as_str().unwrap();
        let expected = c["x_hub_signature_256"].as_str().unwrap();
        assert_eq!(sign::github_sign(secret, &body), expected);
        let hdrs = json_fixture(c["headers_file"].as_str().unwrap());
        let h = headers(&[
            ("x-hub-signature-256", expected),
            (
                "x-github-delivery",
                hdrs["X-GitHub-Delivery"].as_str().unwrap(),
            ),
            ("x-github-event", hdrs["X-GitHub-Event"].as_str().unwrap()),
        ]);
        let inbound = verify_inbound(
            &cfg(Format::Github, Some(secret), false),
            &h,
            &body,
            SystemTime::now(),
        )
        .unwrap();
        // Deduplicated by the signed body, not by the unsigned delivery header.
        assert_eq!(inbound.message_id, hex::encode(Sha256::digest(&body)));
        let Some(InboundEvent::Message(m)) = inbound.event else {
            panic!("no message")
        };
        let text = m.text.text;
        match hdrs["X-GitHub-Event"].as_str().unwrap() {
            "push" => assert!(text.contains("pushed") && text.contains("commit"), "{text}"),
            "issue_comment" => assert!(text.contains("commented on"), "{text}"),
            other => panic!("unexpected fixture event {other}"),
        }
        // One byte changed → refused.
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert!(matches!(
            verify_inbound(
                &cfg(Format::Github, Some(secret), false),
                &h,
                &tampered,
                SystemTime::now()
            ),
            Err(InboundError::BadSignature(_))
        ));
    }
}

#[test]
fn standard_inbound_checks_signature_time_and_rotation() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let c = cfg(Format::Standard, Some(secret), false);
    let now = SystemTime::now();
    let ts = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let body = br#"{"content":"hello","author":{"id":"u1","name":"Ann"}}"#;
    let good = sign::standard_sign(secret, "msg_1", ts, body);
    let h = headers(&[
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &good),
    ]);
    let ok = verify_inbound(&c, &h, body, now).unwrap();
    assert_eq!(ok.message_id, "msg_1");
    let Some(InboundEvent::Message(m)) = ok.event else {
        panic!()
    };
    assert_eq!(
        (m.text.text.as_str(), m.author.name.as_str()),
        ("hello", "Ann")
    );
    // Key rotation: an old signature first, then the valid one.
    let rotated = format!("v1,AAAA{} {good} v2,whatever", &good[7..]);
    let h2 = headers(&[
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &rotated),
    ]);
    assert!(verify_inbound(&c, &h2, body, now).is_ok());
    // Tampered body.
    assert!(matches!(
        verify_inbound(&c, &h, br#"{"content":"hellO"}"#, now),
        Err(InboundError::BadSignature(_))
    ));
    // Six minutes off → stale (401).
    let old = ts - 360;
    let sig = sign::standard_sign(secret, "msg_2", old, body);
    let h3 = headers(&[
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", &old.to_string()),
        ("webhook-signature", &sig),
    ]);
    let e = verify_inbound(&c, &h3, body, now).unwrap_err();
    assert!(matches!(e, InboundError::Stale(_)));
    assert_eq!(e.status(), 401);
    // Missing header, and a link without a secret.
    assert_eq!(
        verify_inbound(&c, &headers(&[]), body, now).unwrap_err(),
        InboundError::MissingHeader("webhook-id")
    );
    assert!(matches!(
        verify_inbound(&cfg(Format::Standard, None, false), &h, body, now),
        Err(InboundError::Unauthorized(_))
    ));
}

#[test]
fn plain_inbound_needs_the_bearer_secret() {
    let c = cfg(Format::Plain, Some("s3cret-value"), false);
    let body = br#"{"type":"Note","content":"hi"}"#;
    let now = SystemTime::now();
    let ok = verify_inbound(
        &c,
        &headers(&[
            ("authorization", "Bearer s3cret-value"),
            ("idempotency-key", "k1"),
        ]),
        body,
        now,
    )
    .unwrap();
    assert_eq!(ok.message_id, "k1");
    let no_key = verify_inbound(
        &c,
        &headers(&[("authorization", "Bearer s3cret-value")]),
        body,
        now,
    )
    .unwrap();
    assert_eq!(no_key.message_id.len(), 64, "sha-256 of the body");
    assert!(matches!(
        verify_inbound(&c, &headers(&[("authorization", "Bearer nope")]), body, now),
        Err(InboundError::Unauthorized(_))
    ));
    assert!(matches!(
        verify_inbound(
            &c,
            &headers(&[("authorization", "Bearer s3cret-value")]),
            b"{}",
            now
        ),
        Err(InboundError::BadBody(_))
    ));
    assert!(matches!(
        verify_inbound(&cfg(Format::Slack, None, false), &headers(&[]), body, now),
        Err(InboundError::Unsupported(_))
    ));
}

fn msg(item: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        item_id: item.into(),
        group_id: "g".into(),
        author: Author {
            id: "a".into(),
            name: "Ann".into(),
        },
        text: FormattedText::plain(text),
        reply_to: None,
        attachments: vec![],
        origin: None,
        item: None,
    }
}

#[tokio::test]
async fn conformance_standard_format_against_a_real_receiver() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = Receiver::start(Some(secret)).await.unwrap();
    let gw = WebhookGateway::new(cfg(Format::Standard, Some(secret), true)).unwrap();
    let caps = Capabilities {
        max_units: 16_000,
        unit: Unit::Chars,
        replies: true,
        edits_and_deletes: true,
    };
    conformance(&gw, &r, &r.url("std"), &caps).await.unwrap();
    assert!(r.refused().is_empty(), "every signature verified");
}

#[tokio::test]
async fn conformance_discord_format_splits_at_2000() {
    let r = Receiver::start(None).await.unwrap();
    let gw = WebhookGateway::new(cfg(Format::Discord, None, true)).unwrap();
    let caps = Capabilities {
        max_units: 2_000,
        unit: Unit::Chars,
        replies: false,
        // In place, through the execute-webhook message routes (tests/discord.rs has details).
        edits_and_deletes: true,
    };
    conformance(&gw, &r, &r.url("discord"), &caps)
        .await
        .unwrap();
    let body = &r.deliveries()[0].body;
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
    assert!(r
        .discord_messages("discord")
        .iter()
        .all(|m| m.allowed_mentions == serde_json::json!({"parse": []})));
    // And in a thread of the channel.
    conformance(&gw, &r, &r.url("discord-thread?thread_id=42"), &caps)
        .await
        .unwrap();
    let in_thread = r.discord_messages("discord-thread");
    assert!(!in_thread.is_empty() && in_thread.iter().all(|m| m.channel_id == "42"));
}

#[tokio::test]
async fn faults_map_to_gateway_errors_and_retries_repeat_the_id() {
    let r = Receiver::start(None).await.unwrap();
    let gw = WebhookGateway::new(cfg(Format::Standard, None, true)).unwrap();
    let url = r.url("f");
    r.fail_next([Fault::RateLimit(2)]);
    match gw.send(&url, &msg("i1", "x")).await {
        Err(GatewayError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(2))
        }
        other => panic!("{other:?}"),
    }
    r.fail_next([Fault::Status(503)]);
    assert!(matches!(
        gw.send(&url, &msg("i1", "x")).await,
        Err(GatewayError::Transient(_))
    ));
    let d = gw.send(&url, &msg("i1", "x")).await.unwrap();
    // The refused attempts and the accepted one carried the same webhook-id.
    let ids: Vec<_> = r
        .refused()
        .iter()
        .chain(r.deliveries().iter())
        .map(|d| d.webhook_id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == d.parts[0].message_id));
    // A repeat after success is recognisable by the receiver.
    gw.send(&url, &msg("i1", "x")).await.unwrap();
    assert_eq!(r.texts("f"), ["x"]);
    assert!(r.deliveries()[1].repeat);
    r.fail_next([Fault::Status(410)]);
    assert!(
        matches!(gw.send(&url, &msg("i2", "y")).await, Err(GatewayError::Permanent(m)) if m.contains("410"))
    );
    r.fail_next([Fault::Status(400)]);
    assert!(matches!(
        gw.send(&url, &msg("i3", "z")).await,
        Err(GatewayError::Permanent(_))
    ));
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let r = Receiver::start(None).await.unwrap();
    let gw = WebhookGateway::new(cfg(Format::Standard, None, false)).unwrap();
    for url in [
        r.url("x"),
        format!("http://localhost:{}/x", r.addr.port()),
        "http://10.0.0.1/x".into(),
        "http://169.254.169.254/latest".into(),
        "http://[::1]:9/x".into(),
    ] {
        match gw.send(&url, &msg("i", "x")).await {
            Err(GatewayError::Permanent(m)) => {
                assert!(m.contains("allow_private_target"), "{url}: {m}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(
        r.deliveries().is_empty() && r.refused().is_empty(),
        "nothing reached the receiver"
    );
    assert!(check_target("https://example.com/hook", false).is_ok());
    let allowed = WebhookGateway::new(cfg(Format::Standard, None, true)).unwrap();
    allowed.send(&r.url("x"), &msg("i", "x")).await.unwrap();
    assert_eq!(r.texts("x"), ["x"]);
}

#[tokio::test]
async fn delivery_errors_do_not_reveal_the_target_url() {
    // The URL of a Slack/Discord webhook is its credential.
    let gw = WebhookGateway::new(cfg(Format::Slack, None, true)).unwrap();
    let secret_url = "http://127.0.0.1:9/services/T000/B000/very-secret-token";
    match gw.send(secret_url, &msg("i9", "x")).await {
        Err(GatewayError::Transient(m)) => assert!(!m.contains("very-secret-token"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_prefixed_secrets_that_are_not_base64_are_flagged() {
    assert_eq!(
        sign::standard_secret_problem("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        None
    );
    assert!(sign::standard_secret_problem("whsec_not base64!").is_some());
    assert!(sign::standard_secret_problem("whsec_").is_some());
    // Without the prefix the lenient rule stands (base64, else the raw bytes).
    assert_eq!(sign::standard_secret_problem("any shared secret"), None);
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_64_kib() {
    let r = Receiver::start(None).await.unwrap();
    // Far more than 64 KiB, but what socket buffers may hold on loopback stays below this.
    const READ_AT_MOST: u64 = 16 * 1024 * 1024;
    for (format, status, path) in [
        (Format::Standard, 500, "endless"),
        (Format::Standard, 400, "endless"),
        (Format::Discord, 500, "api/webhooks/1/endless"),
    ] {
        let gw = WebhookGateway::new(cfg(format, None, true)).unwrap();
        let before = r.streamed_bytes();
        r.fail_next([Fault::EndlessBody(status)]);
        let err = gw
            .send(&r.url(path), &msg("big", "x"))
            .await
            .expect_err("an error status");
        let read = r.streamed_bytes() - before;
        assert!(
            read < READ_AT_MOST,
            "{format:?} {status}: {read} bytes of the answer were read"
        );
        // The excerpt in the error stays short.
        assert!(err.to_string().len() < 1000, "{err}");
    }
}
