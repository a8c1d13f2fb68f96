//! A restart in the middle of a 429 storm: driven by an outbox-like loop that records each
//! delivered item durably (as the node's outbox does, with the retry time a 429 asked for), the
//! chat receives every item exactly once, in order, within the pacing limits.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumgate_gateway::{Author, Delivered, FormattedText, Gateway, GatewayError, OutboundMessage};
use rumgate_telegram::fake::FakeBotApi;
use rumgate_telegram::{PacingLimits, TelegramGateway};
use tokio::time::Instant;

const CHAT: i64 = -1007777777777;

/// What the node's outbox keeps in its database.
#[derive(Default)]
struct Durable {
    items: Vec<OutboundMessage>,
    /// Delivered items' parts, in order: the outbox's cursor is its length.
    delivered: Vec<Delivered>,
    /// The earliest next attempt, from a 429's retry_after or a backoff.
    not_before: Option<Instant>,
    rate_limited: usize,
}

#[derive(Clone, Default)]
struct Outbox(Arc<Mutex<Durable>>);

impl Outbox {
    fn db(&self) -> MutexGuard<'_, Durable> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Delivers from the durable cursor on; "crashes" (returns) at the first 429 once `crash` is set.
async fn drive(gw: &TelegramGateway, outbox: &Outbox, crash: &AtomicBool) -> bool {
    let chat = CHAT.to_string();
    loop {
        let (item, not_before) = {
            let db = outbox.db();
            (db.items.get(db.delivered.len()).cloned(), db.not_before)
        };
        let Some(item) = item else { return true };
        if let Some(at) = not_before {
            tokio::time::sleep_until(at).await;
        }
        match gw.send(&chat, &item).await {
            Ok(parts) => {
                let mut db = outbox.db();
                db.delivered.push(parts);
                db.not_before = None;
            }
            Err(GatewayError::RateLimited { retry_after }) => {
                {
                    let mut db = outbox.db();
                    db.not_before = Some(Instant::now() + retry_after);
                    db.rate_limited += 1;
                }
                if crash.load(Ordering::SeqCst) {
                    return false;
                }
            }
            Err(e @ GatewayError::Transient(_)) => {
                outbox.db().not_before = Some(Instant::now() + Duration::from_secs(1));
                eprintln!("transient: {e}");
            }
            Err(e) => panic!("item {} failed for good: {e}", item.item_id),
        }
    }
}

#[tokio::test]
async fn delivers_exactly_once_in_order_across_a_restart_during_a_429_storm() {
    let fake = FakeBotApi::start().await;
    fake.set_429_storm(0.3, 1..=2, 20260611);
    let outbox = Outbox::default();
    let mut expected = Vec::new();
    for i in 0..10 {
        let text = if i == 6 {
            // Two parts: a 429 on the second part is ridden out inside the send.
            format!("item {i} ") + &"long ".repeat(1000)
        } else {
            format!("item {i}")
        };
        expected.push(text.clone());
        outbox.db().items.push(OutboundMessage {
            item_id: format!("trx-{i}"),
            group_id: "g".into(),
            author: Author::default(),
            text: FormattedText::plain(text),
            reply_to: None,
            attachments: vec![],
            origin: None,
            item: None,
        });
    }

    // First run: crash at the first 429 after four items are out.
    let crash = AtomicBool::new(false);
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let first = async {
        let done = drive(&gw, &outbox, &crash).await;
        assert!(!done, "the storm should hit after the fourth item");
    };
    let arm = async {
        common::eventually("four items out", Duration::from_secs(60), || async {
            (outbox.db().delivered.len() >= 4).then_some(())
        })
        .await;
        crash.store(true, Ordering::SeqCst);
    };
    tokio::join!(first, arm);
    gw.shutdown().await;
    drop(gw);
    let before = outbox.db().delivered.len();
    let limited_before = outbox.db().rate_limited;
    assert!((4..10).contains(&before), "{before}");
    assert!(limited_before >= 1);

    // Second run: a new gateway resumes from the durable cursor, honouring the stored retry time.
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let never = AtomicBool::new(false);
    assert!(drive(&gw, &outbox, &never).await);
    gw.shutdown().await;

    let sent = fake.visible_bot_messages(CHAT);
    let texts: Vec<String> = sent.iter().map(|m| m.text.clone()).collect();
    let mut joined_expected = Vec::new();
    for (i, text) in expected.iter().enumerate() {
        let parts = &outbox.db().delivered[i].parts;
        let got: String = parts
            .iter()
            .map(|p| {
                sent.iter()
                    .find(|m| m.message_id.to_string() == p.message_id)
                    .map(|m| m.text.clone())
                    .expect("a recorded part is on the server")
            })
            .collect();
        assert_eq!(&got, text, "item {i}");
        joined_expected.push(text.clone());
    }
    assert_eq!(
        texts.concat(),
        joined_expected.concat(),
        "nothing lost, doubled or reordered"
    );
    assert_eq!(sent.len(), 11, "ten items, one of them in two parts");
    let storm_429s = fake
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.status == 429)
        .count();
    assert!(storm_429s >= 2, "a storm: {storm_429s} 429s");
    assert!(
        outbox.db().rate_limited > limited_before,
        "still storming after the restart"
    );
    let v = fake.pacing_violations(&PacingLimits::default());
    assert!(v.is_empty(), "{v:#?}");
}
