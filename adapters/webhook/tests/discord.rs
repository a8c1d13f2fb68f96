//! The `discord` format against the fake receiver speaking Discord's execute-webhook API: parts
//! posted with `wait=true`, edits and deletes in place, rate limits and gone webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rumgate_gateway::text::{split_text, Unit};
use rumgate_gateway::{
    Author, Delivered, FormattedText, Gateway, GatewayError, HealthState, OutboundDelete,
    OutboundEdit, OutboundMessage, RemoteRef,
};
use rumgate_webhook::fake::{Fault, Receiver, DISCORD_CHANNEL_ID};
use rumgate_webhook::{Format, LinkConfig, WebhookGateway};
use serde_json::json;
use std::time::Duration;

const HOOK: &str = "api/webhooks/1234/tok-en";

fn gateway(format: Format) -> WebhookGateway {
    let cfg: LinkConfig = serde_json::from_value(json!({
        "format": format, "allow_private_target": true,
    }))
    .unwrap();
    WebhookGateway::new(cfg).unwrap()
}

fn author() -> Author {
    Author {
        id: "a".into(),
        name: "Ann".into(),
    }
}

fn msg(item: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        item_id: item.into(),
        group_id: "g".into(),
        author: author(),
        text: FormattedText::plain(text),
        reply_to: None,
        attachments: vec![],
        origin: None,
        item: None,
    }
}

fn edit(item: &str, parts: &[RemoteRef], text: &str) -> OutboundEdit {
    OutboundEdit {
        item_id: item.into(),
        parts: parts.to_vec(),
        text: FormattedText::plain(text),
        author: author(),
    }
}

fn delete(item: &str, parts: &[RemoteRef]) -> OutboundDelete {
    OutboundDelete {
        item_id: item.into(),
        parts: parts.to_vec(),
    }
}

/// A text of `words` words, 12 characters each with the space.
fn long_text(tag: &str, words: usize) -> String {
    (0..words)
        .map(|i| format!("{tag}{i:05}ab"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The parts the adapter cuts `text` into (2,000 characters each).
fn cut(text: &str) -> Vec<String> {
    split_text(&FormattedText::plain(text), 2_000, Unit::Chars)
        .into_iter()
        .map(|p| p.text)
        .collect()
}

fn ids(d: &Delivered) -> Vec<String> {
    d.parts.iter().map(|p| p.message_id.clone()).collect()
}

/// The requests of one method the receiver accepted, with their queries.
fn requests(r: &Receiver, method: &str) -> Vec<(String, Option<String>)> {
    r.deliveries()
        .into_iter()
        .filter(|d| d.method == method)
        .map(|d| (d.path, d.query))
        .collect()
}

#[tokio::test]
async fn send_edit_grow_shrink_delete_happen_in_place() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let url = r.url(HOOK);

    // Send: posted with wait=true; the part's id is Discord's message id.
    let sent = gw.send(&url, &msg("i1", "hello @everyone")).await.unwrap();
    let posted = r.discord_messages(HOOK);
    assert_eq!(posted.len(), 1);
    assert_eq!(ids(&sent), [posted[0].id.clone()]);
    assert_eq!(sent.parts[0].chat, url);
    assert_eq!(requests(&r, "POST")[0].1.as_deref(), Some("wait=true"));
    assert_eq!(posted[0].allowed_mentions, json!({"parse": []}));
    assert_eq!(r.visible(HOOK), ["hello @everyone"]);

    // Same number of parts: PATCHed, nothing posted.
    let same = gw
        .edit(&url, &edit("i1", &sent.parts, "hello again @here"))
        .await
        .unwrap();
    assert_eq!(same, sent);
    assert_eq!(r.visible(HOOK), ["hello again @here"]);
    let m = &r.discord_messages(HOOK)[0];
    assert!(m.edited);
    assert_eq!(m.allowed_mentions, json!({"parse": []}));
    let patches = requests(&r, "PATCH");
    assert_eq!(
        patches,
        [(
            format!("{HOOK}/messages/{}", sent.parts[0].message_id),
            None
        )]
    );

    // More parts: the first is PATCHed, the others are posted after it.
    let long = long_text("grow", 400);
    let expected = cut(&long);
    assert_eq!(expected.len(), 3, "the test text should need three parts");
    let grown = gw
        .edit(&url, &edit("i1", &same.parts, &long))
        .await
        .unwrap();
    assert_eq!(grown.parts.len(), 3);
    assert_eq!(grown.parts[0], sent.parts[0]);
    assert_eq!(r.visible(HOOK), expected);
    let all: Vec<String> = r.discord_messages(HOOK).into_iter().map(|m| m.id).collect();
    assert_eq!(ids(&grown), all, "the new parts are the posted messages");

    // Fewer parts: the first is PATCHed, the surplus deleted.
    let shrunk = gw
        .edit(&url, &edit("i1", &grown.parts, "short again"))
        .await
        .unwrap();
    assert_eq!(shrunk.parts, grown.parts[..1]);
    assert_eq!(r.visible(HOOK), ["short again"]);
    let deleted: Vec<String> = r
        .discord_messages(HOOK)
        .into_iter()
        .filter(|m| m.deleted)
        .map(|m| m.id)
        .collect();
    assert_eq!(deleted, ids(&grown)[1..]);

    // Delete: every part goes; repeating it (all "Unknown Message" now) still succeeds.
    gw.delete(&url, &delete("i1", &shrunk.parts)).await.unwrap();
    assert!(r.visible(HOOK).is_empty());
    assert!(r.discord_messages(HOOK).iter().all(|m| m.deleted));
    let deletes = requests(&r, "DELETE").len();
    gw.delete(&url, &delete("i1", &grown.parts)).await.unwrap();
    assert_eq!(
        requests(&r, "DELETE").len(),
        deletes + 3,
        "the repeat asked Discord again"
    );
    assert_eq!(gw.health().await.state, HealthState::Ok);
}

#[tokio::test]
async fn the_thread_id_of_the_link_is_kept() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    // An explicit wait=false in the link is replaced.
    let url = format!("{}?thread_id=777&wait=false", r.url(HOOK));
    let sent = gw.send(&url, &msg("t1", "in a thread")).await.unwrap();
    assert_eq!(
        requests(&r, "POST")[0].1.as_deref(),
        Some("thread_id=777&wait=true")
    );
    assert_eq!(r.discord_messages(HOOK)[0].channel_id, "777");

    // Without the thread_id Discord would answer "Unknown Message" and the edit would post anew.
    let edited = gw
        .edit(&url, &edit("t1", &sent.parts, "still in the thread"))
        .await
        .unwrap();
    assert_eq!(edited, sent);
    assert_eq!(r.visible(HOOK), ["still in the thread"]);
    assert_eq!(r.discord_messages(HOOK).len(), 1, "nothing posted anew");
    assert_eq!(requests(&r, "PATCH")[0].1.as_deref(), Some("thread_id=777"));
    gw.delete(&url, &delete("t1", &sent.parts)).await.unwrap();
    assert_eq!(
        requests(&r, "DELETE")[0].1.as_deref(),
        Some("thread_id=777")
    );
    assert!(r.visible(HOOK).is_empty());

    // The fake insists on the thread as Discord does: without it the message is unknown, so an
    // edit through a link without the thread_id posts anew, into the channel.
    let threaded = gw.send(&url, &msg("t2", "threaded")).await.unwrap();
    let moved = gw
        .edit(&r.url(HOOK), &edit("t2", &threaded.parts, "moved"))
        .await
        .unwrap();
    assert_ne!(moved, threaded);
    let last = r.discord_messages(HOOK).pop().unwrap();
    assert_eq!(
        (last.channel_id.as_str(), last.content.as_str()),
        (DISCORD_CHANNEL_ID, "moved")
    );
}

#[tokio::test]
async fn rate_limits_on_edit_and_delete_are_retryable() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let url = r.url(HOOK);
    let sent = gw.send(&url, &msg("r1", "before")).await.unwrap();

    // Discord's JSON body (seconds, fractional) wins over the rounded header.
    r.fail_next([Fault::DiscordRateLimit(0.25)]);
    let e = gw
        .edit(&url, &edit("r1", &sent.parts, "after"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        GatewayError::RateLimited {
            retry_after: Duration::from_millis(250)
        }
    );
    assert!(e.is_retryable());
    assert_eq!(
        r.visible(HOOK),
        ["before"],
        "the refused PATCH changed nothing"
    );
    assert_eq!(gw.health().await.state, HealthState::Degraded);

    // The header alone, and the body alone.
    r.fail_next([Fault::RateLimit(2)]);
    assert_eq!(
        gw.edit(&url, &edit("r1", &sent.parts, "after")).await,
        Err(GatewayError::RateLimited {
            retry_after: Duration::from_secs(2)
        })
    );
    r.fail_next([Fault::Json(
        429,
        json!({"retry_after": 1.5, "global": false}),
    )]);
    assert_eq!(
        gw.edit(&url, &edit("r1", &sent.parts, "after")).await,
        Err(GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500)
        })
    );
    // The node retries: now it goes through, in place.
    let edited = gw
        .edit(&url, &edit("r1", &sent.parts, "after"))
        .await
        .unwrap();
    assert_eq!(edited, sent);
    assert_eq!(r.visible(HOOK), ["after"]);
    assert_eq!(gw.health().await.state, HealthState::Ok);

    r.fail_next([Fault::DiscordRateLimit(3.0)]);
    assert_eq!(
        gw.delete(&url, &delete("r1", &sent.parts)).await,
        Err(GatewayError::RateLimited {
            retry_after: Duration::from_secs(3)
        })
    );
    assert_eq!(r.visible(HOOK), ["after"]);
    gw.delete(&url, &delete("r1", &sent.parts)).await.unwrap();
    assert!(r.visible(HOOK).is_empty());
}

#[tokio::test]
async fn edits_of_messages_discord_does_not_know_post_anew() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let url = r.url(HOOK);

    // Deleted on Discord meanwhile (here: by an earlier delete): the edit posts the text anew
    // and the new message replaces the part.
    let sent = gw.send(&url, &msg("u1", "original")).await.unwrap();
    gw.delete(&url, &delete("u1", &sent.parts)).await.unwrap();
    let edited = gw
        .edit(&url, &edit("u1", &sent.parts, "posted anew"))
        .await
        .unwrap();
    assert_eq!(edited.parts.len(), 1);
    assert_ne!(edited.parts[0], sent.parts[0]);
    assert_eq!(r.visible(HOOK), ["posted anew"]);
    assert_eq!(
        r.discord_messages(HOOK).last().unwrap().id,
        edited.parts[0].message_id
    );

    // An id this webhook never posted: the same.
    let unknown = [RemoteRef {
        chat: url.clone(),
        message_id: "999".into(),
    }];
    let edited = gw
        .edit(&url, &edit("u2", &unknown, "unknown id"))
        .await
        .unwrap();
    assert_ne!(edited.parts[0].message_id, "999");
    assert_eq!(r.visible(HOOK), ["posted anew", "unknown id"]);

    // A 404 that is not "Unknown Message" (the webhook is gone) is not posted around.
    r.fail_next([Fault::Json(
        404,
        json!({"message": "Unknown Webhook", "code": 10015}),
    )]);
    assert!(matches!(
        gw.edit(&url, &edit("u2", &edited.parts, "gone")).await,
        Err(GatewayError::Permanent(m)) if m.contains("Unknown Webhook")
    ));
    assert_eq!(r.visible(HOOK), ["posted anew", "unknown id"]);
}

#[tokio::test]
async fn parts_delivered_before_in_place_edits_keep_the_old_behaviour() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let url = r.url(HOOK);
    // Ids stored by earlier versions are webhook-ids, not Discord message ids.
    let legacy = [RemoteRef {
        chat: url.clone(),
        message_id: "msg_0123456789abcdef0123456789abcdef".into(),
    }];
    let edited = gw
        .edit(&url, &edit("l1", &legacy, "new text"))
        .await
        .unwrap();
    assert_eq!(r.visible(HOOK), ["(edited) new text"]);
    assert!(requests(&r, "PATCH").is_empty());
    // The reposted message is a real Discord message: later edits happen in place.
    let again = gw
        .edit(&url, &edit("l1", &edited.parts, "newer text"))
        .await
        .unwrap();
    assert_eq!(again, edited);
    assert_eq!(r.visible(HOOK), ["newer text"]);
    // Deleting legacy parts cannot reach Discord and is not an error.
    gw.delete(&url, &delete("l1", &legacy)).await.unwrap();
    assert!(requests(&r, "DELETE").is_empty());
    gw.delete(&url, &delete("l1", &again.parts)).await.unwrap();
    assert!(r.visible(HOOK).is_empty());
}

#[tokio::test]
async fn a_retried_send_or_edit_does_not_post_parts_twice() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let url = r.url(HOOK);
    let long = long_text("send", 400);

    // Part 0 is posted, part 1 is rate limited: the node retries the whole send.
    r.fail_next([Fault::Pass, Fault::DiscordRateLimit(0.5)]);
    assert!(matches!(
        gw.send(&url, &msg("p1", &long)).await,
        Err(GatewayError::RateLimited { .. })
    ));
    assert_eq!(r.visible(HOOK).len(), 1);
    let first = r.discord_messages(HOOK)[0].id.clone();
    let sent = gw.send(&url, &msg("p1", &long)).await.unwrap();
    assert_eq!(r.visible(HOOK), cut(&long), "no part twice");
    assert_eq!(sent.parts[0].message_id, first);
    assert_eq!(
        ids(&sent),
        r.discord_messages(HOOK)
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    );

    // An edit growing a one-part message: PATCH, post, then a 429 on the next post.
    let short = gw.send(&url, &msg("p2", "short")).await.unwrap();
    let grown_text = long_text("edit", 400);
    r.fail_next([Fault::Pass, Fault::Pass, Fault::DiscordRateLimit(0.5)]);
    assert!(gw
        .edit(&url, &edit("p2", &short.parts, &grown_text))
        .await
        .is_err());
    let grown = gw
        .edit(&url, &edit("p2", &short.parts, &grown_text))
        .await
        .unwrap();
    let mut expected = cut(&long);
    expected.extend(cut(&grown_text));
    assert_eq!(r.visible(HOOK), expected, "no part twice");
    assert_eq!(grown.parts[0], short.parts[0]);
    assert_eq!(grown.parts.len(), 3);
}

#[tokio::test]
async fn a_gone_webhook_is_permanent_and_the_error_hides_the_url() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Discord);
    let hook = "api/webhooks/1234/very-secret-token-0123456789";
    let url = r.url(hook);
    let sent = gw.send(&url, &msg("g1", "hi")).await.unwrap();

    let faults = [
        Fault::Status(401),
        Fault::Json(
            401,
            json!({"message": "Invalid Webhook Token", "code": 50027}),
        ),
        Fault::Status(403),
        Fault::Json(404, json!({"message": "Unknown Webhook", "code": 10015})),
    ];
    for fault in faults {
        for call in ["send", "edit", "delete"] {
            r.fail_next([fault.clone()]);
            let result = match call {
                "send" => gw.send(&url, &msg("g2", "x")).await.map(|_| ()),
                "edit" => gw
                    .edit(&url, &edit("g1", &sent.parts, "y"))
                    .await
                    .map(|_| ()),
                _ => gw.delete(&url, &delete("g1", &sent.parts)).await,
            };
            match result {
                Err(GatewayError::Permanent(m)) => {
                    assert!(m.contains("create a new webhook"), "{call} {fault:?}: {m}");
                    assert!(!m.contains("very-secret-token"), "{call}: {m}");
                }
                other => panic!("{call} {fault:?}: {other:?}"),
            }
            let health = gw.health().await;
            assert_eq!(health.state, HealthState::Failing);
            assert!(!health.detail.unwrap().contains("very-secret-token"));
        }
    }
    assert_eq!(r.visible(hook), ["hi"], "nothing changed");

    r.fail_next([Fault::Status(502)]);
    assert!(matches!(
        gw.edit(&url, &edit("g1", &sent.parts, "y")).await,
        Err(GatewayError::Transient(m)) if !m.contains("very-secret-token")
    ));
    // Nothing listens on port 9: a network error, transient, without the URL.
    let closed = "http://127.0.0.1:9/api/webhooks/1234/very-secret-token-0123456789";
    for result in [
        gw.send(closed, &msg("g3", "x")).await.map(|_| ()),
        gw.edit(closed, &edit("g1", &sent.parts, "y"))
            .await
            .map(|_| ()),
        gw.delete(closed, &delete("g1", &sent.parts)).await,
    ] {
        match result {
            Err(GatewayError::Transient(m)) => assert!(!m.contains("very-secret-token"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn slack_still_posts_edits_anew_and_ignores_deletes() {
    let r = Receiver::start(None).await.unwrap();
    let gw = gateway(Format::Slack);
    let url = r.url("services/T0/B0/x");
    let sent = gw.send(&url, &msg("s1", "hi <you>")).await.unwrap();
    let edited = gw
        .edit(&url, &edit("s1", &sent.parts, "hello"))
        .await
        .unwrap();
    assert_ne!(edited, sent);
    gw.delete(&url, &delete("s1", &edited.parts)).await.unwrap();
    let bodies: Vec<_> = r.deliveries().into_iter().map(|d| d.body).collect();
    assert_eq!(
        bodies,
        [
            json!({"text": "hi &lt;you&gt;"}),
            json!({"text": "(edited) hello"})
        ]
    );
    assert!(r
        .deliveries()
        .iter()
        .all(|d| d.method == "POST" && d.query.is_none()));
}
