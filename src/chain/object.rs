//! ActivityStreams objects carried in POST payloads: validation and normalisation at the edge.
//!
//! The payload plaintext is the UTF-8 JSON of the normalised object.

use serde_json::{Map, Value};

/// The largest text `content` accepted, in bytes (the trx limit bounds everything else).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

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
    #[error("object type {0:?} is not supported (supported: Note)")]
    UnsupportedType(String),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ObjectError {
    ObjectError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Accepts `{"content": "text"}` shorthand or an ActivityStreams `Note`; returns the normalised
/// object (`type` set, unknown top-level keys other than the documented ones rejected).
pub fn normalize(input: Value) -> Result<Value, ObjectError> {
    let Value::Object(mut map) = input else {
        return Err(ObjectError::NotAnObject);
    };
    let kind = match map.remove("type") {
        None => "Note".to_string(),
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid("type", "must be a string")),
    };
    match kind.as_str() {
        "Note" => normalize_note(map),
        _ => Err(ObjectError::UnsupportedType(kind)),
    }
}

fn normalize_note(mut map: Map<String, Value>) -> Result<Value, ObjectError> {
    let content = match map.remove("content") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid("content", "must be a string")),
        None => return Err(ObjectError::Missing("content")),
    };
    if content.trim().is_empty() {
        return Err(invalid("content", "must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(invalid(
            "content",
            format!(
                "is {} bytes, the limit is {MAX_CONTENT_BYTES}",
                content.len()
            ),
        ));
    }
    let mut out = Map::new();
    out.insert("type".into(), Value::String("Note".into()));
    out.insert("content".into(), Value::String(content));
    for key in ["name", "mediaType"] {
        match map.remove(key) {
            Some(Value::String(s)) => {
                out.insert(key.into(), Value::String(s));
            }
            Some(_) => {
                return Err(invalid(
                    if key == "name" { "name" } else { "mediaType" },
                    "must be a string",
                ))
            }
            None => {}
        }
    }
    map.remove("@context");
    if let Some(extra) = map.keys().next() {
        return Err(ObjectError::Invalid {
            field: "object",
            problem: format!("has unsupported field {extra:?}"),
        });
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shorthand_becomes_note() {
        assert_eq!(
            normalize(json!({"content": "hi"})).unwrap(),
            json!({"type": "Note", "content": "hi"})
        );
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
    }
}

/// The plaintext of a POST payload: the object plus, for bridged messages, where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostPayload {
    pub object: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Value>,
}
