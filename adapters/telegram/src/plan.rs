//! Outbound: the Telegram messages (text parts, captioned photos) a post becomes.

use super::*;

/// One outgoing Telegram message of a post.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(FormattedText),
    Photo {
        photo: Photo,
        caption: Option<FormattedText>,
    },
}

/// The pieces a post becomes: photos first (the first one captioned), then the text that did not
/// fit in the caption, split at [`MAX_TEXT_UNITS`].
pub(crate) fn plan(msg: &OutboundMessage) -> Result<Vec<Piece>> {
    let mut text = msg.text.clone();
    let mut photos = Vec::new();
    for (i, a) in msg.attachments.iter().enumerate() {
        match a.kind {
            AttachmentKind::Image if !a.data.is_empty() => photos.push(Photo {
                bytes: a.data.clone(),
                file_name: a.name.clone().unwrap_or_else(|| format!("image{i}.jpg")),
            }),
            _ => {
                let mut note = FormattedText::plain(format!(
                    "[file {} not mirrored]",
                    a.name.as_deref().unwrap_or("attachment")
                ));
                if !text.is_empty() {
                    note.text.insert(0, '\n');
                }
                text.append(&note);
            }
        }
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    for (i, photo) in photos.into_iter().enumerate() {
        let caption = if i == 0 {
            let (caption, remainder) = take_caption(&rest);
            rest = remainder;
            caption
        } else {
            None
        };
        pieces.push(Piece::Photo { photo, caption });
    }
    pieces.extend(text_parts(&rest).into_iter().map(Piece::Text));
    if pieces.is_empty() {
        return Err(GatewayError::Invalid(
            "nothing to send: empty text and no image".into(),
        ));
    }
    Ok(pieces)
}

/// Splits `text` into messages, leaving out blank parts Telegram would reject.
pub(crate) fn text_parts(text: &FormattedText) -> Vec<FormattedText> {
    if text.text.trim().is_empty() {
        return Vec::new();
    }
    split_text(text, MAX_TEXT_UNITS, Unit::Utf16)
        .into_iter()
        .filter(|p| !p.text.trim().is_empty())
        .collect()
}

/// The first caption-sized part of `text`, and the rest.
pub(crate) fn take_caption(text: &FormattedText) -> (Option<FormattedText>, FormattedText) {
    if text.text.trim().is_empty() {
        return (None, FormattedText::default());
    }
    let Some(first) = split_text(text, MAX_CAPTION_UNITS, Unit::Utf16)
        .into_iter()
        .next()
    else {
        return (None, text.clone());
    };
    let rest = tail(text, first.text.len());
    (Some(first).filter(|c| !c.text.trim().is_empty()), rest)
}

/// `text` from byte `from` on, with its spans cut to it (`from` is a char boundary).
pub(crate) fn tail(text: &FormattedText, from: usize) -> FormattedText {
    FormattedText {
        text: text.text.get(from..).unwrap_or_default().to_owned(),
        spans: text
            .valid_spans()
            .filter(|s| s.end > from)
            .map(|s| {
                rumgate_gateway::Span::new(s.start.max(from) - from, s.end - from, s.style.clone())
            })
            .collect(),
    }
}

pub(crate) fn target(chat: &str) -> Result<ChatTarget> {
    chat.parse().map_err(GatewayError::Invalid)
}

pub(crate) fn message_id(part: &RemoteRef) -> Result<i64> {
    part.message_id.parse().map_err(|_| {
        GatewayError::Invalid(format!(
            "{:?} is not a Telegram message id",
            part.message_id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumgate_gateway::{Author, Span, Style};

    fn post(text: FormattedText, attachments: Vec<Attachment>) -> OutboundMessage {
        OutboundMessage {
            item_id: "t1".into(),
            group_id: "g".into(),
            author: Author::default(),
            text,
            reply_to: None,
            attachments,
            origin: None,
            item: None,
        }
    }

    fn image() -> Attachment {
        Attachment {
            kind: AttachmentKind::Image,
            mime: "image/png".into(),
            name: Some("a.png".into()),
            data: vec![1, 2, 3],
            width: None,
            height: None,
        }
    }

    #[test]
    fn a_short_note_is_one_text_piece() {
        let pieces = plan(&post(FormattedText::plain("hi"), vec![])).expect("plan");
        assert!(matches!(&pieces[..], [Piece::Text(t)] if t.text == "hi"));
    }

    #[test]
    fn an_empty_post_is_invalid() {
        assert!(matches!(
            plan(&post(FormattedText::plain("  \n"), vec![])),
            Err(GatewayError::Invalid(_))
        ));
    }

    #[test]
    fn a_long_caption_overflows_into_follow_up_messages() {
        let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let bold_end = text.len();
        let t = FormattedText::new(text.clone(), vec![Span::new(0, bold_end, Style::Bold)])
            .expect("valid");
        let pieces = plan(&post(t, vec![image()])).expect("plan");
        let Piece::Photo {
            caption: Some(caption),
            ..
        } = &pieces[0]
        else {
            panic!("{pieces:?}");
        };
        assert!(rumgate_gateway::text::utf16_len(&caption.text) <= MAX_CAPTION_UNITS);
        let mut joined = caption.text.clone();
        for p in &pieces[1..] {
            let Piece::Text(t) = p else { panic!("{p:?}") };
            assert_eq!(t.spans.len(), 1, "bold continues");
            joined.push_str(&t.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_photo_without_text_has_no_caption_and_files_become_notes() {
        let mut file = image();
        file.kind = AttachmentKind::File;
        file.name = Some("report.pdf".into());
        let pieces = plan(&post(FormattedText::default(), vec![image(), file])).expect("plan");
        match &pieces[..] {
            [Piece::Photo {
                caption: Some(c), ..
            }] => {
                assert_eq!(c.text, "[file report.pdf not mirrored]")
            }
            other => panic!("{other:?}"),
        }
        let pieces = plan(&post(FormattedText::default(), vec![image()])).expect("plan");
        assert!(matches!(&pieces[..], [Piece::Photo { caption: None, .. }]));
    }
}
