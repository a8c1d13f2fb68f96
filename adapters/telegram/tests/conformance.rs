//! The gateway crate's conformance suite against the fake Bot API.

use rumgate_gateway::conformance::{self, Capabilities};
use rumgate_gateway::text::Unit;
use rumgate_telegram::fake::FakeBotApi;
use rumgate_telegram::{PacingLimits, TelegramGateway, MAX_TEXT_UNITS};

fn caps() -> Capabilities {
    Capabilities {
        max_units: MAX_TEXT_UNITS,
        unit: Unit::Utf16,
        replies: true,
        edits_and_deletes: true,
    }
}

#[tokio::test]
async fn passes_the_outbound_conformance_suite_within_the_pacing_limits() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    conformance::conformance(&gw, &fake, "-1002345678901", &caps())
        .await
        .expect("conformance");
    let violations = fake.pacing_violations(&PacingLimits::default());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn passes_the_outbound_conformance_suite_in_a_forum_topic() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    conformance::conformance(&gw, &fake, "-1003456789012/2051", &caps())
        .await
        .expect("conformance");
    let sent = fake.calls_to("sendMessage");
    assert!(!sent.is_empty());
    for call in sent {
        assert_eq!(call.params["message_thread_id"], 2051, "{:?}", call.params);
    }
}

#[tokio::test]
async fn receives_inbound_and_loses_nothing_across_restarts() {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config()).expect("gateway");
    let msg = conformance::receives_inbound(&gw, &fake, "-1002345678901")
        .await
        .expect("receives_inbound");
    assert_eq!(msg.author.name, "Alice");
    conformance::restart_without_loss(
        || async { TelegramGateway::new(fake.config()).expect("gateway") },
        &fake,
        "-1002345678901",
    )
    .await
    .expect("restart_without_loss");
}
