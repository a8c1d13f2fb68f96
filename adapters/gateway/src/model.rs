//! The message model exchanged between the node and messenger adapters.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::FormatError;

/// Text with formatting. Span offsets are byte offsets into `text`, on char boundaries; they are
/// independent of any messenger's encoding (see [`crate::text`] for UTF-16 conversions).
///
/// The fields are public so that adapters can build and destructure values freely; anything that
/// came from outside should pass [`FormattedText::validate`]. The helpers in this crate never panic
/// on invalid spans: they skip them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct FormattedText {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
}

/// A styled byte range `start..end` of a [`FormattedText`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub style: Style,
}

/// How a span is rendered. Spans may nest and overlap; renderers resolve what their target allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Style {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Code,
    Pre {
        language: Option<String>,
    },
    Link {
        url: String,
    },
    Spoiler,
    Quote,
    /// A mention of a user of the network the text came from or goes to; `user` is that
    /// network's user id.
    Mention {
        user: String,
    },
}

impl FormattedText {
    /// Text without formatting.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            spans: Vec::new(),
        }
    }

    /// Text with spans, checked by [`FormattedText::validate`].
    pub fn new(text: impl Into<String>, spans: Vec<Span>) -> Result<Self, FormatError> {
        let t = Self {
            text: text.into(),
            spans,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks that every span is non-empty, inside the text and on char boundaries.
    pub fn validate(&self) -> Result<(), FormatError> {
        self.spans
            .iter()
            .enumerate()
            .try_for_each(|(index, span)| span.check(index, &self.text))
    }

    /// The spans that pass validation, in order; what renderers and splitters work with.
    pub fn valid_spans(&self) -> impl Iterator<Item = &Span> + '_ {
        self.spans
            .iter()
            .filter(|span| span.check(0, &self.text).is_ok())
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Puts `prefix` (e.g. a nick) in front, shifting this text's spans.
    pub fn prepend(&mut self, prefix: &FormattedText) {
        let shift = prefix.text.len();
        self.text.insert_str(0, &prefix.text);
        for span in &mut self.spans {
            span.start += shift;
            span.end += shift;
        }
        self.spans.splice(0..0, prefix.spans.iter().cloned());
    }

    /// Appends `other`, shifting its spans.
    pub fn append(&mut self, other: &FormattedText) {
        let shift = self.text.len();
        self.text.push_str(&other.text);
        self.spans.extend(other.spans.iter().map(|span| Span {
            start: span.start + shift,
            end: span.end + shift,
            style: span.style.clone(),
        }));
    }
}

impl From<&str> for FormattedText {
    fn from(text: &str) -> Self {
        Self::plain(text)
    }
}

impl From<String> for FormattedText {
    fn from(text: String) -> Self {
        Self::plain(text)
    }
}

impl Span {
    pub fn new(start: usize, end: usize, style: Style) -> Self {
        Self { start, end, style }
    }

    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    fn check(&self, index: usize, text: &str) -> Result<(), FormatError> {
        let (start, end) = (self.start, self.end);
        if start >= end {
            return Err(FormatError::EmptyRange { index, start, end });
        }
        if end > text.len() {
            return Err(FormatError::OutOfRange {
                index,
                start,
                end,
                len: text.len(),
            });
        }
        for offset in [start, end] {
            if !text.is_char_boundary(offset) {
                return Err(FormatError::NotCharBoundary { index, offset });
            }
        }
        Ok(())
    }
}

/// A user of the network a message was written on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Author {
    /// Stable id on that network (Telegram user id, Mixin user uuid, group public key …).
    pub id: String,
    /// Display name, as the network showed it when the message was written.
    pub name: String,
}

/// Where a bridged message came from; carried into the group trx so that it is never echoed back
/// to the chat it came from and so that readers can show its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Origin {
    /// The adapter kind, as [`crate::Gateway::kind`] returns it.
    pub adapter: String,
    pub chat: String,
    pub message_id: String,
    pub author: Author,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    File,
}

/// A file sent with a message; the bytes travel inline.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub mime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

// Hand-written so that logging an attachment prints its size, not megabytes of bytes.
impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("kind", &self.kind)
            .field("mime", &self.mime)
            .field("name", &self.name)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// A message on the remote side: the chat it is in and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct RemoteRef {
    pub chat: String,
    pub message_id: String,
}

/// A group post to deliver into a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct OutboundMessage {
    /// The group trx id: stable across retries, so adapters whose remote supports it use it as an
    /// idempotency key.
    pub item_id: String,
    pub group_id: String,
    /// Who wrote the post in the group. Adapters that can show an author natively (a webhook's
    /// `username`) use it; others prefix the text (see [`crate::text::apply_nick_format`]).
    pub author: Author,
    pub text: FormattedText,
    /// The remote message this one answers, resolved by the node from its id map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<RemoteRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Set when the post was itself bridged from some chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The item as the node's API shows it, for adapters that forward it whole (webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
}

/// The remote messages an outbound item became. A text longer than the remote allows is split
/// into several messages: one part each, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Delivered {
    pub parts: Vec<RemoteRef>,
}

/// A new text for an item delivered earlier as `parts`.
///
/// The returned [`Delivered`] replaces the item's parts: adapters edit parts in place where they
/// can, send extra parts when the new text needs more, delete surplus ones, and may recall and
/// resend when the remote has no edit (Mixin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct OutboundEdit {
    pub item_id: String,
    pub parts: Vec<RemoteRef>,
    pub text: FormattedText,
    pub author: Author,
}

/// Removal of every part of an item delivered earlier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct OutboundDelete {
    pub item_id: String,
    pub parts: Vec<RemoteRef>,
}

/// Something that happened in a chat, for the node to turn into a group trx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InboundEvent {
    Message(InboundMessage),
    Edit {
        chat: String,
        message_id: String,
        text: FormattedText,
        author: Author,
    },
    Delete {
        chat: String,
        message_id: String,
    },
    /// The chat got a new id (Telegram group → supergroup migration); links follow it.
    ChatMigrated {
        chat: String,
        new_chat: String,
    },
}

/// A message written in a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct InboundMessage {
    pub chat: String,
    pub message_id: String,
    pub author: Author,
    pub text: FormattedText,
    /// The remote id of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// When the remote says it was sent, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// Written by the gateway's own account; the node never bridges these back into the group.
    #[serde(default)]
    pub from_self: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_accepts_spans_on_char_boundaries() {
        let t = FormattedText::new(
            "é😀x",
            vec![Span::new(0, 2, Style::Bold), Span::new(2, 7, Style::Code)],
        );
        assert!(t.is_ok(), "{t:?}");
    }

    #[test]
    fn validate_rejects_empty_reversed_out_of_range_and_mid_char_spans() {
        let text = "é😀x";
        let cases = [
            (
                Span::new(1, 1, Style::Bold),
                FormatError::EmptyRange {
                    index: 0,
                    start: 1,
                    end: 1,
                },
            ),
            (
                Span::new(3, 2, Style::Bold),
                FormatError::EmptyRange {
                    index: 0,
                    start: 3,
                    end: 2,
                },
            ),
            (
                Span::new(0, 8, Style::Bold),
                FormatError::OutOfRange {
                    index: 0,
                    start: 0,
                    end: 8,
                    len: 7,
                },
            ),
            (
                Span::new(1, 2, Style::Bold),
                FormatError::NotCharBoundary {
                    index: 0,
                    offset: 1,
                },
            ),
            (
                Span::new(2, 4, Style::Bold),
                FormatError::NotCharBoundary {
                    index: 0,
                    offset: 4,
                },
            ),
        ];
        for (span, want) in cases {
            assert_eq!(
                FormattedText::new(text, vec![span.clone()]),
                Err(want),
                "{span:?}"
            );
        }
    }

    #[test]
    fn validate_reports_the_index_of_the_bad_span() {
        let t = FormattedText {
            text: "abc".into(),
            spans: vec![Span::new(0, 1, Style::Bold), Span::new(0, 9, Style::Italic)],
        };
        assert!(matches!(
            t.validate(),
            Err(FormatError::OutOfRange { index: 1, .. })
        ));
        assert_eq!(t.valid_spans().count(), 1);
    }

    #[test]
    fn prepend_and_append_shift_spans() {
        let mut body =
            FormattedText::new("body", vec![Span::new(0, 4, Style::Italic)]).expect("valid body");
        let nick = FormattedText::new("Ann: ", vec![Span::new(0, 3, Style::Bold)]).expect("nick");
        body.prepend(&nick);
        body.append(&FormattedText::new("!", vec![Span::new(0, 1, Style::Code)]).expect("tail"));
        assert_eq!(body.text, "Ann: body!");
        assert_eq!(
            body.spans,
            vec![
                Span::new(0, 3, Style::Bold),
                Span::new(5, 9, Style::Italic),
                Span::new(9, 10, Style::Code),
            ]
        );
        assert!(body.validate().is_ok());
    }

    #[test]
    fn serializes_in_snake_case_with_tagged_styles() {
        let text = FormattedText::new(
            "see docs",
            vec![
                Span::new(
                    4,
                    8,
                    Style::Link {
                        url: "https://example.org".into(),
                    },
                ),
                Span::new(0, 3, Style::Pre { language: None }),
            ],
        )
        .expect("valid");
        let json = serde_json::to_value(&text).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "text": "see docs",
                "spans": [
                    {"start": 4, "end": 8, "style": {"type": "link", "url": "https://example.org"}},
                    {"start": 0, "end": 3, "style": {"type": "pre", "language": null}},
                ]
            })
        );
        let back: FormattedText = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, text);
    }

    #[test]
    fn inbound_events_round_trip_through_json() {
        let ev = InboundEvent::Message(InboundMessage {
            chat: "-1001".into(),
            message_id: "42".into(),
            author: Author {
                id: "7".into(),
                name: "Ann".into(),
            },
            text: FormattedText::plain("hi"),
            reply_to: Some("41".into()),
            attachments: vec![Attachment {
                kind: AttachmentKind::Image,
                mime: "image/png".into(),
                name: None,
                data: vec![1, 2, 3],
                width: Some(1),
                height: Some(1),
            }],
            sent_at: Some(1_700_000_000_000),
            from_self: false,
        });
        let json = serde_json::to_value(&ev).expect("serialize");
        assert_eq!(json["event"], "message");
        assert_eq!(json["attachments"][0]["kind"], "image");
        let back: InboundEvent = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, ev);

        let del: InboundEvent =
            serde_json::from_str(r#"{"event":"delete","chat":"c","message_id":"m"}"#)
                .expect("deserialize delete");
        assert_eq!(
            del,
            InboundEvent::Delete {
                chat: "c".into(),
                message_id: "m".into()
            }
        );
    }

    #[test]
    fn attachment_debug_prints_size_not_bytes() {
        let a = Attachment {
            kind: AttachmentKind::File,
            mime: "application/octet-stream".into(),
            name: Some("big.bin".into()),
            data: vec![0xAB; 4096],
            width: None,
            height: None,
        };
        let dbg = format!("{a:?}");
        assert!(dbg.contains("<4096 bytes>"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
    }
}
