//! Group items → the gateway message model (outbound), and remote messages → objects (inbound).

use crate::chain::Trx;
use base64::Engine as _;
use rumgate_gateway::{
    text::apply_nick_format, Attachment, AttachmentKind, Author, FormattedText, InboundMessage,
    Origin,
};
use serde_json::{json, Value};

/// How many links a message may have crossed (A → webhook → B → …) before it stops.
pub const MAX_HOPS: u64 = 3;

/// Who wrote an item: the bridged author if it came from elsewhere, else the signing key.
pub fn author_of(trx: &Trx, origin: Option<&Value>) -> Author {
    if let Some(a) = origin.and_then(|o| o.get("author")) {
        let name = a["name"].as_str().unwrap_or_default();
        if !name.is_empty() {
            return Author {
                id: a["id"].as_str().unwrap_or_default().to_string(),
                name: name.to_string(),
            };
        }
    }
    let key = hex::encode(trx.body.sender);
    Author {
        name: key[..8].to_string(),
        id: key,
    }
}

/// The text of a Note/Image with the link's nick prefix.
pub fn text_of(object: &Value, nick_format: &str, author: &Author) -> FormattedText {
    let body = object["content"].as_str().unwrap_or_default();
    let name = object["name"].as_str().filter(|n| !n.is_empty());
    let content = match name {
        Some(title) if !body.is_empty() => format!("{title}\n{body}"),
        Some(title) => title.to_string(),
        None => body.to_string(),
    };
    FormattedText::plain(format!(
        "{}{content}",
        apply_nick_format(nick_format, author)
    ))
}

/// An inline `data:` image of an Image object as an attachment.
pub fn attachments_of(object: &Value) -> Vec<Attachment> {
    if object["type"] != "Image" {
        return Vec::new();
    }
    let Some(url) = object["url"].as_str() else {
        return Vec::new();
    };
    let Some((meta, data)) = url.strip_prefix("data:").and_then(|r| r.split_once(',')) else {
        return Vec::new();
    };
    let mime = meta.trim_end_matches(";base64").to_string();
    match base64::engine::general_purpose::STANDARD.decode(data) {
        Ok(bytes) => vec![Attachment {
            kind: AttachmentKind::Image,
            mime,
            name: object["name"].as_str().map(str::to_string),
            data: bytes,
            width: None,
            height: None,
        }],
        Err(_) => Vec::new(),
    }
}

/// The origin of an item, if bridged, as the gateway model has it.
pub fn origin_of(origin: Option<&Value>) -> Option<Origin> {
    let o = origin?;
    Some(Origin {
        adapter: o["adapter"].as_str()?.to_string(),
        chat: o["chat"].as_str()?.to_string(),
        message_id: o["message_id"].as_str()?.to_string(),
        author: Author {
            id: o["author"]["id"].as_str().unwrap_or_default().to_string(),
            name: o["author"]["name"].as_str().unwrap_or_default().to_string(),
        },
    })
}

/// The origin object stored in a bridged trx.
pub fn origin_json(
    kind: &str,
    gateway_id: &str,
    link_id: &str,
    chat: &str,
    message_id: &str,
    author: &Author,
    hops: u64,
) -> Value {
    json!({
        "adapter": kind,
        "gateway": gateway_id,
        "link": link_id,
        "chat": chat,
        "message_id": message_id,
        "author": {"id": author.id, "name": author.name},
        "hops": hops,
    })
}

/// An inbound remote message as an ActivityStreams object (Note, or Image with caption).
pub fn object_of(m: &InboundMessage, reply_to: Option<String>) -> Value {
    let mut obj = match m
        .attachments
        .iter()
        .find(|a| matches!(a.kind, AttachmentKind::Image))
    {
        Some(img) if img.data.len() <= crate::chain::object::MAX_IMAGE_BYTES => json!({
            "type": "Image",
            "url": format!("data:{};base64,{}", img.mime, base64::engine::general_purpose::STANDARD.encode(&img.data)),
            "content": m.text.text,
        }),
        _ => json!({"type": "Note", "content": if m.text.text.trim().is_empty() {
            "(empty message)".to_string()
        } else {
            m.text.text.clone()
        }}),
    };
    if let Some(r) = reply_to {
        obj["inReplyTo"] = Value::String(r);
    }
    obj
}
