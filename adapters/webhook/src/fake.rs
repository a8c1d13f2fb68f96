//! A real local webhook receiver for tests: verifies signatures, records deliveries, drops
//! repeated `webhook-id`s (as receivers should), and injects faults (5xx, 429, 410, slow answers).
//!
//! It also speaks Discord's execute-webhook API: a POST whose body has `content` creates a
//! message (as Discord does, a repeated POST creates another one); with `?wait=true` it answers
//! the message object `{"id": "<snowflake>", "content", "channel_id", …}`, else 204. `PATCH` and
//! `DELETE` on `{webhook path}/messages/{id}` (with the message's `?thread_id=` if it was posted
//! into a thread) change or delete it, answering 404 `{"message": "Unknown Message", "code":
//! 10008}` for ids the webhook does not know or already deleted. [`Receiver::discord_messages`]
//! and [`Receiver::visible`] show the current state.

use crate::sign;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rumgate_gateway::conformance::{ConformanceObserver, ObservedMessage};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The channel of Discord messages not posted into a thread.
pub const DISCORD_CHANNEL_ID: &str = "1100000000000000001";

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `POST`, or `PATCH`/`DELETE` for Discord message edits and deletes.
    pub method: String,
    pub path: String,
    /// The raw query string, if any (`wait=true&thread_id=…`).
    pub query: Option<String>,
    pub webhook_id: Option<String>,
    pub body: Value,
    /// Whether this `webhook-id` had been accepted at this path before (a retried delivery).
    pub repeat: bool,
    pub at: Instant,
}

/// A fault to answer with instead of 200.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 429 with this `Retry-After` (seconds).
    RateLimit(u64),
    /// Answer 200 only after this long.
    Slow(Duration),
    /// Discord's 429: a JSON body `{"retry_after": <seconds>, "global": false, …}` and a
    /// `Retry-After` header of the seconds rounded up.
    DiscordRateLimit(f64),
    /// Answer with this status and JSON body.
    Json(u16, Value),
    /// Answer normally; lets `fail_next` fault a later request instead of the next one.
    Pass,
    /// Answer with this status and a body that does not end (64 MiB, streamed as fast as the
    /// client reads), counting what was handed out ([`Receiver::streamed_bytes`]).
    EndlessBody(u16),
}

/// How much of an [`Fault::EndlessBody`] is streamed at most.
const ENDLESS_BYTES: u64 = 64 * 1024 * 1024;

/// A message as a Discord channel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordMessage {
    pub id: String,
    /// The webhook path it was posted to (no leading `/`).
    pub webhook: String,
    /// The `thread_id` it was posted with, else [`DISCORD_CHANNEL_ID`].
    pub channel_id: String,
    pub content: String,
    /// The `allowed_mentions` of the last POST or PATCH.
    pub allowed_mentions: Value,
    pub edited: bool,
    pub deleted: bool,
}

impl DiscordMessage {
    fn object(&self) -> Value {
        json!({
            "id": self.id,
            "type": 0,
            "content": self.content,
            "channel_id": self.channel_id,
            "webhook_id": "1100000000000000000",
            "edited_timestamp": if self.edited { json!("2026-01-01T00:00:00.000000+00:00") } else { Value::Null },
            "mentions": [],
            "attachments": [],
            "embeds": [],
        })
    }
}

#[derive(Default)]
struct Inner {
    accepted: Vec<Delivery>,
    refused: Vec<Delivery>,
    /// Faults for the next N requests, in order.
    next: Vec<Fault>,
    /// A fault for every request until this instant.
    until: Option<(Instant, Fault, Option<String>)>,
    /// Discord messages, in the order they were posted (deleted ones included, flagged).
    messages: Vec<DiscordMessage>,
    /// Snowflakes handed out so far.
    snowflakes: u64,
}

/// Bytes of endless bodies handed to the connection so far.
#[derive(Default)]
struct Streamed(std::sync::atomic::AtomicU64);

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    streamed: Arc<Streamed>,
    secret: Option<String>,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:0; with `secret`, Standard Webhooks signatures are checked.
    pub async fn start(secret: Option<&str>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let r = Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            streamed: Arc::default(),
            secret: secret.map(str::to_string),
            addr,
            stop: CancellationToken::new(),
        };
        let app = axum::Router::new().fallback(handle).with_state(r.clone());
        let stop = r.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(r)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().next.extend(faults);
    }

    pub fn fail_for(&self, d: Duration, fault: Fault) {
        self.lock().until = Some((Instant::now() + d, fault, None));
    }

    /// As `fail_for`, for requests to one path only.
    pub fn fail_path_for(&self, path: &str, d: Duration, fault: Fault) {
        let path = path.trim_start_matches('/').to_string();
        self.lock().until = Some((Instant::now() + d, fault, Some(path)));
    }

    pub fn heal(&self) {
        let mut i = self.lock();
        i.until = None;
        i.next.clear();
    }

    /// Accepted deliveries (repeats included, flagged).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().accepted.clone()
    }

    /// Bytes of [`Fault::EndlessBody`] answers handed out so far (the client read about this
    /// much, less what socket buffers hold).
    pub fn streamed_bytes(&self) -> u64 {
        self.streamed.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests answered with a fault or refused for a bad signature.
    pub fn refused(&self) -> Vec<Delivery> {
        self.lock().refused.clone()
    }

    /// The `data.text` of each first-time `item.created` at `path`, in arrival order.
    pub fn texts(&self, path: &str) -> Vec<String> {
        self.lock()
            .accepted
            .iter()
            .filter(|d| d.path == path && !d.repeat && d.body["type"] == "item.created")
            .map(|d| text_of(&d.body))
            .collect()
    }

    /// Every Discord message posted to webhook `path` (no leading `/`), in order, with its current
    /// content; deleted ones included, flagged.
    pub fn discord_messages(&self, path: &str) -> Vec<DiscordMessage> {
        let path = path.trim_start_matches('/');
        self.lock()
            .messages
            .iter()
            .filter(|m| m.webhook == path)
            .cloned()
            .collect()
    }

    /// The content of each Discord message at `path` a channel member would see now, in order.
    pub fn visible(&self, path: &str) -> Vec<String> {
        self.discord_messages(path)
            .into_iter()
            .filter(|m| !m.deleted)
            .map(|m| m.content)
            .collect()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

fn text_of(body: &Value) -> String {
    body["data"]["text"]
        .as_str()
        .or_else(|| body["text"].as_str())
        .or_else(|| body["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn handle(
    State(r): State<Receiver>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches('/').to_string();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = h("webhook-id");
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = Delivery {
        method: method.to_string(),
        path,
        query: uri.query().map(str::to_string),
        webhook_id: id.clone(),
        body: json,
        repeat: false,
        at: Instant::now(),
    };
    if let Some(secret) = &r.secret {
        let ok = match (&id, h("webhook-timestamp"), h("webhook-signature")) {
            (Some(id), Some(ts), Some(sig)) => sign::standard_verify(secret, id, &ts, &body, &sig),
            _ => false,
        };
        if !ok {
            r.lock().refused.push(d);
            return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
        }
    }
    let fault = {
        let mut i = r.lock();
        if !i.next.is_empty() {
            Some(i.next.remove(0))
        } else {
            match &i.until {
                Some((until, f, only))
                    if Instant::now() < *until && only.as_ref().is_none_or(|p| *p == d.path) =>
                {
                    Some(f.clone())
                }
                _ => None,
            }
        }
    };
    match fault {
        Some(Fault::Status(s)) => {
            r.lock().refused.push(d);
            return (
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected fault",
            )
                .into_response();
        }
        Some(Fault::RateLimit(secs)) => {
            r.lock().refused.push(d);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "slow down",
            )
                .into_response();
        }
        Some(Fault::DiscordRateLimit(secs)) => {
            r.lock().refused.push(d);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.ceil().to_string())],
                axum::Json(json!({
                    "message": "You are being rate limited.",
                    "retry_after": secs,
                    "global": false,
                })),
            )
                .into_response();
        }
        Some(Fault::Json(status, answer)) => {
            r.lock().refused.push(d);
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(answer),
            )
                .into_response();
        }
        Some(Fault::EndlessBody(status)) => {
            r.lock().refused.push(d);
            let streamed = Arc::clone(&r.streamed);
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let body = futures::stream::unfold(0u64, move |sent| {
                let (chunk, streamed) = (chunk.clone(), Arc::clone(&streamed));
                async move {
                    if sent >= ENDLESS_BYTES {
                        return None;
                    }
                    let n = chunk.len() as u64;
                    streamed
                        .0
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    Some((Ok::<_, std::io::Error>(chunk), sent + n))
                }
            });
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::body::Body::from_stream(body),
            )
                .into_response();
        }
        Some(Fault::Slow(wait)) => tokio::time::sleep(wait).await,
        Some(Fault::Pass) | None => {}
    }
    let mut i = r.lock();
    if method == Method::POST {
        d.repeat = id.as_ref().is_some_and(|id| {
            i.accepted
                .iter()
                .any(|x| x.path == d.path && x.webhook_id.as_ref() == Some(id))
        });
    }
    let answer = if method == Method::POST {
        match d.body["content"].as_str() {
            Some(content) => {
                let wait = query_param(d.query.as_deref(), "wait").as_deref() == Some("true");
                i.snowflakes += 1;
                let m = DiscordMessage {
                    id: (1_150_000_000_000_000_000 + i.snowflakes).to_string(),
                    webhook: d.path.clone(),
                    channel_id: query_param(d.query.as_deref(), "thread_id")
                        .unwrap_or_else(|| DISCORD_CHANNEL_ID.to_string()),
                    content: content.to_string(),
                    allowed_mentions: d.body["allowed_mentions"].clone(),
                    edited: false,
                    deleted: false,
                };
                let object = m.object();
                i.messages.push(m);
                if wait {
                    (StatusCode::OK, axum::Json(object)).into_response()
                } else {
                    StatusCode::NO_CONTENT.into_response()
                }
            }
            None => StatusCode::OK.into_response(),
        }
    } else {
        discord_message_op(&mut i, &method, &d)
    };
    i.accepted.push(d);
    answer
}

/// `PATCH`/`DELETE` of `{webhook}/messages/{id}`.
fn discord_message_op(i: &mut Inner, method: &Method, d: &Delivery) -> Response {
    let Some((webhook, message_id)) = d.path.rsplit_once("/messages/") else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    if *method != Method::PATCH && *method != Method::DELETE {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let thread = query_param(d.query.as_deref(), "thread_id");
    let found = i.messages.iter_mut().find(|m| {
        m.webhook == webhook
            && m.id == message_id
            && !m.deleted
            // A message in a thread is only found with its thread_id, as on Discord.
            && (m.channel_id == DISCORD_CHANNEL_ID || thread.as_ref() == Some(&m.channel_id))
    });
    let Some(m) = found else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Unknown Message", "code": 10008})),
        )
            .into_response();
    };
    if *method == Method::DELETE {
        m.deleted = true;
        return StatusCode::NO_CONTENT.into_response();
    }
    if let Some(content) = d.body["content"].as_str() {
        m.content = content.to_string();
    }
    if !d.body["allowed_mentions"].is_null() {
        m.allowed_mentions = d.body["allowed_mentions"].clone();
    }
    m.edited = true;
    (StatusCode::OK, axum::Json(m.object())).into_response()
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[async_trait]
impl ConformanceObserver for Receiver {
    async fn received(&self, chat: &str) -> Vec<ObservedMessage> {
        let path = chat
            .rsplit_once(&self.addr.to_string())
            .map_or(chat, |(_, p)| p)
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let mut out: Vec<ObservedMessage> = Vec::new();
        // Standard/GitHub/plain events and Slack posts; Discord messages are kept as messages.
        for d in self.deliveries().into_iter().filter(|d| {
            d.path == path && !d.repeat && d.method == "POST" && d.body.get("content").is_none()
        }) {
            let data = &d.body["data"];
            let ids: Vec<String> = data["parts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            match d.body["type"].as_str() {
                Some("item.updated") => {
                    for m in out.iter_mut().filter(|m| ids.contains(&m.message_id)) {
                        m.text = text_of(&d.body);
                        m.edited = true;
                    }
                }
                Some("item.deleted") => {
                    for m in out.iter_mut().filter(|m| ids.contains(&m.message_id)) {
                        m.deleted = true;
                    }
                }
                _ => out.push(ObservedMessage {
                    message_id: d.webhook_id.clone().unwrap_or_default(),
                    text: text_of(&d.body),
                    reply_to: data["reply_to"].as_str().map(str::to_string),
                    edited: false,
                    deleted: false,
                }),
            }
        }
        out.extend(
            self.discord_messages(&path)
                .into_iter()
                .map(|m| ObservedMessage {
                    message_id: m.id,
                    text: m.content,
                    reply_to: None,
                    edited: m.edited,
                    deleted: m.deleted,
                }),
        );
        out
    }
}
