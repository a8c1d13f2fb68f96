//! Outbound deliveries: one POST per part, deterministic `webhook-id`s, responses mapped to
//! gateway errors.
//!
//! Edits and deletes depend on the format:
//! * `standard`/`github`/`plain`: an `item.updated`/`item.deleted` event naming the parts.
//! * `discord`: in place. Parts are posted with `wait=true`, so each part's remote id is Discord's
//!   message id; an edit `PATCH`es `{webhook}/messages/{id}` part by part (posting extra parts as
//!   new messages, deleting surplus ones) and a delete `DELETE`s every part, a 404 "Unknown
//!   Message" counting as already deleted. A part Discord no longer knows (deleted there
//!   meanwhile) is posted anew by an edit. Parts delivered before in-place edits existed carry no
//!   Discord message id: an edit of such an item posts "(edited) …" as a new message and a
//!   delete leaves them alone.
//! * `slack`: incoming webhooks cannot change or remove a posted message, so an edit posts
//!   "(edited) …" as a new message and a delete does nothing.

use crate::ssrf::{check_target, GuardedResolver};
use crate::{discord, sign, Format, LinkConfig};
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
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

pub const TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_RETRY: Duration = Duration::from_secs(5);
/// Answers beyond this are not read (error excerpts and Discord message objects need far less).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How many posted-but-unconfirmed Discord parts are remembered for retries.
const MAX_PENDING: usize = 1024;

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
    /// Discord messages posted by a `send`/`edit` that has not succeeded yet, by (chat,
    /// webhook-id) → Discord message id. Discord has no idempotency key: when the node retries
    /// the call (after a 429 on a later part, say), parts posted already are reused instead of
    /// being posted twice. Forgotten when the call succeeds or the message is deleted.
    pending: Mutex<VecDeque<((String, String), String)>>,
}

/// One answer of Discord to a message request.
enum Answer {
    /// 2xx, with the body (the message object for `wait=true` executes and `PATCH`es).
    Ok(Vec<u8>),
    /// 404 "Unknown Message" (10008) on a `PATCH`/`DELETE` of one message.
    UnknownMessage,
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
            pending: Mutex::new(VecDeque::new()),
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
        let resp = req.body(bytes).send().await.map_err(transport_error)?;
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
        // An excerpt for the error; a receiver streaming without end must not fill memory.
        let text: String = String::from_utf8_lossy(&read_capped(resp).await)
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

impl WebhookGateway {
    /// One request to a Discord webhook. For a `PATCH`/`DELETE` of one message, 404 "Unknown
    /// Message" is an answer, not an error. Health follows the outcome.
    async fn discord_call(
        &self,
        method: reqwest::Method,
        url: Url,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let result = self.discord_call_inner(method, &url, id, body).await;
        self.set_health(match &result {
            Ok(_) => Health::ok(),
            Err(GatewayError::Permanent(m)) => Health::failing(m.clone()),
            Err(other) => Health::degraded(other.to_string()),
        });
        result
    }

    async fn discord_call_inner(
        &self,
        method: reqwest::Method,
        url: &Url,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let one_message = method != reqwest::Method::POST;
        let mut req = self
            .http
            .request(method, url.clone())
            .header("webhook-id", id);
        if let Some(body) = body {
            let bytes =
                serde_json::to_vec(body).map_err(|e| GatewayError::Invalid(e.to_string()))?;
            req = req.header("content-type", "application/json").body(bytes);
        }
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let header_retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = read_capped(resp).await;
        if status.is_success() {
            return Ok(Answer::Ok(bytes));
        }
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        if one_message && discord::is_unknown_message(status.as_u16(), answer.as_ref()) {
            return Ok(Answer::UnknownMessage);
        }
        Err(discord::error(
            status,
            answer.as_ref(),
            discord::retry_after(answer.as_ref(), header_retry),
            DEFAULT_RETRY,
            url,
        ))
    }

    /// Posts one Discord message with `wait=true` and returns its message id — or the id of the
    /// message an earlier, unfinished attempt of the same call posted for `id`.
    async fn discord_post(&self, chat: &str, base: &Url, id: &str, body: &Value) -> Result<String> {
        if let Some(remote) = self.pending_get(chat, id) {
            return Ok(remote);
        }
        let bytes = match self
            .discord_call(
                reqwest::Method::POST,
                discord::execute_url(base),
                id,
                Some(body),
            )
            .await?
        {
            Answer::Ok(bytes) => bytes,
            Answer::UnknownMessage => Vec::new(),
        };
        let remote = discord::answered_id(&bytes).unwrap_or_else(|| {
            tracing::warn!(
                "the Discord webhook answered without a message id; this part cannot be edited \
                 or deleted in place"
            );
            id.to_string()
        });
        self.pending_put(chat, id, &remote);
        Ok(remote)
    }

    /// Edits Discord parts in place (`PATCH`), posts parts the new text needs beyond the old
    /// ones, deletes old parts it no longer needs. A part Discord answers "Unknown Message" for
    /// (deleted there meanwhile) is posted anew.
    async fn discord_edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
        if !edit.parts.is_empty()
            && !edit
                .parts
                .iter()
                .any(|p| discord::is_snowflake(&p.message_id))
        {
            // Delivered before in-place edits: there is no Discord message id to edit.
            return self.resend_edited(chat, edit).await;
        }
        let base = check_target(chat, self.cfg.allow_private_target)?;
        let texts = parts_of(&edit.text, limit(Format::Discord));
        let digest = hex::encode(Sha256::digest(edit.text.text.as_bytes()));
        let event = format!("item.updated/{digest}");
        let mut parts = Vec::with_capacity(texts.len());
        let mut posted = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let id = message_id(&edit.item_id, &event, i);
            let body = self.body("item.updated", Value::Null, text);
            if let Some(old) = edit
                .parts
                .get(i)
                .filter(|p| discord::is_snowflake(&p.message_id))
            {
                let url = discord::message_url(&base, &old.message_id)?;
                match self
                    .discord_call(reqwest::Method::PATCH, url, &id, Some(&body))
                    .await?
                {
                    Answer::Ok(_) => {
                        parts.push(old.clone());
                        continue;
                    }
                    Answer::UnknownMessage => tracing::info!(
                        item = %edit.item_id,
                        part = i,
                        "Discord no longer knows this message; posting the edited part anew"
                    ),
                }
            }
            let remote = self.discord_post(chat, &base, &id, &body).await?;
            posted.push(id);
            parts.push(RemoteRef {
                chat: chat.to_string(),
                message_id: remote,
            });
        }
        let surplus = edit.parts.get(texts.len()..).unwrap_or_default();
        self.discord_delete(chat, &base, &edit.item_id, surplus)
            .await?;
        self.pending_forget(chat, &posted);
        Ok(Delivered { parts })
    }

    /// Deletes Discord parts; those already gone ("Unknown Message") are fine, and parts without
    /// a Discord message id (delivered before in-place edits) cannot be deleted and are skipped.
    async fn discord_delete(
        &self,
        chat: &str,
        base: &Url,
        item_id: &str,
        parts: &[RemoteRef],
    ) -> Result<()> {
        for part in parts {
            if !discord::is_snowflake(&part.message_id) {
                tracing::debug!(
                    item = %item_id,
                    "a part without a Discord message id cannot be deleted; left alone"
                );
                continue;
            }
            let id = message_id(item_id, &format!("item.deleted/{}", part.message_id), 0);
            let url = discord::message_url(base, &part.message_id)?;
            if let Answer::UnknownMessage = self
                .discord_call(reqwest::Method::DELETE, url, &id, None)
                .await?
            {
                tracing::debug!(item = %item_id, "the Discord message was already deleted");
            }
            self.pending_forget_remote(chat, &part.message_id);
        }
        Ok(())
    }

    /// The old way, for remotes that cannot edit: post the new text as a new message, marked.
    async fn resend_edited(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
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

    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<((String, String), String)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending_get(&self, chat: &str, id: &str) -> Option<String> {
        self.pending()
            .iter()
            .find(|((c, i), _)| c == chat && i == id)
            .map(|(_, remote)| remote.clone())
    }

    fn pending_put(&self, chat: &str, id: &str, remote: &str) {
        let mut p = self.pending();
        p.push_back(((chat.to_string(), id.to_string()), remote.to_string()));
        while p.len() > MAX_PENDING {
            p.pop_front();
        }
    }

    fn pending_forget(&self, chat: &str, ids: &[String]) {
        self.pending()
            .retain(|((c, i), _)| !(c == chat && ids.contains(i)));
    }

    fn pending_forget_remote(&self, chat: &str, remote: &str) {
        self.pending()
            .retain(|((c, _), r)| !(c == chat && r == remote));
    }
}

/// A request that got no answer. The URL of a Slack/Discord webhook is its credential: it is kept
/// out of errors and logs.
fn transport_error(e: reqwest::Error) -> GatewayError {
    let msg = error_chain(&e.without_url());
    if msg.contains("allow_private_target") {
        GatewayError::Permanent(msg)
    } else {
        GatewayError::Transient(format!("delivery failed: {msg}"))
    }
}

/// Reads an answer up to [`MAX_ANSWER_BYTES`]; one that breaks off is read as far as it came.
async fn read_capped(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    body
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
        let discord_base = match self.cfg.format {
            Format::Discord => Some(check_target(chat, self.cfg.allow_private_target)?),
            _ => None,
        };
        let mut parts = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
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
            let remote = match &discord_base {
                Some(base) => self.discord_post(chat, base, &id, &body).await?,
                None => {
                    self.post(chat, &id, &body).await?;
                    id.clone()
                }
            };
            parts.push(RemoteRef {
                chat: chat.to_string(),
                message_id: remote,
            });
            ids.push(id);
        }
        if discord_base.is_some() {
            self.pending_forget(chat, &ids);
        }
        Ok(Delivered { parts })
    }

    async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
        match self.cfg.format {
            Format::Discord => self.discord_edit(chat, edit).await,
            // Slack incoming webhooks cannot change a posted message: post the new text, marked.
            Format::Slack => self.resend_edited(chat, edit).await,
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
            Format::Discord => {
                let base = check_target(chat, self.cfg.allow_private_target)?;
                self.discord_delete(chat, &base, &del.item_id, &del.parts)
                    .await
            }
            // Slack incoming webhooks cannot delete; nothing to do (documented).
            Format::Slack => Ok(()),
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
