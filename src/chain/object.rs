//! ActivityStreams objects carried in POST payloads: validation and normalisation at the edge.
//!
//! Accepted: `Note`, `Image` (inline `data:` URL), `Like`, `Update`, `Delete`, plus the
//! `{"content": "text"}` shorthand for a Note. References to earlier items are trx ids (hex).
//! The payload plaintext is the UTF-8 JSON of [`PostPayload`].

use base64::Engine as _;
use serde_json::{Map, Value};

/// The largest text `content` accepted, in bytes (the trx limit bounds everything else).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Largest inline image once decoded (its base64 form must fit in a 512 KiB trx).
pub const MAX_IMAGE_BYTES: usize = 360 * 1024;
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("the post must be a JSON object")]
    NotAnObject,
    #[error("field `{0}` is required")]
    Missing(&'static str),
    #[error("field `{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("object type {0:?} is not supported (supported: Note, Image, Like, Update, Delete)")]
    UnsupportedType(String),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ObjectError {
    ObjectError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// How an item relates to an earlier one (stored in the refs index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Reply,
    Like,
    Update,
    Delete,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Like => "like",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reply" => Self::Reply,
            "like" => Self::Like,
            "update" => Self::Update,
            "delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// A validated object and the earlier item it refers to, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub object: Value,
    pub reference: Option<(RefKind, String)>,
}

impl Normalized {
    /// `Note` and `Image` are content items; the rest are activities on them.
    pub fn is_content(&self) -> bool {
        is_content_type(&self.object)
    }
}

pub fn is_content_type(object: &Value) -> bool {
    matches!(
        object.get("type").and_then(Value::as_str),
        Some("Note" | "Image")
    )
}

/// Validates and normalises an incoming object.
pub fn normalize(input: Value) -> Result<Normalized, ObjectError> {
    let Value::Object(mut map) = input else {
        return Err(ObjectError::NotAnObject);
    };
    map.remove("@context");
    let kind = match map.remove("type") {
        None => "Note".to_string(),
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid("type", "must be a string")),
    };
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.clone()));
    let reference = match kind.as_str() {
        "Note" => {
            content(&mut map, &mut out, true)?;
            common(&mut map, &mut out)?
        }
        "Image" => {
            image_url(&mut map, &mut out)?;
            content(&mut map, &mut out, false)?;
            common(&mut map, &mut out)?
        }
        "Like" => Some((RefKind::Like, target(&mut map, "object")?)),
        "Delete" => Some((RefKind::Delete, target(&mut map, "object")?)),
        "Update" => {
            let Some(obj) = map.remove("object") else {
                return Err(ObjectError::Missing("object"));
            };
            let Value::Object(mut inner) = obj else {
                return Err(invalid(
                    "object",
                    "must be the updated Note or Image with its `id`",
                ));
            };
            let id = target(&mut inner, "object.id")?;
            let updated = normalize(Value::Object(inner)).map_err(|e| match e {
                ObjectError::Invalid { field, problem } => invalid(field, problem),
                other => other,
            })?;
            if !updated.is_content() {
                return Err(invalid("object", "an Update must carry a Note or Image"));
            }
            if updated.reference.is_some() {
                return Err(invalid("object", "an Update cannot change `inReplyTo`"));
            }
            out.insert("object".into(), updated.object);
            Some((RefKind::Update, id))
        }
        _ => return Err(ObjectError::UnsupportedType(kind)),
    };
    if let Some((kind, id)) = &reference {
        match kind {
            RefKind::Reply => {}
            RefKind::Update => {
                if let Some(Value::Object(o)) = out.get_mut("object") {
                    o.insert("id".into(), Value::String(id.clone()));
                }
            }
            RefKind::Like | RefKind::Delete => {
                out.insert("object".into(), Value::String(id.clone()));
            }
        }
    }
    if let Some(extra) = map.keys().next() {
        return Err(invalid(
            "object",
            format!("has unsupported field {extra:?} for type {kind}"),
        ));
    }
    Ok(Normalized {
        object: Value::Object(out),
        reference,
    })
}

fn content(
    map: &mut Map<String, Value>,
    out: &mut Map<String, Value>,
    required: bool,
) -> Result<(), ObjectError> {
    match map.remove("content") {
        Some(Value::String(s)) => {
            if required && s.trim().is_empty() {
                return Err(invalid("content", "must not be empty"));
            }
            if s.len() > MAX_CONTENT_BYTES {
                return Err(invalid(
                    "content",
                    format!("is {} bytes, the limit is {MAX_CONTENT_BYTES}", s.len()),
                ));
            }
            out.insert("content".into(), Value::String(s));
        }
        Some(_) => return Err(invalid("content", "must be a string")),
        None if required => return Err(ObjectError::Missing("content")),
        None => {}
    }
    Ok(())
}

/// Optional fields shared by Note and Image; returns the reply reference.
fn common(
    map: &mut Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<Option<(RefKind, String)>, ObjectError> {
    for key in ["name", "mediaType"] {
        match map.remove(key) {
            Some(Value::String(s)) => {
                out.insert(key.into(), Value::String(s));
            }
            Some(_) => {
                let field = if key == "name" { "name" } else { "mediaType" };
                return Err(invalid(field, "must be a string"));
            }
            None => {}
        }
    }
    if map.contains_key("inReplyTo") {
        let id = target(map, "inReplyTo")?;
        out.insert("inReplyTo".into(), Value::String(id.clone()));
        return Ok(Some((RefKind::Reply, id)));
    }
    Ok(None)
}

/// Reads a reference to an earlier item: a trx id, or an object `{"id": trx_id}`.
fn target(map: &mut Map<String, Value>, field: &'static str) -> Result<String, ObjectError> {
    let key = field.rsplit('.').next().unwrap_or(field);
    let value = map.remove(key).ok_or(ObjectError::Missing(field))?;
    let id = match &value {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(invalid(field, "must be a trx id or an object with an `id`")),
        },
        _ => return Err(invalid(field, "must be a trx id (64 hex digits)")),
    };
    if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            field,
            format!("{id:?} is not a trx id (64 hex digits)"),
        ));
    }
    Ok(id.to_ascii_lowercase())
}

/// Image `url`: a `data:image/...;base64,` URL (or a Link object with `href`), size-checked.
fn image_url(
    map: &mut Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), ObjectError> {
    let url = match map.remove("url") {
        Some(Value::String(s)) => s,
        Some(Value::Object(mut link)) => match link.remove("href") {
            Some(Value::String(s)) => s,
            _ => return Err(invalid("url", "a Link must have a string `href`")),
        },
        Some(_) => return Err(invalid("url", "must be a data: URL")),
        None => return Err(ObjectError::Missing("url")),
    };
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| invalid("url", "must be an inline data:image/...;base64, URL"))?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| invalid("url", "data: URL without a comma"))?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or_else(|| invalid("url", "data: URL must be base64-encoded"))?;
    if !IMAGE_TYPES.contains(&mime) {
        return Err(invalid(
            "url",
            format!(
                "media type {mime:?} is not one of {}",
                IMAGE_TYPES.join(", ")
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| invalid("url", "data: URL is not valid base64"))?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(invalid(
            "url",
            format!(
                "image is {} bytes, the limit is {MAX_IMAGE_BYTES}",
                bytes.len()
            ),
        ));
    }
    out.insert("mediaType".into(), Value::String(mime.to_string()));
    out.insert("url".into(), Value::String(url));
    Ok(())
}

/// The plaintext of a POST payload: the object plus, for bridged messages, where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostPayload {
    pub object: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Value>,
}

/// Reads the reference of a stored object (for the refs index when blocks arrive).
pub fn reference_of(object: &Value) -> Option<(RefKind, String)> {
    let ty = object.get("type")?.as_str()?;
    let id = match ty {
        "Note" | "Image" => {
            return Some((
                RefKind::Reply,
                object.get("inReplyTo")?.as_str()?.to_string(),
            ))
        }
        "Like" | "Delete" => object.get("object")?.as_str()?,
        "Update" => object.get("object")?.get("id")?.as_str()?,
        _ => return None,
    };
    let kind = match ty {
        "Like" => RefKind::Like,
        "Delete" => RefKind::Delete,
        _ => RefKind::Update,
    };
    Some((kind, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn shorthand_becomes_note() {
        let n = normalize(json!({"content": "hi"})).unwrap();
        assert_eq!(n.object, json!({"type": "Note", "content": "hi"}));
        assert_eq!(n.reference, None);
    }

    #[test]
    fn reply_like_update_delete_carry_references() {
        let n = normalize(json!({"type": "Note", "content": "re", "inReplyTo": ID})).unwrap();
        assert_eq!(n.reference, Some((RefKind::Reply, ID.into())));
        let n = normalize(json!({"type": "Like", "object": ID})).unwrap();
        assert_eq!(n.object, json!({"type": "Like", "object": ID}));
        let n = normalize(json!({"type": "Delete", "object": {"id": ID}})).unwrap();
        assert_eq!(n.object, json!({"type": "Delete", "object": ID}));
        let n = normalize(
            json!({"type": "Update", "object": {"id": ID, "type": "Note", "content": "v2"}}),
        )
        .unwrap();
        assert_eq!(
            n.object,
            json!({"type": "Update", "object": {"type": "Note", "content": "v2", "id": ID}})
        );
        assert_eq!(reference_of(&n.object), Some((RefKind::Update, ID.into())));
    }

    #[test]
    fn images_must_be_inline_and_small() {
        let png = base64::engine::general_purpose::STANDARD.encode([0x89, b'P', b'N', b'G']);
        let n = normalize(json!({"type": "Image", "url": format!("data:image/png;base64,{png}"), "content": "cap"})).unwrap();
        assert_eq!(n.object["mediaType"], "image/png");
        assert!(normalize(json!({"type": "Image", "url": "https://x/y.png"})).is_err());
        assert!(normalize(json!({"type": "Image", "url": "data:text/html;base64,AAAA"})).is_err());
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_IMAGE_BYTES + 1]);
        let err =
            normalize(json!({"type": "Image", "url": format!("data:image/png;base64,{big}")}))
                .unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn rejects_bad_objects() {
        assert_eq!(normalize(json!("x")), Err(ObjectError::NotAnObject));
        assert_eq!(
            normalize(json!({"type": "Note"})),
            Err(ObjectError::Missing("content"))
        );
        assert!(matches!(
            normalize(json!({"content": 5})),
            Err(ObjectError::Invalid {
                field: "content",
                ..
            })
        ));
        assert!(matches!(
            normalize(json!({"type": "Video", "content": "x"})),
            Err(ObjectError::UnsupportedType(_))
        ));
        assert!(normalize(json!({"content": "x", "bogus": 1})).is_err());
        assert!(normalize(json!({"type": "Like", "object": "nothex"})).is_err());
        assert!(
            normalize(json!({"type": "Update", "object": {"type": "Note", "content": "x"}}))
                .is_err()
        );
        assert!(normalize(
            json!({"type": "Update", "object": {"id": ID, "type": "Like", "object": ID}})
        )
        .is_err());
    }
}
