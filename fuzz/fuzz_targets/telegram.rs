//! A Telegram update (from `getUpdates` or a webhook body): JSON parse, `parse_update`, then
//! `convert_update` as the bot and as an unknown bot; every text produced must have valid spans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate_gateway::InboundEvent;
use rumgate_telegram::convert::{convert_update, file_placeholder, parse_update, Converted};

/// The bot id of the fixtures the corpus was made from.
const BOT_ID: i64 = 7_412_345_678;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(update) = parse_update(value) else {
        return;
    };
    for bot in [Some(BOT_ID), None] {
        for max_file_bytes in [400 * 1024, 0] {
            check(convert_update(&update, bot, max_file_bytes));
        }
    }
});

fn check(converted: Converted) {
    let Converted::Event { event, file } = converted else {
        return;
    };
    let text = match &event {
        InboundEvent::Message(m) => &m.text,
        InboundEvent::Edit { text, .. } => text,
        _ => return,
    };
    if let Err(e) = text.validate() {
        panic!("converted text has an invalid span: {e} in {text:?}");
    }
    rumgate_fuzz::to_object(&event);
    if let Some(file) = file {
        let _ = file_placeholder(&file, "too large");
    }
}
