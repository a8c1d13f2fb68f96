//! Inbound hooks: verify per the link's scheme, then turn the body into an inbound event.

use crate::{sign, Format, LinkConfig, TOLERANCE_SECS};
use http::HeaderMap;
use rumgate_gateway::{Author, FormattedText, InboundEvent, InboundMessage};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// A verified inbound hook.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Dedup key: Standard `webhook-id` (signed), GitHub the SHA-256 of the signed body (the
    /// `X-GitHub-Delivery` header is not signed, so a captured body could be replayed under a
    /// new one; GitHub's redeliveries repeat the body too), plain `Idempotency-Key` /
    /// `webhook-id` header or else the SHA-256 of the body.
    pub message_id: String,
    /// `None` for deliveries that carry nothing to post (GitHub `ping`, unsupported events).
    pub event: Option<InboundEvent>,
    /// Links the message already crossed (from a rumgate item's `origin.hops`), 0 otherwise.
    pub hops: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("stale delivery: {0}")]
    Stale(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("cannot read the body: {0}")]
    BadBody(String),
    #[error("{0}")]
    Unsupported(String),
}

impl InboundError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadSignature(_)
            | Self::Stale(_)
            | Self::MissingHeader(_)
            | Self::Unauthorized(_) => 401,
            Self::BadBody(_) => 422,
            Self::Unsupported(_) => 400,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature(_) => "bad_signature",
            Self::Stale(_) => "stale_timestamp",
            Self::MissingHeader(_) => "missing_header",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadBody(_) => "invalid_body",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &'static str) -> Result<&'a str, InboundError> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(InboundError::MissingHeader(name))
}

fn secret(cfg: &LinkConfig) -> Result<&str, InboundError> {
    cfg.secret
        .as_ref()
        .map(|s| s.expose_secret())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            InboundError::Unauthorized(
                "this link has no secret configured; inbound hooks are refused".into(),
            )
        })
}

/// Verifies an inbound hook and parses it.
pub fn verify_inbound(
    cfg: &LinkConfig,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Inbound, InboundError> {
    match cfg.format {
        Format::Standard => {
            let id = header(headers, "webhook-id")?;
            let ts = header(headers, "webhook-timestamp")?;
            let sig = header(headers, "webhook-signature")?;
            let secret = secret(cfg)?;
            let when: u64 = ts
                .parse()
                .map_err(|_| InboundError::BadSignature(format!("webhook-timestamp {ts:?} is not a number")))?;
            let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            if now.abs_diff(when) > TOLERANCE_SECS {
                return Err(InboundError::Stale(format!(
                    "webhook-timestamp {when} is {}s away from now (tolerance {TOLERANCE_SECS}s)",
                    now.abs_diff(when)
                )));
            }
            if !sign::standard_verify(secret, id, ts, body, sig) {
                return Err(InboundError::BadSignature("no v1 signature matches".into()));
            }
            let (event, hops) = parse_json_body(body)?;
            Ok(Inbound { message_id: id.to_string(), event: Some(event), hops })
        }
        Format::Github => {
            let sig = header(headers, "x-hub-signature-256")?;
            let secret = secret(cfg)?;
            if !sign::github_verify(secret, body, sig) {
                return Err(InboundError::BadSignature("X-Hub-Signature-256 does not match".into()));
            }
            let delivery = header(headers, "x-github-delivery")?;
            let event_name = header(headers, "x-github-event")?;
            let json = github_json(headers, body)?;
            tracing::debug!(%delivery, event = %event_name, "github delivery verified");
            Ok(Inbound {
                message_id: hex::encode(Sha256::digest(body)),
                event: render_github(event_name, &json).map(|(text, author)| {
                    message(text, author, None)
                }),
                hops: 0,
            })
        }
        Format::Plain => {
            let expected = secret(cfg)?;
            let presented = header(headers, "authorization")?
                .strip_prefix("Bearer ")
                .ok_or_else(|| InboundError::Unauthorized("expected `Authorization: Bearer <secret>`".into()))?;
            if !sign::secrets_equal(presented.trim(), expected) {
                return Err(InboundError::Unauthorized("wrong secret".into()));
            }
            let id = header(headers, "idempotency-key")
                .or_else(|_| header(headers, "webhook-id"))
                .map(str::to_string)
                .unwrap_or_else(|_| hex::encode(Sha256::digest(body)));
            let (event, hops) = parse_json_body(body)?;
            Ok(Inbound { message_id: id, event: Some(event), hops })
        }
        Format::Slack | Format::Discord => Err(InboundError::Unsupported(
            "slack and discord formats are outbound only; use standard, github or plain for inbound".into(),
        )),
    }
}

fn message(text: String, author: Author, reply_to: Option<String>) -> InboundEvent {
    InboundEvent::Message(InboundMessage {
        chat: String::new(),
        message_id: String::new(),
        author,
        text: FormattedText::plain(text),
        reply_to,
        attachments: Vec::new(),
        sent_at: None,
        from_self: false,
    })
}

fn default_author() -> Author {
    Author {
        id: "webhook".into(),
        name: "webhook".into(),
    }
}

fn author_from(v: &Value) -> Option<Author> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    Some(Author {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_string(),
        name: name.to_string(),
    })
}

/// `{"content"}`, an ActivityStreams Note, or a rumgate item event (`{"type":"item.*","data"}`).
fn parse_json_body(body: &[u8]) -> Result<(InboundEvent, u64), InboundError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::BadBody(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| InboundError::BadBody("expected a JSON object".into()))?;
    if let Some(kind) = obj
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with("item."))
    {
        let data = &v["data"];
        let text = data["text"]
            .as_str()
            .or_else(|| data["object"]["content"].as_str())
            .ok_or_else(|| InboundError::BadBody(format!("{kind} without data.text")))?;
        let author = author_from(&data["author"]).unwrap_or_else(default_author);
        let hops = data["origin"]["hops"].as_u64().unwrap_or(0);
        return Ok((message(text.to_string(), author, None), hops));
    }
    match obj.get("type").and_then(Value::as_str) {
        None | Some("Note") => {}
        Some(other) => {
            return Err(InboundError::BadBody(format!(
                "type {other:?} is not supported (Note or {{\"content\"}})"
            )))
        }
    }
    let content = obj
        .get("content")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            InboundError::BadBody("field `content` (non-empty string) is required".into())
        })?;
    let author = obj
        .get("author")
        .and_then(author_from)
        .or_else(|| obj.get("attributedTo").and_then(author_from))
        .unwrap_or_else(default_author);
    let reply = obj
        .get("inReplyTo")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((message(content.to_string(), author, reply), 0))
}

/// GitHub sends JSON, or a form with the JSON in `payload`.
fn github_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, InboundError> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let raw: Vec<u8> = if form {
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned().into_bytes())
            .ok_or_else(|| InboundError::BadBody("form without a `payload` field".into()))?
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&raw).map_err(|e| InboundError::BadBody(format!("not JSON: {e}")))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A readable note for the GitHub events people link to chats; `None` for ping and the rest.
pub fn render_github(event: &str, v: &Value) -> Option<(String, Author)> {
    let s = |p: &Value| p.as_str().unwrap_or_default().to_string();
    let login = s(&v["sender"]["login"]);
    let author = Author {
        id: format!("github:{login}"),
        name: login.clone(),
    };
    let repo = s(&v["repository"]["full_name"]);
    let text = match event {
        "push" => {
            let branch = s(&v["ref"]).trim_start_matches("refs/heads/").to_string();
            let commits = v["commits"].as_array().cloned().unwrap_or_default();
            let mut t = format!(
                "{login} pushed {} commit{} to {repo}:{branch}",
                commits.len(),
                if commits.len() == 1 { "" } else { "s" }
            );
            for c in commits.iter().take(5) {
                t.push_str(&format!(
                    "\n• {} {}",
                    s(&c["id"]).chars().take(7).collect::<String>(),
                    first_line(c["message"].as_str().unwrap_or_default())
                ));
            }
            if let Some(url) = v["compare"].as_str() {
                t.push_str(&format!("\n{url}"));
            }
            t
        }
        "issue_comment" => format!(
            "{login} commented on {repo}#{} {}:\n{}\n{}",
            v["issue"]["number"],
            s(&v["issue"]["title"]),
            s(&v["comment"]["body"]),
            s(&v["comment"]["html_url"])
        ),
        "issues" => format!(
            "{login} {} issue {repo}#{} {}\n{}",
            s(&v["action"]),
            v["issue"]["number"],
            s(&v["issue"]["title"]),
            s(&v["issue"]["html_url"])
        ),
        "pull_request" => format!(
            "{login} {} pull request {repo}#{} {}\n{}",
            s(&v["action"]),
            v["pull_request"]["number"],
            s(&v["pull_request"]["title"]),
            s(&v["pull_request"]["html_url"])
        ),
        "release" => format!(
            "{login} {} release {} of {repo}\n{}",
            s(&v["action"]),
            s(&v["release"]["tag_name"]),
            s(&v["release"]["html_url"])
        ),
        _ => return None,
    };
    Some((text, author))
}
