//! A real local Mixin for tests and benchmarks (feature `fake`): the REST API and the Blaze
//! websocket on 127.0.0.1, speaking the real framing (gzip JSON in binary frames), verifying every
//! request's Ed25519 JWT, remembering message ids (a repeated `message_id` is ignored, as Mixin
//! does), re-delivering unacknowledged messages on every new connection, injecting faults
//! (202-wrapped 429 and 401, 500, dropped sockets, duplicate deliveries) and recording calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use rumgate_gateway::conformance::{ConformanceInjector, ConformanceObserver, ObservedMessage};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::blaze::{self, BlazeMessage, MessageView};
use crate::client::MAX_BATCH_BYTES;
use crate::config::{MixinConfig, SessionKey};
use crate::conversation::unique_conversation_id;
use crate::convert::{AttachmentPayload, RecallPayload};

/// The fixtures' throw-away bot (`jwt.vectors.json`): never a real key.
pub const FIXTURE_USER_ID: &str = "5e9c2f1a-3b7d-4c8e-9a6f-1d2e3f4a5b6c";
pub const FIXTURE_SESSION_ID: &str = "b1f4e6c2-8d3a-4f5b-a7c9-0e1d2c3b4a59";
pub const FIXTURE_SEED_HEX: &str =
    "b2454fee95412b4600462e083a72fd722021a30861ad59b1eac5b6875a2e742c";
/// A remote user (Dave in the fixtures) who writes in the fake's conversations.
pub const DAVE: &str = "d8c3a1f2-6b4e-4a9d-8c7f-5e6d4c3b2a10";
const MAX_BATCH_MESSAGES: usize = 100;

/// The bot the fake serves: its ids and session key.
#[derive(Debug, Clone)]
pub struct FakeBot {
    pub user_id: String,
    pub session_id: String,
    pub seed_hex: String,
}

impl FakeBot {
    /// The fixtures' bot.
    pub fn fixture() -> Self {
        Self {
            user_id: FIXTURE_USER_ID.into(),
            session_id: FIXTURE_SESSION_ID.into(),
            seed_hex: FIXTURE_SEED_HEX.into(),
        }
    }

    /// The keystore JSON of this bot, as the developer dashboard hands it out.
    pub fn keystore_json(&self) -> Value {
        json!({
            "app_id": self.user_id,
            "session_id": self.session_id,
            "server_public_key": "",
            "session_private_key": self.seed_hex,
        })
    }

    fn public_key(&self) -> VerifyingKey {
        SessionKey::parse(&self.seed_hex)
            .map(|k| k.public_key())
            .unwrap_or_else(|_| SessionKey::from_seed(&[0; 32]).public_key())
    }
}

/// A fault the REST API answers with instead of doing the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 202 `{"error":{"status":202,"code":429,...}}`.
    RateLimited,
    /// HTTP 202 `{"error":{"status":202,"code":401,...}}`.
    Unauthorized,
    /// HTTP 500 `{"error":{"status":500,"code":500,...}}`.
    ServerError,
    /// The messages are accepted, then the connection drops before the answer's body is
    /// complete: the client cannot know they arrived and must send them again.
    DropAfterApply,
}

/// One REST request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub http_status: u16,
    /// The `error.code` of the answer, if it was an error.
    pub error_code: Option<i64>,
    /// For `POST /messages`: the message ids in the body.
    pub message_ids: Vec<String>,
    /// The connection was dropped instead of answering ([`Fault::DropAfterApply`]).
    pub dropped: bool,
}

/// A message as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message_id: String,
    pub user_id: String,
    pub category: String,
    /// The text of `PLAIN_TEXT`; `[image <attachment id>]` and the like for others.
    pub text: String,
    pub quote_message_id: String,
    pub recalled: bool,
    /// When the fake accepted it.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Conversation {
    category: String,
    participants: Vec<String>,
    messages: Vec<StoredMessage>,
}

/// Keys of a message view sent with other JSON values.
type Overrides = Vec<(String, Value)>;

#[derive(Debug)]
struct Pending {
    view: MessageView,
    /// Keys of the view sent with these values instead (nulls, wrong types).
    overrides: Overrides,
    acked: bool,
    deliveries: u32,
    first_delivery: Option<Instant>,
}

#[derive(Debug, Default)]
struct World {
    conversations: HashMap<String, Conversation>,
    /// Every message id ever accepted, with its conversation.
    ids: HashMap<String, String>,
    users: HashMap<String, String>,
    /// Attachment id → bytes (empty until uploaded).
    attachments: HashMap<String, Option<Vec<u8>>>,
    /// Messages for the bot, in order.
    pending: Vec<Pending>,
    calls: Vec<Call>,
    faults: VecDeque<Fault>,
    /// Every n-th `POST /messages` is answered with a 202-wrapped 429.
    rate_limit_every: Option<u64>,
    message_calls: u64,
    duplicate_deliveries: bool,
    /// Answer a `POST /messages` that repeats an accepted id with an error instead of ignoring it.
    refuse_known_ids: bool,
    reject_auth: bool,
    jtis: HashSet<String>,
    acks: Vec<String>,
    repeated_ids: u64,
    connections: u64,
    refused_handshakes: u64,
}

struct Shared {
    state: Mutex<World>,
    bot: FakeBot,
    public: VerifyingKey,
    addr: SocketAddr,
    /// Bumped when there is something new for the bot.
    news: watch::Sender<u64>,
    /// Bumped to drop every Blaze connection.
    kill: watch::Sender<u64>,
    /// Bumped to send every Blaze connection a server-initiated `ERROR` 401 frame.
    kick: watch::Sender<u64>,
    stop: CancellationToken,
}

/// The fake server; clones share it.
#[derive(Clone)]
pub struct FakeMixin {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeMixin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMixin")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-01-01T10:05:00.123456Z` for now.
fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn error_body(status: u16, code: i64, description: &str) -> Value {
    json!({"error": {"status": status, "code": code, "description": description}})
}

impl FakeMixin {
    /// Starts a fake serving `bot` on 127.0.0.1:0.
    pub async fn start(bot: FakeBot) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (news, _) = watch::channel(0);
        let (kill, _) = watch::channel(0);
        let (kick, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            public: bot.public_key(),
            bot,
            addr,
            news,
            kill,
            kick,
            stop: CancellationToken::new(),
        });
        let fake = Self { shared };
        let app = axum::Router::new()
            .route("/", axum::routing::get(blaze_handshake))
            .fallback(rest)
            .with_state(fake.clone());
        let stop = fake.shared.stop.clone();
        // Like a real server: small frames go out at once, not after the peer's delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(fake)
    }

    /// Stops serving and drops every connection.
    pub fn stop(&self) {
        self.shared.stop.cancel();
        self.drop_sockets();
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn blaze_url(&self) -> String {
        format!("ws://{}/", self.shared.addr)
    }

    pub fn bot(&self) -> &FakeBot {
        &self.shared.bot
    }

    /// The account config of the bot pointed at this fake, as `POST /api/v1/gateways` takes it
    /// (without `kind` and `name`).
    pub fn config_json(&self) -> Value {
        json!({
            "keystore": self.shared.bot.keystore_json(),
            "api_url": self.api_url(),
            "blaze_url": self.blaze_url(),
        })
    }

    pub fn config(&self) -> MixinConfig {
        serde_json::from_value(self.config_json()).unwrap_or_default()
    }

    fn state(&self) -> MutexGuard<'_, World> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a group conversation with the bot, [`DAVE`] and `others`.
    pub fn add_group(&self, conversation_id: &str, others: &[&str]) {
        let mut participants = vec![self.shared.bot.user_id.clone(), DAVE.to_string()];
        participants.extend(others.iter().map(|s| s.to_string()));
        self.state().conversations.insert(
            conversation_id.to_string(),
            Conversation {
                category: "GROUP".into(),
                participants,
                messages: Vec::new(),
            },
        );
    }

    /// Creates the 1:1 conversation of the bot with `user_id`; returns its id.
    pub fn add_contact(&self, user_id: &str) -> String {
        let id = unique_conversation_id(&self.shared.bot.user_id, user_id);
        self.state().conversations.insert(
            id.clone(),
            Conversation {
                category: "CONTACT".into(),
                participants: vec![self.shared.bot.user_id.clone(), user_id.to_string()],
                messages: Vec::new(),
            },
        );
        id
    }

    pub fn add_user(&self, user_id: &str, full_name: &str) {
        self.state()
            .users
            .insert(user_id.to_string(), full_name.to_string());
    }

    /// Queues `data` (the message view JSON) as a message for the bot, as Mixin would push it.
    pub fn inject_view(&self, view: MessageView) -> String {
        self.inject_view_with(view, &[])
    }

    /// Like [`FakeMixin::inject_view`], with some keys sent with other JSON values: `null` (as
    /// Mixin may send empty fields) or values of the wrong type.
    pub fn inject_view_with(&self, view: MessageView, overrides: &[(&str, Value)]) -> String {
        let id = view.message_id.clone();
        {
            let mut st = self.state();
            if let Some(c) = st.conversations.get_mut(&view.conversation_id) {
                c.messages.push(StoredMessage {
                    message_id: view.message_id.clone(),
                    user_id: view.user_id.clone(),
                    category: view.category.clone(),
                    text: String::new(),
                    quote_message_id: view.quote_message_id.clone(),
                    recalled: false,
                    at: Instant::now(),
                });
            }
            st.pending.push(Pending {
                view,
                overrides: overrides
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect(),
                acked: false,
                deliveries: 0,
                first_delivery: None,
            });
        }
        self.shared.news.send_modify(|n| *n += 1);
        id
    }

    /// A message view from `user` in `chat` carrying `payload`, for [`FakeMixin::inject_view`].
    pub fn view(&self, chat: &str, user: &str, category: &str, payload: &[u8]) -> MessageView {
        let now = rfc3339_now();
        MessageView {
            kind: "message".into(),
            conversation_id: chat.to_string(),
            user_id: user.to_string(),
            session_id: uuid::Uuid::new_v4().to_string(),
            message_id: uuid::Uuid::new_v4().to_string(),
            category: category.into(),
            // As the fixtures show: `data` standard with padding, `data_base64` URL-safe bare.
            data: STANDARD.encode(payload),
            data_base64: URL_SAFE_NO_PAD.encode(payload),
            status: "SENT".into(),
            source: blaze::CREATE_MESSAGE.into(),
            created_at: now.clone(),
            updated_at: now,
            ..MessageView::default()
        }
    }

    /// A `PLAIN_TEXT` from `user` in `chat`; returns its message id.
    pub fn inject_text(&self, chat: &str, user: &str, text: &str) -> String {
        let v = self.view(chat, user, "PLAIN_TEXT", text.as_bytes());
        self.inject_view(v)
    }

    /// An uploaded attachment holding `bytes`; returns its id.
    pub fn add_attachment(&self, bytes: Vec<u8>) -> String {
        let attachment_id = uuid::Uuid::new_v4().to_string();
        self.state()
            .attachments
            .insert(attachment_id.clone(), Some(bytes));
        attachment_id
    }

    /// A `PLAIN_IMAGE` from `user` whose attachment holds `bytes`.
    pub fn inject_image(&self, chat: &str, user: &str, bytes: Vec<u8>, mime: &str) -> String {
        let attachment_id = uuid::Uuid::new_v4().to_string();
        let size = bytes.len() as u64;
        self.state()
            .attachments
            .insert(attachment_id.clone(), Some(bytes));
        let payload = AttachmentPayload {
            attachment_id,
            mime_type: mime.into(),
            width: Some(1),
            height: Some(1),
            size,
            ..AttachmentPayload::default()
        };
        let v = self.view(
            chat,
            user,
            "PLAIN_IMAGE",
            &serde_json::to_vec(&payload).unwrap_or_default(),
        );
        self.inject_view(v)
    }

    /// `user` recalls their message `target`.
    pub fn inject_recall(&self, chat: &str, user: &str, target: &str) -> String {
        {
            let mut st = self.state();
            if let Some(c) = st.conversations.get_mut(chat) {
                for m in c.messages.iter_mut().filter(|m| m.message_id == target) {
                    m.recalled = true;
                }
            }
        }
        let payload = RecallPayload {
            message_id: target.into(),
        };
        let v = self.view(
            chat,
            user,
            "MESSAGE_RECALL",
            &serde_json::to_vec(&payload).unwrap_or_default(),
        );
        self.inject_view(v)
    }

    /// The next `faults.len()` `POST /messages` calls fail, in order.
    pub fn fail_messages(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().faults.extend(faults);
    }

    /// With `on`, a `POST /messages` carrying a `message_id` Mixin already accepted is refused as
    /// a whole with a 202-wrapped 10002 naming `message_id` (nothing of it applied), instead of
    /// the repeat being ignored. Mixin documents neither answer for this case; this is the
    /// stricter one, in the documented error shape.
    pub fn refuse_known_message_ids(&self, on: bool) {
        self.state().refuse_known_ids = on;
    }

    /// Every `n`-th `POST /messages` call (counting from the next) answers a 202-wrapped 429;
    /// `None` stops it.
    pub fn rate_limit_every(&self, n: Option<u64>) {
        let mut st = self.state();
        st.rate_limit_every = n.filter(|n| *n > 0);
        st.message_calls = 0;
    }

    /// Refuses every token (REST: 202-wrapped 401; Blaze: handshake 401) while `on`.
    pub fn reject_auth(&self, on: bool) {
        self.state().reject_auth = on;
        if on {
            self.drop_sockets();
        }
    }

    /// Delivers every message twice on Blaze while `on`.
    pub fn duplicate_deliveries(&self, on: bool) {
        self.state().duplicate_deliveries = on;
    }

    /// Drops every Blaze connection at once, without a close frame.
    pub fn drop_sockets(&self) {
        self.shared.kill.send_modify(|n| *n += 1);
    }

    /// Sends every Blaze connection `{"action":"ERROR","error":{"code":401}}`, as Mixin does
    /// when a session's token is no longer valid, then closes it.
    pub fn kick_unauthorized(&self) {
        self.shared.kick.send_modify(|n| *n += 1);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Message ids acknowledged by the bot, in order (repeats included).
    pub fn acks(&self) -> Vec<String> {
        self.state().acks.clone()
    }

    pub fn is_acked(&self, message_id: &str) -> bool {
        self.state()
            .pending
            .iter()
            .any(|p| p.view.message_id == message_id && p.acked)
    }

    /// How often message `message_id` was pushed over Blaze.
    pub fn deliveries(&self, message_id: &str) -> u32 {
        self.state()
            .pending
            .iter()
            .find(|p| p.view.message_id == message_id)
            .map_or(0, |p| p.deliveries)
    }

    /// When message `message_id` was first pushed over Blaze.
    pub fn first_delivery(&self, message_id: &str) -> Option<Instant> {
        self.state()
            .pending
            .iter()
            .find(|p| p.view.message_id == message_id)
            .and_then(|p| p.first_delivery)
    }

    /// Blaze connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state().connections
    }

    pub fn refused_handshakes(&self) -> u64 {
        self.state().refused_handshakes
    }

    /// Messages posted again with an id already accepted (ignored, as Mixin does).
    pub fn repeated_ids(&self) -> u64 {
        self.state().repeated_ids
    }

    /// Every message in `chat` (the bot's and others'), in the order received.
    pub fn messages(&self, chat: &str) -> Vec<StoredMessage> {
        self.state()
            .conversations
            .get(chat)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// The texts of the bot's messages in `chat` that are not recalled, in order.
    pub fn bot_texts(&self, chat: &str) -> Vec<String> {
        let bot = self.shared.bot.user_id.clone();
        self.messages(chat)
            .into_iter()
            .filter(|m| m.user_id == bot && !m.recalled && m.category == "PLAIN_TEXT")
            .map(|m| m.text)
            .collect()
    }

    /// Checks a request's token: `Ok` or the reason it is refused.
    fn authorize(&self, headers: &HeaderMap, method: &str, uri: &str, body: &[u8]) -> bool {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else { return false };
        let Ok(claims) = auth::verify(token, &self.shared.public, method, uri, body, now_unix())
        else {
            return false;
        };
        let mut st = self.state();
        !st.reject_auth
            && claims.uid == self.shared.bot.user_id
            && claims.sid == self.shared.bot.session_id
            && claims.scp == "FULL"
            && st.jtis.insert(claims.jti)
    }
}

async fn blaze_handshake(
    State(fake): State<FakeMixin>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offers_protocol = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == blaze::SUBPROTOCOL);
    // The handshake token signs "GET" + "/" + "".
    if !offers_protocol || !fake.authorize(&headers, "GET", "/", b"") {
        fake.state().refused_handshakes += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    fake.state().connections += 1;
    ws.protocols([blaze::SUBPROTOCOL])
        .on_upgrade(move |socket| blaze_session(fake, socket))
}

fn frame(msg: &BlazeMessage) -> Message {
    Message::Binary(blaze::encode_frame(msg).unwrap_or_default().into())
}

async fn blaze_session(fake: FakeMixin, mut socket: WebSocket) {
    let mut kill = fake.shared.kill.subscribe();
    let mut kick = fake.shared.kick.subscribe();
    let mut news = fake.shared.news.subscribe();
    let stop = fake.shared.stop.clone();
    let mut sent: HashSet<String> = HashSet::new();
    let mut listed = false;
    loop {
        if listed {
            // Everything not acknowledged and not yet sent on this connection.
            let out: Vec<(MessageView, Overrides, bool)> = {
                let mut st = fake.state();
                let twice = st.duplicate_deliveries;
                st.pending
                    .iter_mut()
                    .filter(|p| !p.acked && !sent.contains(&p.view.message_id))
                    .map(|p| {
                        p.deliveries += if twice { 2 } else { 1 };
                        p.first_delivery.get_or_insert_with(Instant::now);
                        (p.view.clone(), p.overrides.clone(), twice)
                    })
                    .collect()
            };
            for (view, overrides, twice) in out {
                sent.insert(view.message_id.clone());
                let mut data = serde_json::to_value(&view).unwrap_or_default();
                for (key, value) in overrides {
                    data[key.as_str()] = value;
                }
                let msg = BlazeMessage {
                    id: uuid::Uuid::new_v4().to_string(),
                    action: blaze::CREATE_MESSAGE.into(),
                    data: Some(data),
                    ..BlazeMessage::default()
                };
                for _ in 0..if twice { 2 } else { 1 } {
                    if socket.send(frame(&msg)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            // A drop or kick wins over frames that arrived meanwhile: what the bot sends after
            // `drop_sockets` returns is lost, as on a real dead connection.
            biased;
            () = stop.cancelled() => return,
            // Dropped without a close frame, like a lost connection.
            _ = kill.changed() => return,
            _ = kick.changed() => {
                let error = BlazeMessage {
                    id: uuid::Uuid::new_v4().to_string(),
                    action: "ERROR".into(),
                    error: serde_json::from_value(
                        error_body(202, 401, "Unauthorized, maybe invalid token.")["error"].clone(),
                    )
                    .ok(),
                    ..BlazeMessage::default()
                };
                let _ = socket.send(frame(&error)).await;
                return;
            }
            _ = news.changed() => continue,
            msg = socket.recv() => {
                let bytes = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Binary(b))) => b,
                    // Blaze takes only gzip in binary frames.
                    Some(Ok(Message::Text(_))) => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(req) = blaze::decode_frame(&bytes) else { return };
                let mut reply = BlazeMessage {
                    id: req.id.clone(),
                    action: req.action.clone(),
                    ..BlazeMessage::default()
                };
                match req.action.as_str() {
                    blaze::LIST_PENDING_MESSAGES => listed = true,
                    blaze::ACKNOWLEDGE_MESSAGE_RECEIPT => {
                        let id = req.params.as_ref().and_then(|p| p["message_id"].as_str());
                        ack(&fake, id.into_iter());
                    }
                    "ACKNOWLEDGE_MESSAGE_RECEIPTS" => {
                        let ids: Vec<String> = req
                            .params
                            .as_ref()
                            .and_then(|p| p["messages"].as_array().cloned())
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|m| m["message_id"].as_str().map(str::to_string))
                            .collect();
                        ack(&fake, ids.iter().map(String::as_str));
                    }
                    _ => {
                        reply.error = serde_json::from_value(error_body(202, 400, "Bad Request")["error"].clone()).ok();
                    }
                }
                if socket.send(frame(&reply)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn ack<'a>(fake: &FakeMixin, ids: impl Iterator<Item = &'a str>) {
    let mut st = fake.state();
    for id in ids {
        st.acks.push(id.to_string());
        for p in st.pending.iter_mut().filter(|p| p.view.message_id == id) {
            p.acked = true;
        }
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn rest(
    State(fake): State<FakeMixin>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // Presigned storage URLs carry no token.
    if let Some(id) = path.strip_prefix("/_storage/") {
        return storage(&fake, &method, id, body);
    }
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let mut call = Call {
        method: method.to_string(),
        path: path.clone(),
        http_status: 202,
        error_code: None,
        message_ids: Vec::new(),
        dropped: false,
    };
    let (status, value) = if !fake.authorize(&headers, method.as_str(), &path_and_query, &body) {
        (
            StatusCode::ACCEPTED,
            error_body(202, 401, "Unauthorized, maybe invalid token."),
        )
    } else {
        route(&fake, &method, &path, &body, &mut call)
    };
    call.http_status = status.as_u16();
    call.error_code = value["error"]["code"].as_i64();
    let dropped = call.dropped;
    fake.state().calls.push(call);
    if dropped {
        // Headers go out, then the body fails: hyper aborts the connection mid-answer.
        let body = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("dropped by the fake"))
        });
        return (status, axum::body::Body::from_stream(body)).into_response();
    }
    answer(status, value)
}

fn storage(fake: &FakeMixin, method: &Method, id: &str, body: Bytes) -> Response {
    let mut st = fake.state();
    match (method.as_str(), st.attachments.get_mut(id)) {
        ("PUT", Some(slot)) => {
            *slot = Some(body.to_vec());
            StatusCode::OK.into_response()
        }
        ("GET", Some(Some(bytes))) => bytes.clone().into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn not_found() -> (StatusCode, Value) {
    (StatusCode::ACCEPTED, error_body(202, 404, "Not found"))
}

fn route(
    fake: &FakeMixin,
    method: &Method,
    path: &str,
    body: &[u8],
    call: &mut Call,
) -> (StatusCode, Value) {
    let bot = &fake.shared.bot;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["me"]) => (
            StatusCode::OK,
            json!({"data": {"type": "user", "user_id": bot.user_id, "app_id": bot.user_id,
                "session_id": bot.session_id, "identity_number": "7000104321",
                "full_name": "Rumgate Gateway", "relationship": "ME"}}),
        ),
        ("GET", ["users", id]) => match fake.state().users.get(*id) {
            Some(name) => (
                StatusCode::OK,
                json!({"data": {"type": "user", "user_id": id, "full_name": name}}),
            ),
            None => not_found(),
        },
        ("GET", ["conversations", id]) => match fake.state().conversations.get(*id) {
            Some(c) => (
                StatusCode::OK,
                json!({"data": {"type": "conversation", "conversation_id": id,
                    "category": c.category,
                    "participants": c.participants.iter()
                        .map(|u| json!({"user_id": u, "role": ""})).collect::<Vec<_>>()}}),
            ),
            None => not_found(),
        },
        ("POST", ["attachments"]) => {
            let id = uuid::Uuid::new_v4().to_string();
            fake.state().attachments.insert(id.clone(), None);
            let url = format!("{}/_storage/{id}", fake.api_url());
            (
                StatusCode::OK,
                json!({"data": {"type": "attachment", "attachment_id": id,
                    "upload_url": format!("{url}?X-Amz-Signature=fake"), "view_url": url}}),
            )
        }
        ("GET", ["attachments", id]) => match fake.state().attachments.get(*id) {
            Some(Some(_)) => (
                StatusCode::OK,
                json!({"data": {"type": "attachment", "attachment_id": id,
                    "view_url": format!("{}/_storage/{id}", fake.api_url()), "upload_url": ""}}),
            ),
            _ => not_found(),
        },
        ("POST", ["acknowledgements"]) => {
            let acks: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
            let ids: Vec<String> = acks
                .iter()
                .filter_map(|a| a["message_id"].as_str().map(str::to_string))
                .collect();
            ack(fake, ids.iter().map(String::as_str));
            (StatusCode::OK, json!({}))
        }
        ("POST", ["messages"]) => post_messages(fake, body, call),
        _ => not_found(),
    }
}

fn invalid(description: &str) -> (StatusCode, Value) {
    (
        StatusCode::ACCEPTED,
        json!({"error": {"status": 202, "code": 10002, "description": "The request data has invalid field.",
            "extra": {"field": description}}}),
    )
}

/// `POST /messages`: checks the whole batch first, then applies it; repeated ids are ignored.
fn post_messages(fake: &FakeMixin, body: &[u8], call: &mut Call) -> (StatusCode, Value) {
    let Ok(messages) = serde_json::from_slice::<Vec<Value>>(body) else {
        return (StatusCode::ACCEPTED, error_body(202, 400, "Bad Request"));
    };
    call.message_ids = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut st = fake.state();
    st.message_calls += 1;
    let fault = st.faults.pop_front();
    if fault == Some(Fault::DropAfterApply) {
        call.dropped = true;
    } else if let Some(fault) = fault {
        return match fault {
            Fault::RateLimited => (
                StatusCode::ACCEPTED,
                error_body(202, 429, "Too Many Requests"),
            ),
            Fault::Unauthorized => (
                StatusCode::ACCEPTED,
                error_body(202, 401, "Unauthorized, maybe invalid token."),
            ),
            Fault::ServerError | Fault::DropAfterApply => (
                StatusCode::INTERNAL_SERVER_ERROR,
                error_body(500, 500, "Internal Server Error"),
            ),
        };
    } else if st
        .rate_limit_every
        .is_some_and(|n| st.message_calls % n == 0)
    {
        return (
            StatusCode::ACCEPTED,
            error_body(202, 429, "Too Many Requests"),
        );
    }
    if messages.is_empty() || messages.len() > MAX_BATCH_MESSAGES || body.len() > MAX_BATCH_BYTES {
        return invalid("at most 100 messages and 128 KB per request");
    }
    let bot = fake.shared.bot.user_id.clone();
    let mut accepted = Vec::new();
    for m in &messages {
        let field = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        let (conversation_id, message_id, category) = (
            field("conversation_id"),
            field("message_id"),
            field("category"),
        );
        if uuid::Uuid::try_parse(&message_id).is_err()
            || (st.refuse_known_ids && st.ids.contains_key(&message_id))
        {
            return invalid("message_id");
        }
        let Some(conv) = st.conversations.get(&conversation_id) else {
            return (StatusCode::ACCEPTED, error_body(202, 403, "Forbidden"));
        };
        if !conv.participants.contains(&bot) {
            return (StatusCode::ACCEPTED, error_body(202, 403, "Forbidden"));
        }
        if conv.category == "CONTACT" {
            let other = conv.participants.iter().find(|u| **u != bot);
            if other.map(String::as_str) != Some(field("recipient_id").as_str()) {
                return invalid("recipient_id");
            }
        }
        // The payload must be URL-safe base64 without padding.
        let Ok(data) = URL_SAFE_NO_PAD.decode(field("data_base64")) else {
            return invalid("data_base64");
        };
        let text = match category.as_str() {
            "PLAIN_TEXT" => match String::from_utf8(data) {
                Ok(t) if !t.is_empty() => t,
                _ => return invalid("data_base64"),
            },
            "PLAIN_IMAGE" | "PLAIN_DATA" => {
                let Ok(p) = serde_json::from_slice::<AttachmentPayload>(&data) else {
                    return invalid("data_base64");
                };
                if !matches!(st.attachments.get(&p.attachment_id), Some(Some(_))) {
                    return invalid("attachment_id");
                }
                format!("[{} {}]", category.to_lowercase(), p.attachment_id)
            }
            "MESSAGE_RECALL" => {
                let Ok(p) = serde_json::from_slice::<RecallPayload>(&data) else {
                    return invalid("data_base64");
                };
                p.message_id
            }
            _ => return invalid("category"),
        };
        accepted.push((
            conversation_id,
            message_id,
            category,
            text,
            field("quote_message_id"),
        ));
    }
    for (conversation_id, message_id, category, text, quote) in accepted {
        if st.ids.contains_key(&message_id) {
            st.repeated_ids += 1;
            continue;
        }
        st.ids.insert(message_id.clone(), conversation_id.clone());
        let Some(conv) = st.conversations.get_mut(&conversation_id) else {
            continue;
        };
        if category == "MESSAGE_RECALL" {
            // Only the sender's own messages can be recalled; unknown targets are ignored.
            for target in conv
                .messages
                .iter_mut()
                .filter(|x| x.message_id == text && x.user_id == bot)
            {
                target.recalled = true;
            }
            continue;
        }
        conv.messages.push(StoredMessage {
            message_id,
            user_id: bot.clone(),
            category,
            text,
            quote_message_id: quote,
            recalled: false,
            at: Instant::now(),
        });
    }
    // Success is an empty JSON object; Mixin answers 20x for errors too, so the status says
    // nothing either way.
    (StatusCode::ACCEPTED, json!({}))
}

#[async_trait]
impl ConformanceObserver for FakeMixin {
    async fn received(&self, chat: &str) -> Vec<ObservedMessage> {
        self.messages(chat)
            .into_iter()
            .map(|m| ObservedMessage {
                message_id: m.message_id,
                text: m.text,
                reply_to: Some(m.quote_message_id).filter(|q| !q.is_empty()),
                edited: false,
                deleted: m.recalled,
            })
            .collect()
    }
}

#[async_trait]
impl ConformanceInjector for FakeMixin {
    async fn inject(&self, chat: &str, text: &str) -> String {
        self.inject_text(chat, DAVE, text)
    }
}
