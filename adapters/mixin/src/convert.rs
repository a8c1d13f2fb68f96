//! Mixin messages ↔ the gateway model: payload encodings, what an incoming message becomes,
//! and the outgoing messages (with deterministic ids) a send, edit or delete becomes.

use rumgate_gateway::text::{split_text, Unit};
use rumgate_gateway::{Attachment, AttachmentKind, FormattedText};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::b64::{decode_base64_lenient, encode_payload};
use crate::blaze::MessageView;
use crate::client::MessageRequest;

/// The longest text of one outgoing message, in UTF-8 bytes. Mixin publishes no text limit; the
/// limit it does publish is 128 KB per `POST /messages`. 16,000 bytes (≈ 21.4 KB once in
/// base64) keep several parts in one request and stay readable as one chat bubble.
pub const MAX_TEXT_BYTES: usize = 16_000;
/// The unit [`MAX_TEXT_BYTES`] counts in.
pub const TEXT_UNIT: Unit = Unit::Bytes;

pub const PLAIN_TEXT: &str = "PLAIN_TEXT";
pub const PLAIN_POST: &str = "PLAIN_POST";
pub const PLAIN_IMAGE: &str = "PLAIN_IMAGE";
pub const PLAIN_DATA: &str = "PLAIN_DATA";
pub const MESSAGE_RECALL: &str = "MESSAGE_RECALL";

/// Reads a field that Mixin may send as JSON `null` as its default (empty string, 0, false,
/// empty list), so that a null never makes a whole message unreadable. Use with
/// `#[serde(default, deserialize_with = "crate::convert::null_as_default")]`.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The payload bytes of an incoming message: `data_base64` if present, else `data`.
pub fn payload(view: &MessageView) -> Option<Vec<u8>> {
    [&view.data_base64, &view.data]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .find_map(|s| decode_base64_lenient(s))
}

/// The payload of `PLAIN_IMAGE` (and, with `name`, of `PLAIN_DATA`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentPayload {
    #[serde(deserialize_with = "null_as_default")]
    pub attachment_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(deserialize_with = "null_as_default")]
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The payload of `MESSAGE_RECALL`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallPayload {
    #[serde(default, deserialize_with = "null_as_default")]
    pub message_id: String,
}

/// What an incoming message asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Text to bridge (also the placeholder for kinds that cannot be mirrored).
    Text(String),
    /// An image or file to download, then bridge.
    Attachment {
        kind: AttachmentKind,
        payload: AttachmentPayload,
    },
    /// The sender recalled message `target`.
    Recall { target: String },
    /// Nothing to bridge: acknowledge and move on.
    Skip(String),
}

/// Classifies an incoming message; `bot_id` is the gateway's own user id, whose messages are
/// never bridged back.
pub fn classify(view: &MessageView, bot_id: &str) -> Incoming {
    if view.user_id.eq_ignore_ascii_case(bot_id) {
        return Incoming::Skip("sent by the bot itself".into());
    }
    if view.conversation_id.is_empty() {
        return Incoming::Skip("no conversation".into());
    }
    let data = payload(view);
    let text = || String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned();
    let json = |what| {
        data.as_deref()
            .and_then(|d| serde_json::from_slice::<AttachmentPayload>(d).ok())
            .filter(|p| !p.attachment_id.is_empty())
            .map_or_else(
                || Incoming::Text(format!("[{what} that could not be read]")),
                |payload| Incoming::Attachment {
                    kind: if what == "image" {
                        AttachmentKind::Image
                    } else {
                        AttachmentKind::File
                    },
                    payload,
                },
            )
    };
    match view.category.as_str() {
        PLAIN_TEXT | PLAIN_POST => match text() {
            t if t.trim().is_empty() => Incoming::Skip("empty text".into()),
            t => Incoming::Text(t),
        },
        PLAIN_IMAGE => json("image"),
        PLAIN_DATA => json("file"),
        MESSAGE_RECALL => match data
            .as_deref()
            .and_then(|d| serde_json::from_slice::<RecallPayload>(d).ok())
        {
            Some(r) if !r.message_id.is_empty() => Incoming::Recall {
                target: r.message_id,
            },
            _ => Incoming::Skip("recall without a target".into()),
        },
        "PLAIN_STICKER" => Incoming::Text("[sticker]".into()),
        "PLAIN_AUDIO" => Incoming::Text("[voice message]".into()),
        "PLAIN_VIDEO" => Incoming::Text("[video]".into()),
        "PLAIN_CONTACT" => Incoming::Text("[contact card]".into()),
        "PLAIN_LOCATION" => Incoming::Text("[location]".into()),
        "PLAIN_TRANSCRIPT" => Incoming::Text("[forwarded conversation]".into()),
        "PLAIN_LIVE" => Incoming::Text("[live stream]".into()),
        "APP_CARD" | "APP_BUTTON_GROUP" => Incoming::Text("[app card]".into()),
        // System messages, pins, encrypted categories a bot cannot read, anything newer.
        other => Incoming::Skip(format!("category {other} is not mirrored")),
    }
}

/// The text that stands for an attachment that is not bridged.
pub fn attachment_placeholder(kind: AttachmentKind, why: &str) -> String {
    let what = match kind {
        AttachmentKind::Image => "image",
        AttachmentKind::File => "file",
    };
    format!("[{what} not mirrored: {why}]")
}

/// `2026-01-01T10:05:00.123456Z` (RFC 3339 in UTC, as Mixin writes it) in Unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (time, offset_secs) = match rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        Some(t) => (t, 0),
        None => {
            let at = rest.rfind(['+', '-'])?;
            let (t, off) = rest.split_at(at);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':')?;
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            if !(0..=23).contains(&oh) || !(0..=59).contains(&om) {
                return None;
            }
            (t, sign * (oh * 3600 + om * 60))
        }
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // RFC 3339 ranges; they also keep the arithmetic below far from overflow.
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&min)
        || !(0..=60).contains(&sec)
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis = frac
        .chars()
        .chain("000".chars())
        .take(3)
        .collect::<String>()
        .parse::<i64>()
        .ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60 + sec - offset_secs) * 1000 + millis)
}

/// Texts of the messages a text becomes: cut to [`MAX_TEXT_BYTES`], blank parts dropped (Mixin
/// shows nothing for them).
pub fn text_parts(text: &FormattedText) -> Vec<String> {
    split_text(text, MAX_TEXT_BYTES, TEXT_UNIT)
        .into_iter()
        .map(|p| p.text)
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// Where outgoing messages go: the conversation and, for 1:1 conversations, the other user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub conversation_id: String,
    pub recipient_id: String,
}

/// Derives the `message_id`s of everything the gateway sends, so that a retried request
/// carries the same ids and Mixin, which keeps the first message with a given id, ignores the
/// repeat. Ids are name-based UUIDs (version 5) over the bot, the conversation and the item.
#[derive(Debug, Clone)]
pub struct Ids {
    /// `<bot>/<conversation>`: ids differ per bot and per conversation.
    scope: String,
}

/// The namespace of every id rumgate derives for Mixin.
const NAMESPACE: Uuid = Uuid::from_u128(0x9b1f_4c2e_6a7d_4e3b_8f05_7275_6d67_6174);

impl Ids {
    pub fn new(bot_id: &str, conversation_id: &str) -> Self {
        Self {
            scope: format!("{bot_id}/{conversation_id}"),
        }
    }

    fn derive(&self, name: &str) -> String {
        Uuid::new_v5(&NAMESPACE, format!("{}/{name}", self.scope).as_bytes()).to_string()
    }

    /// Text part `k` of item `item_id` as first sent.
    pub fn text(&self, item_id: &str, k: usize) -> String {
        self.derive(&format!("{item_id}/text/{k}"))
    }

    /// Attachment `j` of item `item_id`; attachments keep their ids across edits.
    pub fn attachment(&self, item_id: &str, j: usize) -> String {
        self.derive(&format!("{item_id}/attachment/{j}"))
    }

    /// Text part `k` of an edit that replaces the parts starting with `replaced`. Each edit
    /// replaces the previous generation, so ids chain: a repeated edit (same parts, same text)
    /// gets the same ids, a later edit new ones.
    pub fn edit(&self, item_id: &str, replaced: &str, text: &str, k: usize) -> String {
        let digest = hex::encode(&Sha256::digest(text.as_bytes())[..16]);
        self.derive(&format!("{item_id}/edit/{replaced}/{digest}/{k}"))
    }

    /// The recall of message `target`: repeating a delete repeats the same recall.
    pub fn recall(&self, target: &str) -> String {
        self.derive(&format!("recall/{target}"))
    }
}

fn request(target: &Target, message_id: String, category: &str, data: &[u8]) -> MessageRequest {
    MessageRequest {
        conversation_id: target.conversation_id.clone(),
        recipient_id: target.recipient_id.clone(),
        message_id,
        category: category.into(),
        data_base64: encode_payload(data),
        representative_id: String::new(),
        quote_message_id: String::new(),
        silent: false,
    }
}

pub fn text_message(target: &Target, message_id: String, text: &str) -> MessageRequest {
    request(target, message_id, PLAIN_TEXT, text.as_bytes())
}

pub fn recall_message(target: &Target, ids: &Ids, recalled: &str) -> MessageRequest {
    let payload = RecallPayload {
        message_id: recalled.into(),
    };
    request(
        target,
        ids.recall(recalled),
        MESSAGE_RECALL,
        &serde_json::to_vec(&payload).unwrap_or_default(),
    )
}

/// The message for an uploaded attachment: `PLAIN_IMAGE` when the image's size is known (from
/// the model or its header), else `PLAIN_DATA`, which every client can at least save.
pub fn attachment_message(
    target: &Target,
    message_id: String,
    attachment: &Attachment,
    attachment_id: String,
) -> MessageRequest {
    let dims = match (attachment.width, attachment.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Some((w, h)),
        _ => imagesize::blob_size(&attachment.data)
            .ok()
            .and_then(|s| Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))),
    };
    let mut payload = AttachmentPayload {
        attachment_id,
        mime_type: attachment.mime.clone(),
        size: attachment.data.len() as u64,
        ..AttachmentPayload::default()
    };
    let category = match (attachment.kind, dims) {
        (AttachmentKind::Image, Some((w, h))) => {
            payload.width = Some(w);
            payload.height = Some(h);
            PLAIN_IMAGE
        }
        _ => {
            payload.name = Some(
                attachment
                    .name
                    .clone()
                    .unwrap_or_else(|| default_file_name(&attachment.mime)),
            );
            PLAIN_DATA
        }
    };
    request(
        target,
        message_id,
        category,
        &serde_json::to_vec(&payload).unwrap_or_default(),
    )
}

fn default_file_name(mime: &str) -> String {
    let ext = match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "bin",
    };
    format!("attachment.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(category: &str, data_base64: &str, data: &str) -> MessageView {
        MessageView {
            conversation_id: "c".into(),
            user_id: "u".into(),
            message_id: "m".into(),
            category: category.into(),
            data_base64: data_base64.into(),
            data: data.into(),
            ..MessageView::default()
        }
    }

    #[test]
    fn prefers_data_base64_and_falls_back_to_data() {
        let v = view(PLAIN_TEXT, "aGk", "aWdub3JlZA==");
        assert_eq!(classify(&v, "bot"), Incoming::Text("hi".into()));
        let v = view(PLAIN_TEXT, "", "aGk=");
        assert_eq!(classify(&v, "bot"), Incoming::Text("hi".into()));
        let v = view(PLAIN_TEXT, "", "");
        assert!(matches!(classify(&v, "bot"), Incoming::Skip(_)));
    }

    #[test]
    fn skips_the_bots_own_messages_and_system_categories() {
        let mut v = view(PLAIN_TEXT, "aGk", "");
        v.user_id = "BOT".into();
        assert!(matches!(classify(&v, "bot"), Incoming::Skip(r) if r.contains("bot itself")));
        let v = view("SYSTEM_CONVERSATION", "e30", "");
        assert!(matches!(classify(&v, "bot"), Incoming::Skip(_)));
        let v = view("PLAIN_STICKER", "e30", "");
        assert_eq!(classify(&v, "bot"), Incoming::Text("[sticker]".into()));
        let v = view(PLAIN_IMAGE, "bm90IGpzb24", "");
        assert!(
            matches!(classify(&v, "bot"), Incoming::Text(t) if t.contains("could not be read"))
        );
    }

    #[test]
    fn parses_mixin_timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2026-01-01T10:05:00.123456Z"),
            Some(1_767_261_900_123)
        );
        assert_eq!(
            parse_timestamp("2026-01-01T12:05:00.5+02:00"),
            Some(1_767_261_900_500)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in ["", "2026-01-01", "2026-13-01T00:00:00Z", "yesterday"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    /// Found by the `mixin` fuzz target: a huge year or offset overflowed the day arithmetic
    /// (a panic in debug builds, a wrong time in release builds).
    #[test]
    fn rejects_out_of_range_timestamps_without_overflow() {
        for bad in [
            "999999999999999-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "2026-01-01T-9223372036854775808:00:00Z",
            "2026-01-01T00:-1:00Z",
            "2026-01-01T00:00:00+9223372036854775807:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00.-5Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:60.999Z"),
            Some(253_402_300_800_999)
        );
    }

    #[test]
    fn ids_are_deterministic_distinct_and_scoped() {
        let ids = Ids::new("bot", "conv");
        assert_eq!(ids.text("item", 0), ids.text("item", 0));
        let all = [
            ids.text("item", 0),
            ids.text("item", 1),
            ids.attachment("item", 0),
            ids.edit("item", "p0", "new", 0),
            ids.edit("item", "p0", "newer", 0),
            ids.edit("item", "p1", "new", 0),
            ids.recall("p0"),
            Ids::new("bot", "other").text("item", 0),
            Ids::new("bot2", "conv").text("item", 0),
        ];
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        let u = Uuid::parse_str(&all[0]).unwrap();
        assert_eq!(u.get_version_num(), 5);
    }

    #[test]
    fn long_texts_split_within_the_byte_limit_without_blank_parts() {
        let long = format!("{}\n\n \n\n{}", "é".repeat(MAX_TEXT_BYTES), "x".repeat(10));
        let parts = text_parts(&FormattedText::plain(long));
        assert!(parts.len() >= 2);
        assert!(parts
            .iter()
            .all(|p| p.len() <= MAX_TEXT_BYTES && !p.trim().is_empty()));
        assert!(text_parts(&FormattedText::plain("  \n")).is_empty());
    }

    #[test]
    fn images_without_known_dimensions_go_as_files() {
        let target = Target {
            conversation_id: "c".into(),
            recipient_id: String::new(),
        };
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        png.extend(b"IHDR");
        png.extend(3u32.to_be_bytes());
        png.extend(2u32.to_be_bytes());
        png.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
        let image = Attachment {
            kind: AttachmentKind::Image,
            mime: "image/png".into(),
            name: None,
            data: png,
            width: None,
            height: None,
        };
        let m = attachment_message(&target, "id".into(), &image, "a".into());
        assert_eq!(m.category, PLAIN_IMAGE);
        let p: AttachmentPayload =
            serde_json::from_slice(&decode_base64_lenient(&m.data_base64).unwrap()).unwrap();
        assert_eq!((p.width, p.height, p.size), (Some(3), Some(2), 33));

        let blob = Attachment {
            data: b"not an image".to_vec(),
            ..image
        };
        let m = attachment_message(&target, "id".into(), &blob, "a".into());
        assert_eq!(m.category, PLAIN_DATA);
        let p: AttachmentPayload =
            serde_json::from_slice(&decode_base64_lenient(&m.data_base64).unwrap()).unwrap();
        assert_eq!(p.name.as_deref(), Some("attachment.png"));
    }
}
