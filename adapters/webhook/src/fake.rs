//! A real local webhook receiver for tests: verifies signatures, records deliveries, drops
//! repeated `webhook-id`s (as receivers should), and injects faults (5xx, 429, 410, slow answers).

use crate::sign;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rumgate_gateway::conformance::{ConformanceObserver, ObservedMessage};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
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
}

#[derive(Default)]
struct Inner {
    accepted: Vec<Delivery>,
    refused: Vec<Delivery>,
    /// Faults for the next N requests, in order.
    next: Vec<Fault>,
    /// A fault for every request until this instant.
    until: Option<(Instant, Fault, Option<String>)>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
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
        path,
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
        Some(Fault::Slow(wait)) => tokio::time::sleep(wait).await,
        None => {}
    }
    let mut i = r.lock();
    d.repeat = id.as_ref().is_some_and(|id| {
        i.accepted
            .iter()
            .any(|x| x.path == d.path && x.webhook_id.as_ref() == Some(id))
    });
    i.accepted.push(d);
    StatusCode::OK.into_response()
}

#[async_trait]
impl ConformanceObserver for Receiver {
    async fn received(&self, chat: &str) -> Vec<ObservedMessage> {
        let path = chat
            .rsplit_once(&self.addr.to_string())
            .map_or(chat, |(_, p)| p)
            .trim_start_matches('/')
            .to_string();
        let mut out: Vec<ObservedMessage> = Vec::new();
        for d in self
            .deliveries()
            .into_iter()
            .filter(|d| d.path == path && !d.repeat)
        {
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
        out
    }
}
