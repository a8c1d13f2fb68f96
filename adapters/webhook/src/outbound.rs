//! Outbound deliveries: one POST per part, deterministic `webhook-id`s, responses mapped to
//! gateway errors.

use crate::ssrf::{check_target, GuardedResolver};
use crate::{sign, Format, LinkConfig};
use async_trait::async_trait;
use base64::Engine as _;
use rumgate_gateway::text::{split_text, Unit};
use rumgate_gateway::{
    Delivered, FormattedText, Gateway, GatewayContext, GatewayError, Health, OutboundDelete,
    OutboundEdit, OutboundMessage, RemoteRef, Result,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_RETRY: Duration = Duration::from_secs(5);

/// The same delivery always gets the same id, so receivers can drop repeats.
pub fn message_id(item_id: &str, event: &str, part: usize) -> String {
    let h = Sha256::digest(format!("{item_id}\n{event}\n{part}").as_bytes());
    format!("msg_{}", &hex::encode(h)[..32])
}

/// Text limit per delivery, in characters.
fn limit(format: Format) -> usize {
    match format {
        Format::Discord => 2_000,
        Format::Slack => 4_000,
        Format::Standard | Format::Github | Format::Plain => 16_000,
    }
}

pub struct WebhookGateway {
    cfg: LinkConfig,
    http: reqwest::Client,
    health: Arc<Mutex<Health>>,
}

impl WebhookGateway {
    pub fn new(cfg: LinkConfig) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, past the SSRF guard.
            .no_proxy()
            .user_agent(concat!("rumgate/", env!("CARGO_PKG_VERSION")));
        if !cfg.allow_private_target {
            b = b.dns_resolver(Arc::new(GuardedResolver));
        }
        let http = b
            .build()
            .map_err(|e| GatewayError::Permanent(format!("http client: {e}")))?;
        Ok(Self {
            cfg,
            http,
            health: Arc::new(Mutex::new(Health::ok())),
        })
    }

    pub fn format(&self) -> Format {
        self.cfg.format
    }

    fn set_health(&self, h: Health) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    /// Slack escaping: `&`, `<`, `>`.
    fn slack_escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    fn body(&self, event: &str, data: Value, text: &str) -> Value {
        match self.cfg.format {
            Format::Slack => json!({"text": Self::slack_escape(text)}),
            Format::Discord => json!({"content": text, "allowed_mentions": {"parse": []}}),
            Format::Standard | Format::Github | Format::Plain => json!({
                "type": event,
                "timestamp": now_secs(),
                "data": data,
            }),
        }
    }

    async fn post(&self, url: &str, id: &str, body: &Value) -> Result<()> {
        let target = check_target(url, self.cfg.allow_private_target)?;
        let bytes = serde_json::to_vec(body).map_err(|e| GatewayError::Invalid(e.to_string()))?;
        let ts = now_secs();
        let mut req = self
            .http
            .post(target)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        let secret = self
            .cfg
            .secret
            .as_ref()
            .map(|s| s.expose_secret().to_string());
        match (self.cfg.format, secret) {
            (Format::Standard, Some(s)) => {
                req = req.header("webhook-signature", sign::standard_sign(&s, id, ts, &bytes));
            }
            (Format::Github, Some(s)) => {
                req = req.header("x-hub-signature-256", sign::github_sign(&s, &bytes));
            }
            (Format::Plain, Some(s)) => req = req.bearer_auth(s),
            _ => {}
        }
        let resp = req.body(bytes).send().await.map_err(|e| {
            // The URL of a Slack/Discord webhook is its credential: keep it out of errors and logs.
            let msg = error_chain(&e.without_url());
            if msg.contains("allow_private_target") {
                GatewayError::Permanent(msg)
            } else {
                GatewayError::Transient(format!("delivery failed: {msg}"))
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            self.set_health(Health::ok());
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let err = match status.as_u16() {
            429 | 502 | 504 => GatewayError::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY),
            },
            410 => GatewayError::Permanent(
                "the receiver answered 410 Gone: it disabled this endpoint".into(),
            ),
            s if s >= 500 => GatewayError::Transient(format!("receiver answered {status}: {text}")),
            _ => GatewayError::Permanent(format!("receiver answered {status}: {text}")),
        };
        self.set_health(match &err {
            GatewayError::Permanent(m) => Health::failing(m.clone()),
            other => Health::degraded(other.to_string()),
        });
        Err(err)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `Retry-After` in seconds (possibly fractional) or as an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate(v)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(v: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]))
}

fn parts_of(text: &FormattedText, max: usize) -> Vec<String> {
    if text.text.is_empty() {
        return vec![String::new()];
    }
    split_text(text, max, Unit::Chars)
        .into_iter()
        .map(|p| p.text)
        .collect()
}

#[async_trait]
impl Gateway for WebhookGateway {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn start(&self, _ctx: GatewayContext) -> Result<()> {
        // Inbound webhooks arrive through the node's `/hooks/{link}` route.
        Ok(())
    }

    async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered> {
        let texts = parts_of(&msg.text, limit(self.cfg.format));
        let n = texts.len();
        let attachments: Vec<Value> = msg
            .attachments
            .iter()
            .map(|a| {
                json!({
                    "mime": a.mime, "name": a.name,
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(&a.data),
                })
            })
            .collect();
        let mut parts = Vec::with_capacity(n);
        for (i, text) in texts.iter().enumerate() {
            let id = message_id(&msg.item_id, "item.created", i);
            let mut shown = text.clone();
            if i == 0
                && !msg.attachments.is_empty()
                && matches!(self.cfg.format, Format::Slack | Format::Discord)
            {
                shown.push_str(" [image]");
            }
            let data = msg.item.clone().unwrap_or_else(|| {
                json!({
                    "item_id": msg.item_id, "group_id": msg.group_id,
                    "author": {"id": msg.author.id, "name": msg.author.name},
                    "origin": msg.origin,
                })
            });
            let mut data = data;
            if let Some(o) = data.as_object_mut() {
                o.insert("item_id".into(), json!(msg.item_id));
                o.insert("text".into(), json!(text));
                o.insert("part".into(), json!(i));
                o.insert("parts".into(), json!(n));
                if let Some(r) = &msg.reply_to {
                    o.insert("reply_to".into(), json!(r.message_id));
                }
                if i == 0 && !attachments.is_empty() {
                    o.insert("attachments".into(), json!(attachments));
                }
            }
            let body = self.body("item.created", data, &shown);
            self.post(chat, &id, &body).await?;
            parts.push(RemoteRef {
                chat: chat.to_string(),
                message_id: id,
            });
        }
        Ok(Delivered { parts })
    }

    async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
        match self.cfg.format {
            Format::Slack | Format::Discord => {
                // Incoming webhooks cannot change a posted message: post the new text, marked.
                let msg = OutboundMessage {
                    item_id: format!(
                        "{}#edit-{}",
                        edit.item_id,
                        &hex::encode(Sha256::digest(edit.text.text.as_bytes()))[..12]
                    ),
                    group_id: String::new(),
                    author: edit.author.clone(),
                    text: FormattedText::plain(format!("(edited) {}", edit.text.text)),
                    reply_to: None,
                    attachments: Vec::new(),
                    origin: None,
                    item: None,
                };
                self.send(chat, &msg).await
            }
            _ => {
                let digest = hex::encode(Sha256::digest(edit.text.text.as_bytes()));
                let id = message_id(&edit.item_id, &format!("item.updated/{digest}"), 0);
                let data = json!({
                    "item_id": edit.item_id,
                    "parts": edit.parts.iter().map(|p| p.message_id.clone()).collect::<Vec<_>>(),
                    "text": edit.text.text,
                    "author": {"id": edit.author.id, "name": edit.author.name},
                });
                let body = self.body("item.updated", data, &edit.text.text);
                self.post(chat, &id, &body).await?;
                Ok(Delivered {
                    parts: edit.parts.clone(),
                })
            }
        }
    }

    async fn delete(&self, chat: &str, del: &OutboundDelete) -> Result<()> {
        match self.cfg.format {
            // Incoming webhooks cannot delete; nothing to do (documented).
            Format::Slack | Format::Discord => Ok(()),
            _ => {
                let id = message_id(&del.item_id, "item.deleted", 0);
                let data = json!({
                    "item_id": del.item_id,
                    "parts": del.parts.iter().map(|p| p.message_id.clone()).collect::<Vec<_>>(),
                });
                let body = self.body("item.deleted", data, "");
                self.post(chat, &id, &body).await
            }
        }
    }

    async fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        assert_eq!(
            message_id("a", "item.created", 0),
            message_id("a", "item.created", 0)
        );
        assert_ne!(
            message_id("a", "item.created", 0),
            message_id("a", "item.created", 1)
        );
        assert_ne!(
            message_id("a", "item.created", 0),
            message_id("b", "item.created", 0)
        );
    }
}
