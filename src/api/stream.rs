//! Live items: Server-Sent Events and WebSocket, both on one subscription state machine.
//!
//! A subscription registers with the hub first, then catches up from the store after the
//! client's cursor, then forwards live batches — skipping what catch-up already sent and
//! re-reading the store if a batch does not follow on. A client that falls more than the hub's
//! buffer behind is told to resume from its cursor and the subscription ends: a slow client
//! never holds the node back.

use super::auth::Principal;
use super::dto::parse_group_id;
use super::error::{ApiError, ApiResult, Path, Query};
use super::ApiState;
use crate::chain::{GroupId, TrxKind};
use crate::engine::feed::{open_post, Batch, FeedItem, ItemView};
use crate::engine::Engine;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

/// Store page size during catch-up (also bounded by bytes: `api.page_bytes`).
const PAGE: usize = 500;
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum StreamMsg {
    Item(FeedItem),
    /// The client fell too far behind; reconnect with `after` = this cursor.
    Resume {
        after: i64,
        reason: &'static str,
    },
    Error(String),
}

enum Phase {
    CatchUp,
    Live,
    Done,
}

struct Subscription {
    engine: Arc<Engine>,
    gid: GroupId,
    /// Highest cursor whose row was examined (any kind): the gap check.
    seen: i64,
    /// Cursor of the last item handed to the client.
    emitted: i64,
    rx: broadcast::Receiver<Arc<Batch>>,
    /// At most one catch-up page: `PAGE` rows and about `page_bytes`.
    pending: VecDeque<FeedItem>,
    page_bytes: usize,
    phase: Phase,
    cancel: CancellationToken,
}

impl Subscription {
    fn new(
        engine: Arc<Engine>,
        gid: GroupId,
        after: i64,
        page_bytes: usize,
        cancel: CancellationToken,
    ) -> Self {
        // Subscribe before reading the store, so nothing committed in between is missed.
        let rx = engine.hub().subscribe(gid);
        Self {
            engine,
            gid,
            seen: after,
            emitted: after,
            rx,
            pending: VecDeque::new(),
            page_bytes,
            phase: Phase::CatchUp,
            cancel,
        }
    }

    async fn next(&mut self) -> Option<StreamMsg> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.emitted = item.cursor;
                return Some(StreamMsg::Item(item));
            }
            match self.phase {
                Phase::Done => return None,
                Phase::CatchUp => {
                    let key = match self.engine.group(&self.gid) {
                        Ok(g) => g.key.clone(),
                        Err(e) => {
                            self.phase = Phase::Done;
                            return Some(StreamMsg::Error(e.to_string()));
                        }
                    };
                    let page = match self
                        .engine
                        .store()
                        .list_trx_within(self.gid, self.seen, PAGE, self.page_bytes)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            self.phase = Phase::Done;
                            return Some(StreamMsg::Error(e.to_string()));
                        }
                    };
                    // A page cut short by the byte budget is not the end: read on.
                    if !page.more {
                        self.phase = Phase::Live;
                    }
                    let rows = page.rows;
                    if let Some(last) = rows.last() {
                        self.seen = last.seq;
                    }
                    for r in rows
                        .into_iter()
                        .filter(|r| r.trx.body.kind == TrxKind::Post)
                    {
                        let payload = open_post(&r.trx, key.as_ref());
                        self.pending.push_back(FeedItem::from_view(&ItemView::new(
                            r.seq, r.height, &r.trx, payload,
                        )));
                    }
                }
                Phase::Live => {
                    let received = tokio::select! {
                        _ = self.cancel.cancelled() => return None,
                        r = self.rx.recv() => r,
                    };
                    match received {
                        Ok(batch) => {
                            let last = batch.items.last().map_or(batch.prev, |i| i.cursor);
                            if batch.prev > self.seen {
                                // Something between what we saw and this batch: read the store.
                                self.phase = Phase::CatchUp;
                                continue;
                            }
                            self.pending.extend(
                                batch.items.iter().filter(|i| i.cursor > self.seen).cloned(),
                            );
                            self.seen = self.seen.max(last);
                        }
                        Err(RecvError::Lagged(_)) => {
                            self.phase = Phase::Done;
                            return Some(StreamMsg::Resume {
                                after: self.emitted,
                                reason: "the client fell too far behind; resume from this cursor",
                            });
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        }
    }
}

/// A stream of messages for one group after `after`, ending on shutdown.
pub fn subscribe(
    engine: Arc<Engine>,
    gid: GroupId,
    after: i64,
    cancel: CancellationToken,
) -> BoxStream<'static, StreamMsg> {
    let page_bytes = super::ApiLimits::default().page_bytes;
    subscribe_within(engine, gid, after, page_bytes, cancel)
}

/// [`subscribe`] whose catch-up batches stay within about `page_bytes`.
pub fn subscribe_within(
    engine: Arc<Engine>,
    gid: GroupId,
    after: i64,
    page_bytes: usize,
    cancel: CancellationToken,
) -> BoxStream<'static, StreamMsg> {
    let sub = Subscription::new(engine, gid, after, page_bytes, cancel);
    futures::stream::unfold(sub, |mut s| async move { s.next().await.map(|m| (m, s)) }).boxed()
}

fn parse_cursor(s: &str) -> ApiResult<i64> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| ApiError::bad_request("invalid_cursor", format!("{s:?} is not a cursor")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Resume after this cursor (`Last-Event-ID` takes precedence).
    after: Option<String>,
}

/// Server-Sent Events of a group's items; each event id is the item's cursor.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}/stream",
    tag = "stream",
    params(("group_id" = String, Path, description = "group id (hex)"), StreamParams,
           ("Last-Event-ID" = Option<String>, Header, description = "resume after this cursor")),
    responses(
        (status = 200, description = "`text/event-stream`: `data:` is an item (JSON), `id:` its cursor; \
            `event: resume` with `{\"after\": cursor}` when the client must reconnect; comments every 15 s",
         content_type = "text/event-stream", body = String),
        (status = 404, body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn sse(
    State(st): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    Query(p): Query<StreamParams>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let gid = parse_group_id(&id)?;
    st.engine.group(&gid)?;
    let after = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(h) => parse_cursor(h)?,
        None => p
            .after
            .as_deref()
            .map(parse_cursor)
            .transpose()?
            .unwrap_or(0),
    };
    let guard = st.engine.metrics().stream_client("sse");
    let page_bytes = st.limits.page_bytes;
    let stream = subscribe_within(st.engine.clone(), gid, after, page_bytes, st.cancel.clone());
    // Revoking the token ends the stream (the response body ends, so the client sees it).
    let stream = stream.take_until(principal.revoked.clone().cancelled_owned());
    let stream = stream.map(move |msg| {
        let _held = &guard;
        Ok(match msg {
            StreamMsg::Item(i) => Event::default().id(i.cursor.to_string()).data(&*i.json),
            StreamMsg::Resume { after, reason } => Event::default()
                .event("resume")
                .data(json!({"after": after.to_string(), "reason": reason}).to_string()),
            StreamMsg::Error(e) => Event::default()
                .event("error")
                .data(json!({"error": {"code": "stream_failed", "message": e}}).to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMsg {
    Subscribe {
        group_id: String,
        after: Option<String>,
    },
    Unsubscribe {
        group_id: String,
    },
    Ping,
}

/// WebSocket: `{"type":"subscribe","group_id","after"}` / `unsubscribe` / `ping`; the server
/// sends `subscribed`, `item` (with the item as in the posts listing), `resume`, `unsubscribed`,
/// `error`, `pong`.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "stream",
    responses((status = 101, description = "WebSocket upgrade; see docs/API.md for the messages")),
    security(("bearer" = []))
)]
pub async fn ws(
    State(st): State<ApiState>,
    Extension(principal): Extension<Arc<Principal>>,
    permit: Option<Extension<super::server::ConnectionPermit>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max = st.limits.ws_max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            // The socket keeps its place under the connection cap while it lives.
            let _permit = permit;
            ws_session(st, principal, socket).await
        })
}

fn ws_error(code: &str, message: impl Into<String>) -> Message {
    Message::Text(
        json!({"type": "error", "error": {"code": code, "message": message.into()}})
            .to_string()
            .into(),
    )
}

/// A close frame: 1008 (policy violation) for a revoked token, 1001 (going away) otherwise.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn ws_session(st: ApiState, principal: Arc<Principal>, mut socket: WebSocket) {
    let _guard = st.engine.metrics().stream_client("ws");
    let mut subs: StreamMap<GroupId, BoxStream<'static, StreamMsg>> = StreamMap::new();
    let idle = st.limits.ws_idle_timeout;
    // Pings at half the idle timeout; any frame from the client (a pong too) counts as life.
    let mut ping = tokio::time::interval(idle / 2);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let out = tokio::select! {
            _ = st.cancel.cancelled() => {
                let _ = socket.send(close(1001, "the node is shutting down")).await;
                return;
            }
            _ = principal.revoked.cancelled() => {
                let _ = socket.send(close(1008, "the token was revoked")).await;
                return;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle {
                    let _ = socket.send(close(1001, "idle: nothing received within api.ws_idle_timeout_ms")).await;
                    return;
                }
                Some(Message::Ping(Vec::new().into()))
            }
            incoming = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => handle_client(&st, &mut subs, &text),
                    Some(Ok(Message::Ping(p))) => Some(Message::Pong(p)),
                    Some(Ok(Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(e)) => {
                        // Over the message limit, or a broken connection.
                        tracing::debug!(error = %e, "WebSocket closed");
                        let _ = socket.send(close(1009, "message too large or malformed")).await;
                        return;
                    }
                    Some(Ok(_)) => Some(ws_error("unsupported_frame", "send JSON text frames")),
                }
            },
            Some((gid, msg)) = subs.next(), if !subs.is_empty() => Some(match msg {
                StreamMsg::Item(i) => Message::Text(format!(r#"{{"type":"item","item":{}}}"#, i.json).into()),
                StreamMsg::Resume { after, reason } => {
                    subs.remove(&gid);
                    Message::Text(json!({"type": "resume", "group_id": gid.to_hex(),
                        "after": after.to_string(), "reason": reason}).to_string().into())
                }
                StreamMsg::Error(e) => {
                    subs.remove(&gid);
                    ws_error("stream_failed", e)
                }
            }),
        };
        if let Some(m) = out {
            if socket.send(m).await.is_err() {
                return;
            }
        }
    }
}

fn handle_client(
    st: &ApiState,
    subs: &mut StreamMap<GroupId, BoxStream<'static, StreamMsg>>,
    text: &str,
) -> Option<Message> {
    let msg: ClientMsg = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return Some(ws_error("invalid_message", e.to_string())),
    };
    Some(match msg {
        ClientMsg::Ping => Message::Text(r#"{"type":"pong"}"#.into()),
        ClientMsg::Subscribe { group_id, after } => {
            let gid = match parse_group_id(&group_id) {
                Ok(g) => g,
                Err(e) => return Some(ws_error(e.code, e.message)),
            };
            if let Err(e) = st.engine.group(&gid) {
                return Some(ws_error("unknown_group", e.to_string()));
            }
            let after = match after.as_deref().map(parse_cursor).transpose() {
                Ok(a) => a.unwrap_or(0),
                Err(e) => return Some(ws_error(e.code, e.message)),
            };
            subs.insert(
                gid,
                subscribe_within(
                    st.engine.clone(),
                    gid,
                    after,
                    st.limits.page_bytes,
                    st.cancel.clone(),
                ),
            );
            Message::Text(
                json!({"type": "subscribed", "group_id": gid.to_hex(), "after": after.to_string()})
                    .to_string()
                    .into(),
            )
        }
        ClientMsg::Unsubscribe { group_id } => {
            if let Some(gid) = GroupId::from_hex(&group_id) {
                subs.remove(&gid);
            }
            Message::Text(
                json!({"type": "unsubscribed", "group_id": group_id})
                    .to_string()
                    .into(),
            )
        }
    })
}
