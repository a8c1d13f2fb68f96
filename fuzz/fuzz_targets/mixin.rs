//! A Mixin Blaze websocket frame (gzip-compressed JSON in a binary message): `decode_frame`,
//! then what the gateway does with a `CREATE_MESSAGE`: the message view, its payload, its
//! classification and timestamp, and the event it becomes.
//!
//! The input is tried twice: as the frame itself (gzip-level mutations), and as the JSON inside
//! a frame, gzipped here (mutating compressed bytes rarely gets past the CRC, so this is what
//! reaches the JSON and the conversion).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate_gateway::{Author, FormattedText, InboundEvent, InboundMessage};
use rumgate_mixin::blaze::{decode_frame, BlazeMessage, MessageView, CREATE_MESSAGE};
use rumgate_mixin::convert::{
    attachment_placeholder, classify, parse_timestamp, payload, Incoming,
};

/// The bot's user id in the fixtures the corpus was made from.
const BOT_ID: &str = "5e9c2f1a-3b7d-4c8e-9a6f-1d2e3f4a5b6c";

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_frame(data) {
        handle(msg);
    }
    if let Ok(msg) = decode_frame(&gzip_stored(data)) {
        handle(msg);
    }
});

/// `data` as a gzip member of stored (uncompressed) deflate blocks: a valid frame, made without
/// a compressor's tables, which would cost more than everything else in this target.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut chunks = data.chunks(u16::MAX as usize).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        let len = chunk.len() as u16;
        out.push(last);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn handle(msg: BlazeMessage) {
    if msg.error.is_some() || msg.action != CREATE_MESSAGE {
        return;
    }
    let Some(view) = msg
        .data
        .and_then(|d| serde_json::from_value::<MessageView>(d).ok())
    else {
        return;
    };
    let _ = payload(&view);
    let sent_at = parse_timestamp(&view.created_at);
    let text = match classify(&view, BOT_ID) {
        Incoming::Text(t) => t,
        Incoming::Attachment { kind, .. } => attachment_placeholder(kind, "fuzzing"),
        Incoming::Recall { .. } | Incoming::Skip(_) => return,
    };
    // As the inbound handler builds it.
    let event = InboundEvent::Message(InboundMessage {
        chat: view.conversation_id.to_ascii_lowercase(),
        message_id: view.message_id.clone(),
        author: Author {
            id: view.user_id.clone(),
            name: view.user_id.chars().take(8).collect(),
        },
        text: FormattedText::plain(text),
        reply_to: Some(view.quote_message_id.clone()).filter(|q| !q.is_empty()),
        attachments: Vec::new(),
        sent_at,
        from_self: false,
    });
    rumgate_fuzz::to_object(&event);
}
