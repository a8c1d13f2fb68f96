//! Telegram updates → our inbound model, and our chat ids ↔ Telegram's.
//!
//! Updates are parsed into small structs of our own that hold only the fields we use, so that
//! whatever Telegram adds (and the legacy keys it still sends) never breaks parsing. A forum topic
//! is part of the chat id: `"<chat_id>/<message_thread_id>"`, so that a link can point at one topic.

use std::fmt;
use std::str::FromStr;

use rumgate_gateway::text::utf16_range_to_bytes;
use rumgate_gateway::{Author, FormattedText, InboundEvent, InboundMessage, Span, Style};
use serde::Deserialize;

/// A chat, or one topic of a forum chat, as our chat strings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChatTarget {
    pub chat: i64,
    pub thread: Option<i64>,
}

impl ChatTarget {
    pub fn new(chat: i64) -> Self {
        Self { chat, thread: None }
    }

    pub fn topic(chat: i64, thread: i64) -> Self {
        Self {
            chat,
            thread: Some(thread),
        }
    }
}

impl fmt::Display for ChatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.thread {
            Some(thread) => write!(f, "{}/{thread}", self.chat),
            None => write!(f, "{}", self.chat),
        }
    }
}

impl FromStr for ChatTarget {
    type Err = String;

    /// `"-1001234567890"` or `"-1001234567890/2051"` (a forum topic).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("{s:?} is not a Telegram chat id (like -1001234567890 or -1001234567890/2051 for a forum topic)")
        };
        let (chat, thread) = match s.split_once('/') {
            Some((chat, thread)) => (chat, Some(thread)),
            None => (s, None),
        };
        let chat: i64 = chat.trim().parse().map_err(|_| bad())?;
        if chat == 0 {
            return Err(bad());
        }
        let thread = match thread {
            Some(t) => Some(
                t.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|t| *t > 0)
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        Ok(Self { chat, thread })
    }
}

/// One update, with only what we read. Unknown keys are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub edited_message: Option<Message>,
    #[serde(default)]
    pub channel_post: Option<Message>,
    #[serde(default)]
    pub edited_channel_post: Option<Message>,
    #[serde(default)]
    pub my_chat_member: Option<ChatMemberUpdated>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
    #[serde(default)]
    pub from: Option<User>,
    #[serde(default)]
    pub sender_chat: Option<Chat>,
    #[serde(default)]
    pub author_signature: Option<String>,
    pub chat: Chat,
    #[serde(default)]
    pub date: i64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub caption_entities: Vec<Entity>,
    #[serde(default)]
    pub photo: Vec<PhotoSize>,
    #[serde(default)]
    pub document: Option<Document>,
    #[serde(default)]
    pub reply_to_message: Option<Box<Message>>,
    #[serde(default)]
    pub forum_topic_created: Option<serde_json::Value>,
    #[serde(default)]
    pub migrate_to_chat_id: Option<i64>,
    #[serde(default)]
    pub migrate_from_chat_id: Option<i64>,
    #[serde(default)]
    pub left_chat_member: Option<User>,
    #[serde(default)]
    pub new_chat_members: Vec<User>,
    /// Kinds we do not mirror, to name them in a placeholder.
    #[serde(default)]
    pub sticker: Option<Sticker>,
    #[serde(default)]
    pub video: Option<serde_json::Value>,
    #[serde(default)]
    pub voice: Option<serde_json::Value>,
    #[serde(default)]
    pub audio: Option<Document>,
    #[serde(default)]
    pub animation: Option<serde_json::Value>,
    #[serde(default)]
    pub video_note: Option<serde_json::Value>,
    #[serde(default)]
    pub poll: Option<serde_json::Value>,
    #[serde(default)]
    pub location: Option<serde_json::Value>,
    #[serde(default)]
    pub contact: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

impl User {
    pub fn display_name(&self) -> String {
        let name = match &self.last_name {
            Some(last) if !last.is_empty() => format!("{} {last}", self.first_name),
            _ => self.first_name.clone(),
        };
        if name.trim().is_empty() {
            self.username.clone().unwrap_or_else(|| self.id.to_string())
        } else {
            name
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

impl Chat {
    fn name(&self) -> String {
        self.title
            .clone()
            .or_else(|| self.first_name.clone())
            .or_else(|| self.username.clone())
            .unwrap_or_else(|| self.id.to_string())
    }

    pub fn is_group(&self) -> bool {
        matches!(self.kind.as_str(), "group" | "supergroup")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: usize,
    pub length: usize,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhotoSize {
    pub file_id: String,
    #[serde(default)]
    pub file_unique_id: String,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    pub file_id: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sticker {
    #[serde(default)]
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    #[serde(default)]
    pub from: Option<User>,
    pub new_chat_member: ChatMember,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMember {
    pub user: User,
    #[serde(default)]
    pub status: String,
}

/// What one update means for the gateway.
// Short-lived, one per update: boxing the event would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    /// Something for the node. A photo or document still to download is in `file`.
    Event {
        event: InboundEvent,
        file: Option<FileToFetch>,
    },
    /// The bot can no longer read or write `chat`.
    Removed { chat: String, reason: String },
    /// The bot was (re-)added to `chat`.
    Added { chat: String },
    /// Nothing to do (service messages, our own messages, update kinds we do not mirror).
    Nothing { why: &'static str },
}

/// A file to attach to an inbound message once downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToFetch {
    pub file_id: String,
    pub size: Option<u64>,
    /// A name for the placeholder text: the document's name, or one made from the photo's id.
    pub name: String,
    pub mime: String,
    pub is_image: bool,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Reads one update as it came from `getUpdates` or a webhook.
pub fn parse_update(value: serde_json::Value) -> Result<Update, serde_json::Error> {
    serde_json::from_value(value)
}

/// Turns an update into what the gateway does with it. `bot_id` is the bot's own user id;
/// `max_file_bytes` picks the photo size to fetch.
pub fn convert_update(update: &Update, bot_id: Option<i64>, max_file_bytes: usize) -> Converted {
    if let Some(m) = &update.message {
        return convert_message(m, bot_id, max_file_bytes, false);
    }
    if let Some(m) = &update.channel_post {
        return convert_message(m, bot_id, max_file_bytes, false);
    }
    if let Some(m) = update
        .edited_message
        .as_ref()
        .or(update.edited_channel_post.as_ref())
    {
        return convert_message(m, bot_id, max_file_bytes, true);
    }
    if let Some(member) = &update.my_chat_member {
        return convert_membership(member, bot_id);
    }
    Converted::Nothing {
        why: "an update kind the gateway does not mirror",
    }
}

fn convert_membership(member: &ChatMemberUpdated, bot_id: Option<i64>) -> Converted {
    if bot_id.is_some_and(|id| id != member.new_chat_member.user.id) {
        return Converted::Nothing {
            why: "a membership change of another user",
        };
    }
    let chat = member.chat.id.to_string();
    match member.new_chat_member.status.as_str() {
        "kicked" | "left" => {
            let by = member
                .from
                .as_ref()
                .map(|u| format!(" by {} (id {})", u.display_name(), u.id))
                .unwrap_or_default();
            let what = if member.new_chat_member.status == "kicked" {
                "removed"
            } else {
                "left"
            };
            Converted::Removed {
                reason: format!(
                    "the bot was {what} from chat {chat} ({}){by}",
                    member.chat.name()
                ),
                chat,
            }
        }
        "member" | "administrator" | "creator" => Converted::Added { chat },
        _ => Converted::Nothing {
            why: "a membership change that does not affect the bot's access",
        },
    }
}

fn convert_message(
    m: &Message,
    bot_id: Option<i64>,
    max_file_bytes: usize,
    edited: bool,
) -> Converted {
    let target = target_of(m);
    if let Some(new_chat) = m.migrate_to_chat_id {
        return Converted::Event {
            event: InboundEvent::ChatMigrated {
                chat: m.chat.id.to_string(),
                new_chat: new_chat.to_string(),
            },
            file: None,
        };
    }
    if m.migrate_from_chat_id.is_some() {
        return Converted::Nothing {
            why: "the first message of a migrated supergroup",
        };
    }
    if let Some(left) = &m.left_chat_member {
        if bot_id == Some(left.id) {
            let by = m
                .from
                .as_ref()
                .map(|u| format!(" by {} (id {})", u.display_name(), u.id))
                .unwrap_or_default();
            return Converted::Removed {
                chat: m.chat.id.to_string(),
                reason: format!(
                    "the bot was removed from chat {} ({}){by}",
                    m.chat.id,
                    m.chat.name()
                ),
            };
        }
        return Converted::Nothing {
            why: "a service message",
        };
    }
    if !m.new_chat_members.is_empty() {
        let bot_added = m.new_chat_members.iter().any(|u| Some(u.id) == bot_id);
        return if bot_added {
            Converted::Added {
                chat: m.chat.id.to_string(),
            }
        } else {
            Converted::Nothing {
                why: "a service message",
            }
        };
    }

    let (mut text, file) = body_of(m, max_file_bytes);
    let placeholder = if edited { None } else { unsupported_kind(m) };
    if let Some(placeholder) = placeholder {
        let mut prefix = FormattedText::plain(placeholder);
        if !text.is_empty() {
            prefix.text.push('\n');
        }
        text.prepend(&prefix);
    }
    if text.is_empty() && file.is_none() {
        return Converted::Nothing {
            why: "a service message or a kind without text",
        };
    }
    let author = author_of(m);
    let from_self = m.from.as_ref().is_some_and(|u| Some(u.id) == bot_id);
    let chat = target.to_string();
    let message_id = m.message_id.to_string();
    if edited {
        // An edit carries the new text; an edited photo keeps its picture.
        if text.is_empty() {
            return Converted::Nothing {
                why: "an edit without text",
            };
        }
        if from_self {
            return Converted::Nothing {
                why: "an edit of the bot's own message",
            };
        }
        return Converted::Event {
            event: InboundEvent::Edit {
                chat,
                message_id,
                text,
                author,
            },
            file: None,
        };
    }
    Converted::Event {
        event: InboundEvent::Message(InboundMessage {
            chat,
            message_id,
            author,
            text,
            reply_to: reply_of(m),
            attachments: Vec::new(),
            sent_at: (m.date > 0).then(|| m.date.saturating_mul(1000)),
            from_self,
        }),
        file,
    }
}

/// The chat, plus the topic when the message is in a forum topic.
pub fn target_of(m: &Message) -> ChatTarget {
    match (m.is_topic_message, m.message_thread_id) {
        (true, Some(thread)) => ChatTarget::topic(m.chat.id, thread),
        _ => ChatTarget::new(m.chat.id),
    }
}

fn reply_of(m: &Message) -> Option<String> {
    let r = m.reply_to_message.as_ref()?;
    // In a forum every topic message "replies" to the topic's first message; that is not a reply.
    let is_topic_root = m.is_topic_message
        && (Some(r.message_id) == m.message_thread_id || r.forum_topic_created.is_some());
    (!is_topic_root).then(|| r.message_id.to_string())
}

fn author_of(m: &Message) -> Author {
    // Anonymous admins and channel posts speak as a chat; the signature, if any, names the person.
    if let Some(chat) = &m.sender_chat {
        return Author {
            id: chat.id.to_string(),
            name: m.author_signature.clone().unwrap_or_else(|| chat.name()),
        };
    }
    match &m.from {
        Some(user) => Author {
            id: user.id.to_string(),
            name: user.display_name(),
        },
        None => Author {
            id: m.chat.id.to_string(),
            name: m.author_signature.clone().unwrap_or_else(|| m.chat.name()),
        },
    }
}

/// The text (or caption) with its formatting, and the file to fetch, if any.
fn body_of(m: &Message, max_file_bytes: usize) -> (FormattedText, Option<FileToFetch>) {
    let text = match (&m.text, &m.caption) {
        (Some(text), _) => formatted(text, &m.entities),
        (None, Some(caption)) => formatted(caption, &m.caption_entities),
        (None, None) => FormattedText::default(),
    };
    let file = if !m.photo.is_empty() {
        Some(pick_photo(&m.photo, max_file_bytes))
    } else {
        m.document.as_ref().map(|d| {
            let mime = d
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            FileToFetch {
                file_id: d.file_id.clone(),
                size: d.file_size,
                name: d.file_name.clone().unwrap_or_else(|| "file".into()),
                is_image: mime.starts_with("image/"),
                mime,
                width: None,
                height: None,
            }
        })
    };
    (text, file)
}

/// The largest size that fits `max_bytes` (sizes come smallest first); the largest of all when
/// none is known to fit, which then becomes a placeholder.
fn pick_photo(sizes: &[PhotoSize], max_bytes: usize) -> FileToFetch {
    let area = |p: &&PhotoSize| u64::from(p.width) * u64::from(p.height);
    let fits = |p: &&PhotoSize| p.file_size.is_some_and(|s| s <= max_bytes as u64);
    let best = sizes
        .iter()
        .filter(fits)
        .max_by_key(area)
        .or_else(|| sizes.iter().max_by_key(area));
    let photo = best.unwrap_or(&sizes[0]);
    let id = if photo.file_unique_id.is_empty() {
        &photo.file_id
    } else {
        &photo.file_unique_id
    };
    FileToFetch {
        file_id: photo.file_id.clone(),
        size: photo.file_size,
        name: format!("photo_{id}.jpg"),
        mime: "image/jpeg".into(),
        is_image: true,
        width: Some(photo.width).filter(|w| *w > 0),
        height: Some(photo.height).filter(|h| *h > 0),
    }
}

fn unsupported_kind(m: &Message) -> Option<String> {
    if let Some(sticker) = &m.sticker {
        return Some(match &sticker.emoji {
            Some(e) => format!("[sticker {e}]"),
            None => "[sticker]".into(),
        });
    }
    let kinds = [
        (m.video.is_some(), "[video]"),
        (m.animation.is_some(), "[animation]"),
        (m.voice.is_some(), "[voice message]"),
        (m.video_note.is_some(), "[video message]"),
        (m.poll.is_some(), "[poll]"),
        (m.location.is_some(), "[location]"),
        (m.contact.is_some(), "[contact]"),
    ];
    if let Some((_, name)) = kinds.iter().find(|(present, _)| *present) {
        return Some((*name).into());
    }
    m.audio.as_ref().map(|a| {
        format!(
            "[audio: {}]",
            a.file_name.clone().unwrap_or_else(|| "audio".into())
        )
    })
}

/// Text with Telegram entities (UTF-16 offsets) → text with our spans (byte offsets). Entities
/// that clients detect by themselves (URLs, mentions by @name, hashtags …) stay plain text;
/// entities with offsets that do not fit the text are dropped.
pub fn formatted(text: &str, entities: &[Entity]) -> FormattedText {
    let spans = entities
        .iter()
        .filter_map(|e| {
            let style = match e.kind.as_str() {
                "bold" => Style::Bold,
                "italic" => Style::Italic,
                "underline" => Style::Underline,
                "strikethrough" => Style::Strikethrough,
                "spoiler" => Style::Spoiler,
                "code" => Style::Code,
                "pre" => Style::Pre {
                    language: e.language.clone().filter(|l| !l.is_empty()),
                },
                "text_link" => Style::Link {
                    url: e.url.clone().filter(|u| !u.is_empty())?,
                },
                "text_mention" => Style::Mention {
                    user: e.user.as_ref()?.id.to_string(),
                },
                "blockquote" | "expandable_blockquote" => Style::Quote,
                _ => return None,
            };
            let range = utf16_range_to_bytes(text, e.offset, e.length)?;
            (range.start < range.end).then(|| Span::new(range.start, range.end, style))
        })
        .collect();
    FormattedText {
        text: text.to_owned(),
        spans,
    }
}

/// The text that stands for a file we could not mirror.
pub fn file_placeholder(file: &FileToFetch, why: &str) -> String {
    let size = file.size.map(human_size).unwrap_or_default();
    let kind = if file.is_image { "photo" } else { "file" };
    if size.is_empty() {
        format!("[{kind} {} not mirrored: {why}]", file.name)
    } else {
        format!("[{kind} {} ({size}) not mirrored: {why}]", file.name)
    }
}

fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.0} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT_ID: i64 = 7412345678;
    const FIXTURES: &str = "tests/fixtures";

    fn fixture_updates() -> Vec<Update> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURES)
            .join("getUpdates.json");
        let text = std::fs::read_to_string(path).expect("fixture file");
        let body: serde_json::Value = serde_json::from_str(&text).expect("fixture json");
        let updates = body["result"].as_array().expect("result").clone();
        updates
            .into_iter()
            .map(|u| parse_update(u).expect("every fixture update parses"))
            .collect()
    }

    fn message_of(c: &Converted) -> &InboundMessage {
        match c {
            Converted::Event {
                event: InboundEvent::Message(m),
                ..
            } => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn chat_ids_round_trip_with_and_without_topics() {
        assert_eq!("-1001".parse(), Ok(ChatTarget::new(-1001)));
        assert_eq!("-1001/2051".parse(), Ok(ChatTarget::topic(-1001, 2051)));
        assert_eq!(ChatTarget::topic(-1001, 2051).to_string(), "-1001/2051");
        for bad in ["", "abc", "0", "-1/x", "-1/0", "-1/-5", "1.5"] {
            assert!(bad.parse::<ChatTarget>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn converts_every_fixture_update() {
        let updates = fixture_updates();
        let converted: Vec<Converted> = updates
            .iter()
            .map(|u| convert_update(u, Some(BOT_ID), 400 * 1024))
            .collect();
        assert_eq!(converted.len(), 13);

        // 1: text with entities; the bold "Hi" after the emoji is at UTF-16 offset 3.
        let m = message_of(&converted[0]);
        assert_eq!(m.chat, "-1002345678901");
        assert_eq!(m.message_id, "1043");
        assert_eq!(m.author.name, "Alice Liddell");
        assert_eq!(m.author.id, "5012345678");
        assert_eq!(m.sent_at, Some(1_767_261_600_000));
        assert!(!m.from_self);
        assert_eq!(
            m.text.spans.len(),
            1,
            "only bold is formatting: {:?}",
            m.text
        );
        let bold = &m.text.spans[0];
        assert_eq!(&m.text.text[bold.range()], "Hi");
        assert_eq!(bold.style, Style::Bold);

        // 2: edited message.
        match &converted[1] {
            Converted::Event {
                event:
                    InboundEvent::Edit {
                        chat,
                        message_id,
                        text,
                        ..
                    },
                ..
            } => {
                assert_eq!(
                    (chat.as_str(), message_id.as_str()),
                    ("-1002345678901", "1043")
                );
                assert!(text.text.contains("/v2"));
            }
            other => panic!("{other:?}"),
        }

        // 3: photo with caption: the largest size that fits, the caption as text.
        match &converted[2] {
            Converted::Event {
                event: InboundEvent::Message(m),
                file: Some(f),
            } => {
                assert_eq!(m.text.text, "Sunset over the harbour 🌅 #photo");
                assert!(f.file_id.starts_with("AgACAgQAAxkBAAIEgReF"), "{f:?}");
                assert_eq!((f.width, f.height), (Some(1280), Some(960)));
                assert!(f.is_image);
            }
            other => panic!("{other:?}"),
        }

        // 4: reply to the bot's message.
        assert_eq!(message_of(&converted[3]).reply_to.as_deref(), Some("1042"));

        // 5: anonymous admin: the group speaks, signed.
        let m = message_of(&converted[4]);
        assert_eq!(m.author.id, "-1002345678901");
        assert_eq!(m.author.name, "Moderator");

        // 6: channel post.
        let m = message_of(&converted[5]);
        assert_eq!(m.chat, "-1004567890123");
        assert_eq!(m.author.name, "Alice Liddell");

        // 7: forum topic: the topic is part of the chat id and its root is not a reply target.
        let m = message_of(&converted[6]);
        assert_eq!(m.chat, "-1003456789012/2051");
        assert_eq!(m.reply_to, None);

        // 8: migration.
        assert_eq!(
            converted[7],
            Converted::Event {
                event: InboundEvent::ChatMigrated {
                    chat: "-4512345678".into(),
                    new_chat: "-1005678901234".into()
                },
                file: None
            }
        );
        // 9, 10: migrate_from and new members: nothing to mirror.
        assert!(matches!(converted[8], Converted::Nothing { .. }));
        assert!(matches!(converted[9], Converted::Nothing { .. }));
        // 11, 12: the bot added, then promoted.
        assert_eq!(
            converted[10],
            Converted::Added {
                chat: "-1006789012345".into()
            }
        );
        assert_eq!(
            converted[11],
            Converted::Added {
                chat: "-1006789012345".into()
            }
        );
        // 13: the bot kicked.
        match &converted[12] {
            Converted::Removed { chat, reason } => {
                assert_eq!(chat, "-1006789012345");
                assert!(reason.contains("removed"), "{reason}");
                assert!(reason.contains("Bob"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tolerates_unknown_keys_and_unknown_update_kinds() {
        let u = parse_update(serde_json::json!({
            "update_id": 5,
            "message_reaction": {"chat": {"id": 1, "type": "private"}, "new_field": [1, 2]},
            "brand_new_key": {"x": true}
        }))
        .expect("parses");
        assert!(matches!(
            convert_update(&u, Some(BOT_ID), 1024),
            Converted::Nothing { .. }
        ));
        let u = parse_update(serde_json::json!({
            "update_id": 6,
            "message": {"message_id": 9, "date": 1, "chat": {"id": 1, "type": "private", "x": 1},
                        "from": {"id": 2, "is_bot": false, "first_name": "A", "y": {}},
                        "text": "hi", "future_field": "z"}
        }))
        .expect("parses");
        assert_eq!(
            message_of(&convert_update(&u, Some(BOT_ID), 1024))
                .text
                .text,
            "hi"
        );
    }

    #[test]
    fn marks_the_bots_own_messages() {
        let u = parse_update(serde_json::json!({
            "update_id": 1,
            "channel_post": {"message_id": 3, "date": 1, "chat": {"id": -100, "type": "channel"},
                             "from": {"id": BOT_ID, "is_bot": true, "first_name": "Bot"}, "text": "mine"}
        }))
        .expect("parses");
        assert!(message_of(&convert_update(&u, Some(BOT_ID), 1024)).from_self);
    }

    #[test]
    fn converts_every_formatting_entity_and_drops_bad_offsets() {
        let text = "b i u s p c pre link men q 😀x";
        let e = |kind: &str, offset, length| Entity {
            kind: kind.into(),
            offset,
            length,
            url: Some("https://e.org".into()),
            user: Some(User {
                id: 42,
                is_bot: false,
                first_name: "M".into(),
                last_name: None,
                username: None,
            }),
            language: Some("rust".into()),
        };
        let entities = vec![
            e("bold", 0, 1),
            e("italic", 2, 1),
            e("underline", 4, 1),
            e("strikethrough", 6, 1),
            e("spoiler", 8, 1),
            e("code", 10, 1),
            e("pre", 12, 3),
            e("text_link", 16, 4),
            e("text_mention", 21, 3),
            e("blockquote", 25, 1),
            e("hashtag", 0, 1),
            e("bold", 27, 1),  // half the emoji
            e("bold", 29, 99), // past the end
        ];
        let t = formatted(text, &entities);
        t.validate().expect("valid spans");
        let styles: Vec<&Style> = t.spans.iter().map(|s| &s.style).collect();
        assert_eq!(styles.len(), 10, "{styles:?}");
        assert_eq!(t.spans[8].style, Style::Mention { user: "42".into() });
        assert_eq!(&t.text[t.spans[7].range()], "link");
    }

    #[test]
    fn a_photo_too_large_for_every_size_keeps_the_largest_for_a_placeholder() {
        let sizes = vec![
            PhotoSize {
                file_id: "s".into(),
                file_unique_id: "us".into(),
                file_size: Some(5000),
                width: 90,
                height: 60,
            },
            PhotoSize {
                file_id: "l".into(),
                file_unique_id: "ul".into(),
                file_size: Some(90000),
                width: 900,
                height: 600,
            },
        ];
        assert_eq!(pick_photo(&sizes, 10_000).file_id, "s");
        let f = pick_photo(&sizes, 1000);
        assert_eq!(f.file_id, "l");
        let text = file_placeholder(&f, "larger than the 1000-byte limit");
        assert_eq!(
            text,
            "[photo photo_ul.jpg (88 KiB) not mirrored: larger than the 1000-byte limit]"
        );
    }

    #[test]
    fn unsupported_kinds_become_placeholders() {
        let u = parse_update(serde_json::json!({
            "update_id": 1,
            "message": {"message_id": 3, "date": 1, "chat": {"id": 5, "type": "private"},
                        "from": {"id": 5, "first_name": "A"}, "sticker": {"emoji": "🐱", "file_id": "x"}}
        }))
        .expect("parses");
        assert_eq!(
            message_of(&convert_update(&u, Some(BOT_ID), 1024))
                .text
                .text,
            "[sticker 🐱]"
        );
    }

    #[test]
    fn the_bot_leaving_is_reported_as_removed() {
        let u = parse_update(serde_json::json!({
            "update_id": 1,
            "message": {"message_id": 3, "date": 1, "chat": {"id": -5, "type": "group", "title": "G"},
                        "from": {"id": 9, "first_name": "Eve"},
                        "left_chat_member": {"id": BOT_ID, "is_bot": true, "first_name": "Bot"}}
        }))
        .expect("parses");
        match convert_update(&u, Some(BOT_ID), 1024) {
            Converted::Removed { chat, reason } => {
                assert_eq!(chat, "-5");
                assert!(reason.contains("Eve"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
