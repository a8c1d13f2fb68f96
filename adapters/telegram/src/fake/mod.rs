//! A fake Telegram Bot API server (feature `fake`) that speaks the real protocol on
//! `127.0.0.1:0`: case-insensitive `/bot<token>/<method>` routes taking query strings, JSON,
//! form-urlencoded and multipart bodies; `getUpdates` with offset confirmation and long polls that
//! wake on new updates (and a 409 for the older of two pollers, or while a webhook is set),
//! update ids that restart lower (as after a week without updates), `deleteWebhook` with
//! `drop_pending_updates`; sends, edits, deletes, `getFile`
//! and `/file/bot<token>/<path>`; error bodies shaped like the fixtures in
//! `shared/fixtures/telegram` (HTTP status = `error_code`, `Retry-After` on 429).
//!
//! Tests inject inbound traffic (texts with entities, photos, edits, service messages, raw
//! updates), inject faults (429 storms, 5xx, 409, dropped connections, chat not found, bot kicked,
//! migration), read every call back, and ask whether the pacing limits were ever exceeded.

mod html;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumgate_gateway::conformance::{ConformanceInjector, ConformanceObserver, ObservedMessage};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::convert::ChatTarget;
use crate::pacing::{is_group, PacingLimits, Window};

pub use html::parse as parse_html;

/// A token shaped like a real one, for tests.
pub const TOKEN: &str = "7412345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
/// The fake bot's user id (the token's prefix), as in the fixtures.
pub const BOT_ID: i64 = 7412345678;
/// The user that injected messages come from unless a test says otherwise.
pub const ALICE: i64 = 5012345678;

/// The methods that post or change a message, which the pacing limits cover.
pub const PACED_METHODS: [&str; 4] = [
    "sendmessage",
    "sendphoto",
    "editmessagetext",
    "editmessagecaption",
];

/// A failure the server answers instead of doing the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `parameters.retry_after` and a `Retry-After` header.
    RetryAfter(u32),
    /// A 5xx with Telegram's JSON error body.
    ServerError(u16),
    /// 409 "terminated by other getUpdates request".
    Conflict,
    /// The connection is cut before any answer (nothing is done).
    DropConnection,
    /// 400 "chat not found".
    ChatNotFound,
    /// 403 "bot was kicked".
    BotKicked,
    /// 400 with `parameters.migrate_to_chat_id`.
    MigrateTo(i64),
    /// 401 "Unauthorized".
    Unauthorized,
}

#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<String>,
    chat: Option<i64>,
    fault: Fault,
    times: usize,
}

#[derive(Debug)]
struct Storm {
    probability: f64,
    retry_after: RangeInclusive<u32>,
    rng: StdRng,
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Lower-cased method name.
    pub method: String,
    /// Parameters from the query string and body; uploaded files as `{"file": name, "bytes": n}`.
    pub params: Map<String, Value>,
    /// The `chat_id` parameter, when numeric.
    pub chat: Option<i64>,
    /// When the request arrived (tokio clock).
    pub at: Instant,
    /// The HTTP status answered (0 for a dropped connection).
    pub status: u16,
}

/// A message as the fake server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub message_id: i64,
    pub thread: Option<i64>,
    /// Sent by the bot (through the API) rather than injected as a user's.
    pub from_bot: bool,
    /// The text (or caption) after parsing the markup.
    pub text: String,
    pub entities: Vec<Value>,
    /// The markup as sent, for `parse_mode=HTML` requests.
    pub html: Option<String>,
    pub reply_to: Option<i64>,
    /// The uploaded photo's bytes.
    pub photo: Option<Vec<u8>>,
    pub edited: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChatState {
    Active,
    Kicked,
    Gone,
    MigratedTo(i64),
}

#[derive(Debug, Clone)]
struct FakeChat {
    id: i64,
    title: String,
    state: ChatState,
    messages: Vec<FakeMessage>,
    next_id: i64,
}

impl FakeChat {
    fn new(id: i64) -> Self {
        Self {
            id,
            title: format!("Chat {id}"),
            state: ChatState::Active,
            messages: Vec::new(),
            next_id: 1000,
        }
    }

    fn kind(&self) -> &'static str {
        let s = self.id.to_string();
        if self.id > 0 {
            "private"
        } else if s.starts_with("-100") && s.len() > 10 {
            "supergroup"
        } else {
            "group"
        }
    }

    fn json(&self) -> Value {
        if self.id > 0 {
            json!({"id": self.id, "first_name": self.title, "type": "private"})
        } else {
            json!({"id": self.id, "title": self.title, "type": self.kind()})
        }
    }

    fn message(&mut self, id: i64) -> Option<&mut FakeMessage> {
        self.messages
            .iter_mut()
            .find(|m| m.message_id == id && !m.deleted)
    }
}

#[derive(Debug, Clone)]
struct FakeFile {
    unique_id: String,
    path: String,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct State {
    can_read_all_group_messages: bool,
    auto_create_chats: bool,
    chats: BTreeMap<i64, FakeChat>,
    updates: VecDeque<(i64, Value)>,
    next_update_id: i64,
    /// Every update below this id is confirmed (forgotten).
    confirmed_below: i64,
    poll_generation: u64,
    webhook: Option<String>,
    files: HashMap<String, FakeFile>,
    next_file: u64,
    calls: Vec<Call>,
    faults: Vec<FaultRule>,
    storm: Option<Storm>,
}

struct Shared {
    token: String,
    state: Mutex<State>,
    /// Woken when updates are added or a newer poller arrives.
    updates_changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake server; it stops when dropped.
pub struct FakeBotApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeBotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBotApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// An error answer, shaped like Telegram's.
#[derive(Debug, Clone)]
struct ApiError {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

impl ApiError {
    fn new(code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            parameters: None,
        }
    }

    fn bad(description: &str) -> Self {
        Self::new(400, format!("Bad Request: {description}"))
    }

    fn retry_after(secs: u32) -> Self {
        Self {
            code: 429,
            description: format!("Too Many Requests: retry after {secs}"),
            parameters: Some(json!({ "retry_after": secs })),
        }
    }

    fn migrate(to: i64) -> Self {
        Self {
            code: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
            parameters: Some(json!({ "migrate_to_chat_id": to })),
        }
    }

    fn kicked(kind: &str) -> Self {
        let what = match kind {
            "supergroup" => "the supergroup chat",
            "channel" => "the channel chat",
            _ => "the group chat",
        };
        Self::new(403, format!("Forbidden: bot was kicked from {what}"))
    }

    fn conflict() -> Self {
        Self::new(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
    }

    fn server(code: u16) -> Self {
        let text = match code {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        };
        Self::new(code, text)
    }

    fn into_response(self) -> Response {
        let mut body = json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let Some(p) = &self.parameters {
            body["parameters"] = p.clone();
        }
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self
            .parameters
            .as_ref()
            .and_then(|p| p["retry_after"].as_u64())
        {
            if let Ok(v) = secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// What a method handler answers.
enum Answer {
    Ok(Value),
    Err(ApiError),
    Drop,
}

impl From<Result<Value, ApiError>> for Answer {
    fn from(r: Result<Value, ApiError>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Err(e),
        }
    }
}

impl FakeBotApi {
    /// Starts a server for [`TOKEN`] on `127.0.0.1:0`.
    pub async fn start() -> Self {
        Self::start_with_token(TOKEN).await
    }

    pub async fn start_with_token(token: &str) -> Self {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State {
                can_read_all_group_messages: true,
                auto_create_chats: true,
                chats: BTreeMap::new(),
                updates: VecDeque::new(),
                next_update_id: 318_000_001,
                confirmed_below: 0,
                poll_generation: 0,
                webhook: None,
                files: HashMap::new(),
                next_file: 1,
                calls: Vec::new(),
                faults: Vec::new(),
                storm: None,
            }),
            updates_changed: Notify::new(),
        });
        let app = Router::new()
            .route("/file/{bot}/{*path}", get(file_handler))
            .route("/{bot}/{method}", any(method_handler))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Bot API to 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, addr, task }
    }

    /// The base URL to give the client as `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A gateway config pointing at this server.
    pub fn config(&self) -> crate::TelegramConfig {
        crate::TelegramConfig::with_token(self.token()).api_url(self.url())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    // ---- set-up ----

    /// Privacy mode on means `getMe` says `can_read_all_group_messages: false`.
    pub fn set_privacy_mode(&self, on: bool) {
        self.state().can_read_all_group_messages = !on;
    }

    /// Whether sends to unknown chats create them (default) or answer "chat not found".
    pub fn set_auto_create_chats(&self, on: bool) {
        self.state().auto_create_chats = on;
    }

    /// Creates (or revives) a chat with a title.
    pub fn add_chat(&self, chat: i64, title: &str) {
        let mut state = self.state();
        let c = state
            .chats
            .entry(chat)
            .or_insert_with(|| FakeChat::new(chat));
        c.title = title.to_owned();
        c.state = ChatState::Active;
    }

    /// The chat no longer exists for the bot: sends answer 400 "chat not found".
    pub fn remove_chat(&self, chat: i64) {
        self.state()
            .chats
            .entry(chat)
            .or_insert_with(|| FakeChat::new(chat))
            .state = ChatState::Gone;
    }

    /// Someone removes the bot from `chat`: sends answer 403 and a `my_chat_member` update says
    /// so.
    pub fn kick_bot(&self, chat: i64) {
        let update = {
            let mut state = self.state();
            let c = state
                .chats
                .entry(chat)
                .or_insert_with(|| FakeChat::new(chat));
            c.state = ChatState::Kicked;
            json!({
                "my_chat_member": {
                    "chat": c.json(),
                    "from": user_json(ALICE, "Alice"),
                    "date": now_unix(),
                    "old_chat_member": {"user": bot_json(), "status": "member"},
                    "new_chat_member": {"user": bot_json(), "status": "kicked", "until_date": 0}
                }
            })
        };
        self.push_update(update);
    }

    /// Upgrades group `old` to supergroup `new`: sends to `old` answer 400 with
    /// `migrate_to_chat_id`, and the two service messages arrive as updates.
    pub fn migrate_chat(&self, old: i64, new: i64) {
        let (from_old, from_new) = {
            let mut state = self.state();
            let title = state
                .chats
                .get(&old)
                .map(|c| c.title.clone())
                .unwrap_or_else(|| format!("Chat {old}"));
            let old_chat = state.chats.entry(old).or_insert_with(|| FakeChat::new(old));
            old_chat.state = ChatState::MigratedTo(new);
            old_chat.next_id += 1;
            let old_msg = json!({
                "message_id": old_chat.next_id,
                "from": user_json(ALICE, "Alice"),
                "chat": old_chat.json(),
                "date": now_unix(),
                "migrate_to_chat_id": new,
            });
            let new_chat = state.chats.entry(new).or_insert_with(|| FakeChat::new(new));
            new_chat.title = title;
            new_chat.state = ChatState::Active;
            let new_msg = json!({
                "message_id": 1,
                "from": user_json(ALICE, "Alice"),
                "chat": new_chat.json(),
                "date": now_unix(),
                "migrate_from_chat_id": old,
            });
            (old_msg, new_msg)
        };
        self.push_update(json!({ "message": from_old }));
        self.push_update(json!({ "message": from_new }));
    }

    /// A webhook is set: `getUpdates` answers 409 until [`FakeBotApi::clear_webhook`].
    pub fn set_webhook_active(&self, url: &str) {
        self.state().webhook = Some(url.to_owned());
    }

    pub fn clear_webhook(&self) {
        self.state().webhook = None;
    }

    pub fn webhook(&self) -> Option<String> {
        self.state().webhook.clone()
    }

    /// Restarts the update ids as Telegram does after a week without updates: the next update
    /// gets `next` as its id, which may be below every id seen before. As on the real server, an
    /// offset beyond the new ids then no longer confirms anything and `getUpdates` answers from
    /// the head of the queue. Call it while nothing is pending (the real reset needs an empty
    /// queue).
    pub fn restart_update_ids(&self, next: i64) {
        let mut state = self.state();
        let below = state.confirmed_below;
        assert!(
            state.updates.iter().all(|(id, _)| *id < below),
            "update ids restart only when no update is pending"
        );
        state.updates.clear();
        state.next_update_id = next;
        state.confirmed_below = next;
    }

    // ---- faults ----

    /// Answers the next `times` calls matching `method` (any if `None`, case-insensitive) and
    /// `chat` (any if `None`) with `fault`.
    pub fn inject_fault(
        &self,
        method: Option<&str>,
        chat: Option<i64>,
        fault: Fault,
        times: usize,
    ) {
        self.state().faults.push(FaultRule {
            method: method.map(str::to_ascii_lowercase),
            chat,
            fault,
            times,
        });
    }

    /// Answers each paced call (see [`PACED_METHODS`]) with a 429 with `probability`, with a
    /// `retry_after` drawn from `retry_after`; seeded, so runs repeat.
    pub fn set_429_storm(&self, probability: f64, retry_after: RangeInclusive<u32>, seed: u64) {
        self.state().storm = Some(Storm {
            probability,
            retry_after,
            rng: StdRng::seed_from_u64(seed),
        });
    }

    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.storm = None;
    }

    // ---- inbound ----

    /// Queues a raw update (an `update_id` is assigned) and wakes long polls; returns its id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut state = self.state();
            let id = state.next_update_id;
            state.next_update_id += 1;
            if let Some(obj) = update.as_object_mut() {
                obj.insert("update_id".into(), json!(id));
            }
            state.updates.push_back((id, update));
            id
        };
        self.shared.updates_changed.notify_waiters();
        id
    }

    /// A user's text message in `chat` (`"-100…"` or `"-100…/<topic>"`); returns its message id.
    pub fn inject_text(&self, chat: &str, text: &str) -> i64 {
        self.inject_message(chat, Incoming::text(text))
    }

    /// A user's message built from `incoming`; returns its message id.
    pub fn inject_message(&self, chat: &str, incoming: Incoming) -> i64 {
        let target: ChatTarget = chat.parse().unwrap_or(ChatTarget::new(-1));
        let (message, id) = {
            let mut state = self.state();
            let photo_sizes = incoming.photo.as_ref().map(|bytes| {
                // A small and the full size, smallest first like Telegram.
                let small = bytes[..bytes.len().div_ceil(8)].to_vec();
                vec![
                    state.add_file(small, 90, 60),
                    state.add_file(bytes.clone(), 1280, 960),
                ]
            });
            let document = incoming.document.as_ref().map(|(name, bytes)| {
                let size = state.add_file(bytes.clone(), 0, 0);
                json!({
                    "file_id": size["file_id"],
                    "file_unique_id": size["file_unique_id"],
                    "file_name": name,
                    "mime_type": "application/pdf",
                    "file_size": bytes.len(),
                })
            });
            let c = state
                .chats
                .entry(target.chat)
                .or_insert_with(|| FakeChat::new(target.chat));
            c.next_id += 1;
            let id = c.next_id;
            let (from_id, from_name) = incoming.from.clone().unwrap_or((ALICE, "Alice".into()));
            let mut m = json!({
                "message_id": id,
                "from": user_json(from_id, &from_name),
                "chat": c.json(),
                "date": now_unix(),
            });
            if let Some(thread) = target.thread {
                m["message_thread_id"] = json!(thread);
                m["is_topic_message"] = json!(true);
                m["chat"]["is_forum"] = json!(true);
            }
            let text_key = if photo_sizes.is_some() || document.is_some() {
                ("caption", "caption_entities")
            } else {
                ("text", "entities")
            };
            if let Some(text) = &incoming.text {
                m[text_key.0] = json!(text);
                if !incoming.entities.is_empty() {
                    m[text_key.1] = json!(incoming.entities);
                }
            }
            if let Some(sizes) = photo_sizes {
                m["photo"] = json!(sizes);
            }
            if let Some(d) = document {
                m["document"] = d;
            }
            if let Some(reply) = incoming.reply_to {
                if let Some(target_msg) = c.messages.iter().find(|x| x.message_id == reply) {
                    m["reply_to_message"] = json!({
                        "message_id": reply,
                        "chat": c.json(),
                        "date": now_unix(),
                        "from": if target_msg.from_bot { bot_json() } else { user_json(ALICE, "Alice") },
                        "text": target_msg.text,
                    });
                } else {
                    m["reply_to_message"] =
                        json!({"message_id": reply, "chat": c.json(), "date": now_unix()});
                }
            }
            c.messages.push(FakeMessage {
                message_id: id,
                thread: target.thread,
                from_bot: false,
                text: incoming.text.clone().unwrap_or_default(),
                entities: incoming.entities.clone(),
                html: None,
                reply_to: incoming.reply_to,
                photo: incoming.photo.clone(),
                edited: false,
                deleted: false,
            });
            (m, id)
        };
        let key = if target.chat < 0 && is_channel(target.chat, &message) {
            "channel_post"
        } else {
            "message"
        };
        self.push_update(json!({ key: message }));
        id
    }

    /// A user edits their message `message_id` in `chat` to `text`; returns the update id.
    pub fn inject_edit(&self, chat: &str, message_id: i64, text: &str) -> i64 {
        let target: ChatTarget = chat.parse().unwrap_or(ChatTarget::new(-1));
        let message = {
            let mut state = self.state();
            let c = state
                .chats
                .entry(target.chat)
                .or_insert_with(|| FakeChat::new(target.chat));
            let chat_json = c.json();
            if let Some(m) = c.message(message_id) {
                m.text = text.to_owned();
                m.edited = true;
            }
            let mut m = json!({
                "message_id": message_id,
                "from": user_json(ALICE, "Alice"),
                "chat": chat_json,
                "date": now_unix() - 60,
                "edit_date": now_unix(),
                "text": text,
            });
            if let Some(thread) = target.thread {
                m["message_thread_id"] = json!(thread);
                m["is_topic_message"] = json!(true);
            }
            m
        };
        self.push_update(json!({ "edited_message": message }))
    }

    /// Updates not yet confirmed by a `getUpdates` offset.
    pub fn pending_updates(&self) -> Vec<i64> {
        let state = self.state();
        state
            .updates
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id >= state.confirmed_below)
            .collect()
    }

    /// Every update below this id has been confirmed.
    pub fn confirmed_below(&self) -> i64 {
        self.state().confirmed_below
    }

    // ---- observation ----

    /// Every message in `chat`, in the order received, deleted ones included.
    pub fn messages(&self, chat: i64) -> Vec<FakeMessage> {
        self.state()
            .chats
            .get(&chat)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// Messages the bot sent to `chat` and that are still visible.
    pub fn visible_bot_messages(&self, chat: i64) -> Vec<FakeMessage> {
        self.messages(chat)
            .into_iter()
            .filter(|m| m.from_bot && !m.deleted)
            .collect()
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls to `method` (case-insensitive).
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Every breach of `limits` in the paced calls received so far (429-answered and dropped
    /// ones included), described; empty when the client kept to them.
    pub fn pacing_violations(&self, limits: &PacingLimits) -> Vec<String> {
        let calls: Vec<(i64, Instant)> = self
            .state()
            .calls
            .iter()
            .filter(|c| PACED_METHODS.contains(&c.method.as_str()))
            .filter_map(|c| c.chat.map(|chat| (chat, c.at)))
            .collect();
        let mut violations = Vec::new();
        let mut per_chat: BTreeMap<i64, Vec<Instant>> = BTreeMap::new();
        for (chat, at) in &calls {
            per_chat.entry(*chat).or_default().push(*at);
        }
        for (chat, times) in &per_chat {
            violations.extend(window_violations(
                times,
                limits.per_chat,
                &format!("chat {chat}"),
            ));
            if is_group(*chat) {
                violations.extend(window_violations(
                    times,
                    limits.per_group,
                    &format!("group {chat}"),
                ));
            }
        }
        let all: Vec<Instant> = calls.iter().map(|(_, at)| *at).collect();
        violations.extend(window_violations(&all, limits.overall, "all chats"));
        violations
    }
}

/// Whether more than `w.max` of `times` fall within less than `w.per`.
fn window_violations(times: &[Instant], w: Window, scope: &str) -> Vec<String> {
    let mut times = times.to_vec();
    times.sort();
    let n = w.max.max(1);
    times
        .windows(n + 1)
        .filter(|win| win[n].duration_since(win[0]) < w.per)
        .map(|win| {
            format!(
                "{scope}: {} messages within {:?} (limit {} per {:?})",
                n + 1,
                win[n].duration_since(win[0]),
                w.max,
                w.per
            )
        })
        .collect()
}

fn is_channel(_chat: i64, message: &Value) -> bool {
    message["chat"]["type"] == "channel"
}

/// A message a user writes, for [`FakeBotApi::inject_message`].
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    pub text: Option<String>,
    /// Telegram entities (`{"type","offset","length",…}`, UTF-16 offsets).
    pub entities: Vec<Value>,
    pub photo: Option<Vec<u8>>,
    /// A document: file name and bytes.
    pub document: Option<(String, Vec<u8>)>,
    pub reply_to: Option<i64>,
    /// Sender id and first name; Alice by default.
    pub from: Option<(i64, String)>,
}

impl Incoming {
    pub fn text(text: &str) -> Self {
        Self {
            text: Some(text.to_owned()),
            ..Self::default()
        }
    }

    pub fn entities(mut self, entities: Vec<Value>) -> Self {
        self.entities = entities;
        self
    }

    pub fn photo(bytes: Vec<u8>, caption: Option<&str>) -> Self {
        Self {
            text: caption.map(str::to_owned),
            photo: Some(bytes),
            ..Self::default()
        }
    }

    pub fn document(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            document: Some((name.to_owned(), bytes)),
            ..Self::default()
        }
    }

    pub fn reply_to(mut self, message_id: i64) -> Self {
        self.reply_to = Some(message_id);
        self
    }

    pub fn from(mut self, id: i64, first_name: &str) -> Self {
        self.from = Some((id, first_name.to_owned()));
        self
    }
}

impl State {
    /// Registers a file and returns its PhotoSize JSON.
    fn add_file(&mut self, bytes: Vec<u8>, width: u32, height: u32) -> Value {
        let n = self.next_file;
        self.next_file += 1;
        let file_id = format!("AgACAgQAAxkBAAI{n:06}fake");
        let unique_id = format!("AQAD{n:06}");
        let size = bytes.len();
        self.files.insert(
            file_id.clone(),
            FakeFile {
                unique_id: unique_id.clone(),
                path: format!("photos/file_{n}.jpg"),
                bytes,
            },
        );
        json!({
            "file_id": file_id,
            "file_unique_id": unique_id,
            "file_size": size,
            "width": width,
            "height": height,
        })
    }

    /// The chat for a send, or the error Telegram gives for it.
    fn writable_chat(&mut self, chat: i64) -> Result<&mut FakeChat, ApiError> {
        if !self.chats.contains_key(&chat) {
            if !self.auto_create_chats {
                return Err(ApiError::bad("chat not found"));
            }
            self.chats.insert(chat, FakeChat::new(chat));
        }
        let c = self
            .chats
            .get_mut(&chat)
            .ok_or_else(|| ApiError::bad("chat not found"))?;
        match c.state {
            ChatState::Active => Ok(c),
            ChatState::Gone => Err(ApiError::bad("chat not found")),
            ChatState::Kicked => Err(ApiError::kicked(c.kind())),
            ChatState::MigratedTo(to) => Err(ApiError::migrate(to)),
        }
    }

    /// The first fault rule matching the call, used up by one.
    fn take_fault(&mut self, method: &str, chat: Option<i64>) -> Option<Fault> {
        let rule = self.faults.iter_mut().find(|r| {
            r.times > 0
                && r.method.as_deref().is_none_or(|m| m == method)
                && r.chat.is_none_or(|c| Some(c) == chat)
        })?;
        rule.times -= 1;
        let fault = rule.fault.clone();
        self.faults.retain(|r| r.times > 0);
        Some(fault)
    }

    fn storm_429(&mut self, method: &str) -> Option<u32> {
        if !PACED_METHODS.contains(&method) {
            return None;
        }
        let storm = self.storm.as_mut()?;
        if storm.rng.gen_bool(storm.probability.clamp(0.0, 1.0)) {
            let range = storm.retry_after.clone();
            Some(storm.rng.gen_range(range))
        } else {
            None
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn user_json(id: i64, first_name: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": first_name, "language_code": "en"})
}

fn bot_json() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Rumgate Test Bot", "username": "rumgate_test_bot"})
}

fn message_json(chat: &Value, m: &FakeMessage) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "from": bot_json(),
        "chat": chat,
        "date": now_unix(),
    });
    if let Some(thread) = m.thread {
        v["message_thread_id"] = json!(thread);
        v["is_topic_message"] = json!(true);
    }
    let (text_key, entities_key) = if m.photo.is_some() {
        ("caption", "caption_entities")
    } else {
        ("text", "entities")
    };
    if m.photo.is_some() {
        v["photo"] = json!([{
            "file_id": format!("AgACAgQAAxkBAAIsent{}", m.message_id),
            "file_unique_id": format!("AQADsent{}", m.message_id),
            "file_size": m.photo.as_ref().map_or(0, Vec::len),
            "width": 1280,
            "height": 960,
        }]);
    }
    if !m.text.is_empty() || m.photo.is_none() {
        v[text_key] = json!(m.text);
    }
    if !m.entities.is_empty() {
        v[entities_key] = json!(m.entities);
    }
    if m.edited {
        v["edit_date"] = json!(now_unix());
    }
    if let Some(r) = m.reply_to {
        v["reply_to_message"] = json!({"message_id": r, "chat": chat, "date": now_unix()});
    }
    v
}

// ---- HTTP ----

/// Parameters of one request, from the query string and the body, whatever its encoding.
struct Params {
    values: Map<String, Value>,
    files: HashMap<String, (String, Vec<u8>)>,
}

impl Params {
    fn str(&self, key: &str) -> Option<String> {
        match self.values.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn i64(&self, key: &str) -> Option<i64> {
        match self.values.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A Boolean parameter, sent as JSON or as `true`/`1` in a form (absent is false).
    fn bool(&self, key: &str) -> bool {
        match self.values.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.trim(), "true" | "True" | "1"),
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A JSON object parameter, sent as JSON or as a JSON-encoded string (forms, multipart).
    fn object(&self, key: &str) -> Option<Value> {
        match self.values.get(key)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            v @ (Value::Object(_) | Value::Array(_)) => Some(v.clone()),
            _ => None,
        }
    }

    /// An uploaded file: a multipart part named `key`, or `attach://<name>` pointing at one.
    fn file(&self, key: &str) -> Option<&(String, Vec<u8>)> {
        if let Some(f) = self.files.get(key) {
            return Some(f);
        }
        let name = self.str(key)?;
        self.files.get(name.strip_prefix("attach://")?)
    }
}

async fn read_params(req: Request) -> Result<Params, ApiError> {
    let mut values = Map::new();
    let mut files = HashMap::new();
    if let Some(q) = req.uri().query() {
        if let Ok(pairs) = serde_urlencoded_pairs(q) {
            for (k, v) in pairs {
                values.insert(k, Value::String(v));
            }
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad(&format!("can't parse multipart: {e}")))?;
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let data = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad(&format!("can't read multipart: {e}")))?;
            match file_name {
                Some(file_name) => {
                    values.insert(
                        name.clone(),
                        json!({"file": file_name, "bytes": data.len()}),
                    );
                    files.insert(name, (file_name, data.to_vec()));
                }
                None => {
                    values.insert(name, Value::String(String::from_utf8_lossy(&data).into()));
                }
            }
        }
    } else {
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .map_err(|e| ApiError::bad(&format!("can't read body: {e}")))?;
        if content_type.starts_with("application/json") && !body.is_empty() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(obj)) => values.extend(obj),
                _ => return Err(ApiError::bad("can't parse JSON object")),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let text = String::from_utf8_lossy(&body);
            let pairs =
                serde_urlencoded_pairs(&text).map_err(|_| ApiError::bad("can't parse form"))?;
            for (k, v) in pairs {
                values.insert(k, Value::String(v));
            }
        }
    }
    Ok(Params { values, files })
}

fn serde_urlencoded_pairs(s: &str) -> Result<Vec<(String, String)>, ()> {
    let uri: axum::http::Uri = format!("/?{s}").parse().map_err(drop)?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(drop)
}

async fn method_handler(
    AxState(shared): AxState<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    req: Request,
) -> Response {
    let at = Instant::now();
    let method = method.to_ascii_lowercase();
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        let e = if bot.starts_with("bot") {
            ApiError::new(401, "Unauthorized")
        } else {
            ApiError::new(404, "Not Found")
        };
        return e.into_response();
    }
    let params = match read_params(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let chat = params.i64("chat_id");
    let answer = {
        let mut state = shared.state();
        let fault = state
            .take_fault(&method, chat)
            .or_else(|| state.storm_429(&method).map(Fault::RetryAfter));
        match fault {
            Some(f) => fault_answer(&state, f, chat),
            None => None,
        }
    };
    let answer = match answer {
        Some(a) => a,
        None => dispatch(&shared, &method, &params).await,
    };
    let status = match &answer {
        Answer::Ok(_) => 200,
        Answer::Err(e) => e.code,
        Answer::Drop => 0,
    };
    shared.state().calls.push(Call {
        method,
        params: params.values,
        chat,
        at,
        status,
    });
    match answer {
        Answer::Ok(result) => axum::Json(json!({"ok": true, "result": result})).into_response(),
        Answer::Err(e) => e.into_response(),
        Answer::Drop => {
            // The headers go out, then the body breaks: the client sees the connection cut.
            let broken = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by fault injection",
                ))
            });
            Response::new(Body::from_stream(broken))
        }
    }
}

fn fault_answer(state: &State, fault: Fault, chat: Option<i64>) -> Option<Answer> {
    let kind = chat
        .and_then(|c| state.chats.get(&c))
        .map_or("supergroup", FakeChat::kind);
    Some(match fault {
        Fault::RetryAfter(s) => Answer::Err(ApiError::retry_after(s)),
        Fault::ServerError(code) => Answer::Err(ApiError::server(code)),
        Fault::Conflict => Answer::Err(ApiError::conflict()),
        Fault::DropConnection => Answer::Drop,
        Fault::ChatNotFound => Answer::Err(ApiError::bad("chat not found")),
        Fault::BotKicked => Answer::Err(ApiError::kicked(kind)),
        Fault::MigrateTo(to) => Answer::Err(ApiError::migrate(to)),
        Fault::Unauthorized => Answer::Err(ApiError::new(401, "Unauthorized")),
    })
}

async fn dispatch(shared: &Shared, method: &str, p: &Params) -> Answer {
    match method {
        "getme" => {
            let can_read = shared.state().can_read_all_group_messages;
            let mut me = bot_json();
            for (k, v) in [
                ("can_join_groups", true),
                ("can_read_all_group_messages", can_read),
                ("supports_inline_queries", false),
                ("supports_guest_queries", false),
                ("can_connect_to_business", false),
                ("has_main_web_app", false),
                ("has_topics_enabled", false),
                ("allows_users_to_create_topics", false),
                ("can_manage_bots", false),
                ("supports_join_request_queries", false),
            ] {
                me[k] = json!(v);
            }
            Answer::Ok(me)
        }
        "getupdates" => get_updates(shared, p).await,
        "sendmessage" => send_message(&mut shared.state(), p).into(),
        "sendphoto" => send_photo(&mut shared.state(), p).into(),
        "editmessagetext" => edit(&mut shared.state(), p, false).into(),
        "editmessagecaption" => edit(&mut shared.state(), p, true).into(),
        "deletemessage" => delete_message(&mut shared.state(), p).into(),
        "getfile" => get_file(&shared.state(), p).into(),
        "setwebhook" => {
            let url = p.str("url").unwrap_or_default();
            let mut state = shared.state();
            state.webhook = (!url.is_empty()).then_some(url);
            drop(state);
            // An active long poll is cut off with a conflict.
            shared.updates_changed.notify_waiters();
            Answer::Ok(json!(true))
        }
        "deletewebhook" => {
            let mut state = shared.state();
            state.webhook = None;
            if p.bool("drop_pending_updates") {
                state.confirmed_below = state.next_update_id;
                state.updates.clear();
            }
            Answer::Ok(json!(true))
        }
        _ => Answer::Err(ApiError::new(404, "Not Found: method not found")),
    }
}

async fn get_updates(shared: &Shared, p: &Params) -> Answer {
    let timeout = Duration::from_secs(p.i64("timeout").unwrap_or(0).clamp(0, 50) as u64);
    let limit = p.i64("limit").unwrap_or(100).clamp(1, 100) as usize;
    let allowed: Option<Vec<String>> = p
        .object("allowed_updates")
        .and_then(|v| serde_json::from_value(v).ok())
        .filter(|v: &Vec<String>| !v.is_empty());
    let generation = {
        let mut state = shared.state();
        if state.webhook.is_some() {
            return Answer::Err(ApiError::new(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"));
        }
        // An offset beyond the next id (after the ids restarted) is one the real server's queue
        // rejects: it then answers from the head, confirming nothing.
        let usable = |o: &i64| *o > 0 && *o <= state.next_update_id;
        if let Some(offset) = p.i64("offset").filter(usable) {
            state.confirmed_below = state.confirmed_below.max(offset);
            let below = state.confirmed_below;
            state.updates.retain(|(id, _)| *id >= below);
        }
        state.poll_generation += 1;
        state.poll_generation
    };
    // An older poller still waiting is terminated with a 409.
    shared.updates_changed.notify_waiters();
    let deadline = Instant::now() + timeout;
    loop {
        let notified = shared.updates_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = shared.state();
            if state.poll_generation != generation {
                return Answer::Err(ApiError::conflict());
            }
            if state.webhook.is_some() {
                return Answer::Err(ApiError::new(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"));
            }
            let ready: Vec<Value> = state
                .updates
                .iter()
                .filter(|(_, u)| {
                    allowed.as_ref().is_none_or(|allowed| {
                        u.as_object()
                            .is_some_and(|o| o.keys().any(|k| allowed.contains(k)))
                    })
                })
                .take(limit)
                .map(|(_, u)| u.clone())
                .collect();
            if !ready.is_empty() || Instant::now() >= deadline {
                return Answer::Ok(Value::Array(ready));
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Parses the text of a send or edit as its `parse_mode` says.
fn parse_text(
    p: &Params,
    key: &str,
    entities_key: &str,
) -> Result<(String, Vec<Value>, Option<String>), ApiError> {
    let raw = p.str(key).unwrap_or_default();
    match p
        .str("parse_mode")
        .map(|m| m.to_ascii_lowercase())
        .as_deref()
    {
        Some("html") => {
            let (text, entities) = html::parse(&raw).map_err(|e| ApiError::new(400, e))?;
            Ok((text, entities, Some(raw)))
        }
        Some("markdownv2") | Some("markdown") => {
            Err(ApiError::bad("the fake Bot API only parses HTML"))
        }
        _ => {
            let entities = p
                .object(entities_key)
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            Ok((raw, entities, None))
        }
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn reply_target(c: &FakeChat, p: &Params) -> Result<Option<i64>, ApiError> {
    let (id, allow) = match p.object("reply_parameters") {
        Some(r) => (
            r["message_id"].as_i64(),
            r["allow_sending_without_reply"].as_bool().unwrap_or(false),
        ),
        None => (p.i64("reply_to_message_id"), false),
    };
    let Some(id) = id else { return Ok(None) };
    let exists = c.messages.iter().any(|m| m.message_id == id && !m.deleted);
    match (exists, allow) {
        (true, _) => Ok(Some(id)),
        (false, true) => Ok(None),
        (false, false) => Err(ApiError::bad("message to be replied not found")),
    }
}

fn send_message(state: &mut State, p: &Params) -> Result<Value, ApiError> {
    let chat = p
        .i64("chat_id")
        .ok_or_else(|| ApiError::bad("chat_id is empty"))?;
    let (text, entities, html) = parse_text(p, "text", "entities")?;
    if text.trim().is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    if utf16_len(&text) > 4096 {
        return Err(ApiError::bad("message is too long"));
    }
    push_bot_message(state, p, chat, (text, entities, html), None)
}

fn send_photo(state: &mut State, p: &Params) -> Result<Value, ApiError> {
    let chat = p
        .i64("chat_id")
        .ok_or_else(|| ApiError::bad("chat_id is empty"))?;
    let Some((_, bytes)) = p.file("photo").cloned() else {
        return Err(ApiError::bad("there is no photo in the request"));
    };
    if bytes.is_empty() {
        return Err(ApiError::bad("IMAGE_PROCESS_FAILED"));
    }
    let (text, entities, html) = parse_text(p, "caption", "caption_entities")?;
    if utf16_len(&text) > 1024 {
        return Err(ApiError::bad("message caption is too long"));
    }
    push_bot_message(state, p, chat, (text, entities, html), Some(bytes))
}

/// Stores a message the bot sent to `chat` (in `message_thread_id`, replying per the request)
/// and answers it as the Bot API does.
fn push_bot_message(
    state: &mut State,
    p: &Params,
    chat: i64,
    (text, entities, html): (String, Vec<Value>, Option<String>),
    photo: Option<Vec<u8>>,
) -> Result<Value, ApiError> {
    let thread = p.i64("message_thread_id");
    let c = state.writable_chat(chat)?;
    let reply_to = reply_target(c, p)?;
    c.next_id += 1;
    let m = FakeMessage {
        message_id: c.next_id,
        thread,
        from_bot: true,
        text,
        entities,
        html,
        reply_to,
        photo,
        edited: false,
        deleted: false,
    };
    let v = message_json(&c.json(), &m);
    c.messages.push(m);
    Ok(v)
}

fn edit(state: &mut State, p: &Params, caption: bool) -> Result<Value, ApiError> {
    let chat = p
        .i64("chat_id")
        .ok_or_else(|| ApiError::bad("chat_id is empty"))?;
    let id = p
        .i64("message_id")
        .ok_or_else(|| ApiError::bad("message identifier is not specified"))?;
    let (text, entities, html) = if caption {
        parse_text(p, "caption", "caption_entities")?
    } else {
        parse_text(p, "text", "entities")?
    };
    let limit = if caption { 1024 } else { 4096 };
    if !caption && text.trim().is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    if utf16_len(&text) > limit {
        return Err(ApiError::bad(if caption {
            "message caption is too long"
        } else {
            "MESSAGE_TOO_LONG"
        }));
    }
    let c = state.writable_chat(chat)?;
    let chat_json = c.json();
    let m = c
        .message(id)
        .ok_or_else(|| ApiError::bad("message to edit not found"))?;
    if !m.from_bot {
        return Err(ApiError::bad("message can't be edited"));
    }
    match (caption, m.photo.is_some()) {
        (false, true) => return Err(ApiError::bad("there is no text in the message to edit")),
        (true, false) => return Err(ApiError::bad("there is no caption in the message to edit")),
        _ => {}
    }
    if m.text == text && m.entities == entities {
        return Err(ApiError::bad("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"));
    }
    m.text = text;
    m.entities = entities;
    m.html = html;
    m.edited = true;
    Ok(message_json(&chat_json, m))
}

fn delete_message(state: &mut State, p: &Params) -> Result<Value, ApiError> {
    let chat = p
        .i64("chat_id")
        .ok_or_else(|| ApiError::bad("chat_id is empty"))?;
    let id = p
        .i64("message_id")
        .ok_or_else(|| ApiError::bad("message identifier is not specified"))?;
    let c = state.writable_chat(chat)?;
    let m = c
        .message(id)
        .ok_or_else(|| ApiError::bad("message to delete not found"))?;
    m.deleted = true;
    Ok(json!(true))
}

fn get_file(state: &State, p: &Params) -> Result<Value, ApiError> {
    let id = p.str("file_id").unwrap_or_default();
    let f = state
        .files
        .get(&id)
        .ok_or_else(|| ApiError::bad("invalid file_id"))?;
    if f.bytes.len() > crate::config::MAX_DOWNLOAD_BYTES {
        return Err(ApiError::bad("file is too big"));
    }
    Ok(json!({
        "file_id": id,
        "file_unique_id": f.unique_id,
        "file_size": f.bytes.len(),
        "file_path": f.path,
    }))
}

async fn file_handler(
    AxState(shared): AxState<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Response {
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return ApiError::new(401, "Unauthorized").into_response();
    }
    let bytes = shared
        .state()
        .files
        .values()
        .find(|f| f.path == path)
        .map(|f| f.bytes.clone());
    match bytes {
        Some(b) => (StatusCode::OK, [(header::CONTENT_TYPE, "image/jpeg")], b).into_response(),
        None => ApiError::new(404, "Not Found").into_response(),
    }
}

// ---- conformance ----

#[async_trait]
impl ConformanceObserver for FakeBotApi {
    async fn received(&self, chat: &str) -> Vec<ObservedMessage> {
        let Ok(target) = chat.parse::<ChatTarget>() else {
            return Vec::new();
        };
        self.messages(target.chat)
            .into_iter()
            .filter(|m| target.thread.is_none() || m.thread == target.thread)
            .map(|m| ObservedMessage {
                message_id: m.message_id.to_string(),
                text: m.text,
                reply_to: m.reply_to.map(|r| r.to_string()),
                edited: m.edited,
                deleted: m.deleted,
            })
            .collect()
    }
}

#[async_trait]
impl ConformanceInjector for FakeBotApi {
    async fn inject(&self, chat: &str, text: &str) -> String {
        self.inject_text(chat, text).to_string()
    }
}
