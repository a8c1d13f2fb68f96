//! The Telegram adapter: a [`Gateway`] for one bot account on the Bot API (through teloxide's
//! `Bot`), receiving by long polling or webhook and sending within Telegram's flood limits.
//!
//! - Outbound: a post becomes `sendMessage` (HTML) parts of at most 4096 UTF-16 units, or a
//!   `sendPhoto` whose caption holds the first 1024 units and follow-up messages for the rest.
//! - Inbound: a `getUpdates` loop whose offset moves past an update only once the node has
//!   acknowledged what it became, so that a crash re-reads instead of losing; or
//!   [`TelegramGateway::handle_webhook`], which answers only after the same acknowledgement.
//! - Chats are named `"<chat_id>"`, or `"<chat_id>/<message_thread_id>"` for a forum topic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rumgate_gateway::html::to_html;
use rumgate_gateway::text::{split_text, Unit};
use rumgate_gateway::{
    Ack, Attachment, AttachmentKind, Delivered, FormattedText, Gateway, GatewayContext,
    GatewayError, Health, InboundEvent, OutboundDelete, OutboundEdit, OutboundMessage, RemoteRef,
    Result,
};
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

pub mod client;
pub mod config;
pub mod convert;
#[cfg(feature = "fake")]
pub mod fake;
pub mod pacing;

pub use client::{BotInfo, Client};
pub use config::{BotToken, ConfigError, TelegramConfig, WebhookSecret};
pub use convert::ChatTarget;
pub use pacing::{PacingLimits, Window};

use client::{Downloaded, Edited, Photo, PollError};
use convert::{Converted, FileToFetch};
use pacing::Pacer;

/// Message text limit, in UTF-16 code units after entity parsing.
pub const MAX_TEXT_UNITS: usize = 4096;
/// Caption limit, in UTF-16 code units after entity parsing.
pub const MAX_CAPTION_UNITS: usize = 1024;
/// How long the later parts of a split message are retried once the first part is out: the node
/// cannot record half a delivery, so giving up would make it send the first parts again.
const PART_RETRY_DEADLINE: Duration = Duration::from_secs(300);
/// The longest wait between attempts after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One Telegram bot, as the node's gateway registry holds it.
pub struct TelegramGateway {
    inner: Arc<Inner>,
    running: tokio::sync::Mutex<Option<Running>>,
}

struct Inner {
    client: Client,
    pacer: Pacer,
    config: TelegramConfig,
    /// The bot's id as the token says; `getMe` confirms it.
    token_bot_id: Option<i64>,
    status: Mutex<Status>,
    /// The running context, for webhook deliveries.
    ctx: Mutex<Option<(GatewayContext, CancellationToken)>>,
    /// Cancelled by `shutdown`: sends still waiting for a pacing slot give up unsent, so that a
    /// stopping node never leaves a request in flight that it cannot record.
    stopping: CancellationToken,
}

struct Running {
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Status {
    me: Option<BotInfo>,
    unauthorized: Option<String>,
    conflict: Option<String>,
    poll_failures: u32,
    last_poll_error: Option<String>,
    /// Chats the bot was removed from, with the reason.
    removed: BTreeMap<String, String>,
    /// Chats that became supergroups: old id → new id.
    migrated: BTreeMap<String, String>,
    /// Whether the bot is known to be in some group chat.
    in_groups: bool,
    group_messages_seen: u64,
}

impl std::fmt::Debug for TelegramGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramGateway")
            .field("client", &self.inner.client)
            .field("webhook_mode", &self.inner.config.webhook_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl TelegramGateway {
    /// A gateway for the account in `config`, pacing sends to Telegram's documented limits.
    /// Reads `token_file`; makes no request until [`Gateway::start`] or a send.
    pub fn new(config: TelegramConfig) -> Result<Self> {
        let limits = PacingLimits::default().scaled(config.pacing_scale);
        Self::with_pacing(config, limits)
    }

    /// Like [`TelegramGateway::new`] with other pacing limits: for tests and benchmarks against
    /// the fake Bot API only; real Telegram needs the defaults.
    pub fn with_pacing(config: TelegramConfig, limits: PacingLimits) -> Result<Self> {
        config
            .validate()
            .map_err(|e| GatewayError::Invalid(e.to_string()))?;
        let token = config
            .resolve_token()
            .map_err(|e| GatewayError::Invalid(e.to_string()))?;
        let client = Client::new(&token, config.api_base(), config.poll_timeout())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                pacer: Pacer::after_restart(limits),
                token_bot_id: token.bot_id(),
                config,
                status: Mutex::new(Status::default()),
                ctx: Mutex::new(None),
                stopping: CancellationToken::new(),
            }),
            running: tokio::sync::Mutex::new(None),
        })
    }

    /// What `getMe` said, once it answered.
    pub fn bot_info(&self) -> Option<BotInfo> {
        self.inner.status().me.clone()
    }

    /// Chats the bot was removed from, with the reason; the node marks their links failing.
    pub fn removed_chats(&self) -> BTreeMap<String, String> {
        self.inner.status().removed.clone()
    }

    /// Chats that became supergroups, old id → new id.
    pub fn migrated_chats(&self) -> BTreeMap<String, String> {
        self.inner.status().migrated.clone()
    }

    /// Webhook mode: handles one delivery to the node's `/hooks/{link}` route.
    ///
    /// Checks `secret` (the `X-Telegram-Bot-Api-Secret-Token` header) in constant time, turns the
    /// update into events and returns only after the node acknowledged them. An error means "not
    /// stored": answer with [`WebhookError::status`] so that Telegram delivers it again.
    pub async fn handle_webhook(
        &self,
        secret: Option<&str>,
        body: &[u8],
    ) -> std::result::Result<WebhookOutcome, WebhookError> {
        let Some(expected) = &self.inner.config.webhook_secret else {
            return Err(WebhookError::NotWebhookMode);
        };
        let given = secret.unwrap_or_default().as_bytes();
        if !bool::from(given.ct_eq(expected.expose().as_bytes())) {
            return Err(WebhookError::BadSecret);
        }
        let running = self
            .inner
            .ctx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some((ctx, token)) = running else {
            return Err(WebhookError::Unavailable(
                "the telegram gateway is not started".into(),
            ));
        };
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                // Telegram would deliver it again and again; it will never parse.
                warn!(error = %e, "unreadable webhook update dropped");
                return Ok(WebhookOutcome::Ignored);
            }
        };
        match self.inner.process_update(&ctx, &token, value).await {
            Step::Done => Ok(WebhookOutcome::Accepted),
            Step::Retry(e) => Err(WebhookError::Unavailable(e.to_string())),
            Step::Cancelled => Err(WebhookError::Unavailable("shutting down".into())),
        }
    }
}

/// A webhook delivery that was handled; answer 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Stored (or known, or deliberately ignored) by the node.
    Accepted,
    /// Unreadable; dropped so that Telegram stops re-sending it.
    Ignored,
}

/// A webhook delivery that was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("wrong or missing X-Telegram-Bot-Api-Secret-Token")]
    BadSecret,
    #[error("this telegram gateway is not in webhook mode")]
    NotWebhookMode,
    /// Not stored now; Telegram retries non-2xx answers.
    #[error("not stored, retry later: {0}")]
    Unavailable(String),
}

impl WebhookError {
    /// The HTTP status for the answer to Telegram.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadSecret => 401,
            Self::NotWebhookMode => 404,
            Self::Unavailable(_) => 503,
        }
    }
}

/// One outgoing Telegram message of a post.
#[derive(Debug, Clone)]
enum Piece {
    Text(FormattedText),
    Photo {
        photo: Photo,
        caption: Option<FormattedText>,
    },
}

/// What became of an update.
enum Step {
    /// Handled (stored, duplicate, ignored, nothing to store): the offset may move past it.
    Done,
    /// Not stored; read it again later.
    Retry(GatewayError),
    Cancelled,
}

impl Inner {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bot_id(&self) -> Option<i64> {
        self.status()
            .me
            .as_ref()
            .map(|me| me.id)
            .or(self.token_bot_id)
    }

    /// Records what an answer says about the bot as a whole.
    fn note<T>(&self, chat: i64, result: &Result<T>) {
        match result {
            Ok(_) => {
                let mut status = self.status();
                status.unauthorized = None;
                if pacing::is_group(chat) {
                    status.in_groups = true;
                }
            }
            Err(GatewayError::RateLimited { retry_after }) => {
                warn!(chat, ?retry_after, "Telegram asked the bot to slow down");
                self.pacer.pause_for(*retry_after);
            }
            Err(GatewayError::Unauthorized(m)) => {
                self.status().unauthorized = Some(m.clone());
            }
            Err(GatewayError::Permanent(m)) if is_removal(m) => {
                self.status().removed.insert(chat.to_string(), m.clone());
            }
            Err(GatewayError::ChatMigrated { new_chat }) => {
                self.status()
                    .migrated
                    .insert(chat.to_string(), new_chat.clone());
            }
            Err(_) => {}
        }
    }

    /// Waits for a pacing slot for `chat`, unless the gateway is stopping: then nothing is sent
    /// and the node delivers the item after its restart.
    async fn paced(&self, chat: i64) -> Result<pacing::Permit<'_>> {
        let stopped = || GatewayError::Transient("the gateway is stopping; not sent".into());
        if self.stopping.is_cancelled() {
            return Err(stopped());
        }
        tokio::select! {
            biased;
            _ = self.stopping.cancelled() => Err(stopped()),
            permit = self.pacer.acquire(chat) => Ok(permit),
        }
    }

    /// Sends one piece, within the pacing limits; returns its message id.
    async fn deliver(&self, to: ChatTarget, piece: &Piece, reply_to: Option<i64>) -> Result<i64> {
        let permit = self.paced(to.chat).await?;
        let result = match piece {
            Piece::Text(text) => self.client.send_message(to, &to_html(text), reply_to).await,
            Piece::Photo { photo, caption } => {
                let caption = caption.as_ref().map(to_html);
                self.client
                    .send_photo(to, photo.clone(), caption.as_deref(), reply_to)
                    .await
            }
        };
        drop(permit);
        self.note(to.chat, &result);
        result
    }

    /// Edits one earlier message to show `text` (caption if it is a photo).
    async fn edit_piece(
        &self,
        chat: i64,
        message_id: i64,
        text: &FormattedText,
        caption: bool,
    ) -> Result<Edited> {
        let permit = self.paced(chat).await?;
        let html = to_html(text);
        let result = if caption {
            self.client
                .edit_message_caption(chat, message_id, &html)
                .await
        } else {
            self.client.edit_message_text(chat, message_id, &html).await
        };
        drop(permit);
        self.note(chat, &result);
        result
    }

    async fn delete_one(&self, chat: i64, message_id: i64) -> Result<()> {
        self.pacer.wait_unpaused().await;
        let result = self.client.delete_message(chat, message_id).await;
        self.note(chat, &result);
        result
    }

    /// Runs `op` until it succeeds, fails for good, or [`PART_RETRY_DEADLINE`] passes: for steps
    /// after the first change to a chat, which the node could not repeat without duplicating.
    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + PART_RETRY_DEADLINE;
        let mut backoff = Backoff::new();
        loop {
            match op().await {
                Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                    debug!(error = %e, what, "retrying a later part");
                    // A rate limit already paused the pacer; other errors back off.
                    if !matches!(e, GatewayError::RateLimited { .. }) {
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
                other => return other,
            }
        }
    }

    /// Reads one update, fetches its file, hands the event to the node and waits for the answer.
    async fn process_update(
        &self,
        ctx: &GatewayContext,
        token: &CancellationToken,
        value: serde_json::Value,
    ) -> Step {
        let update = match convert::parse_update(value) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "unreadable update skipped");
                return Step::Done;
            }
        };
        let in_group = [&update.message, &update.edited_message]
            .into_iter()
            .flatten()
            .any(|m| m.chat.is_group());
        if in_group {
            let mut status = self.status();
            status.group_messages_seen += 1;
            status.in_groups = true;
        }
        let converted = convert::convert_update(&update, self.bot_id(), self.config.max_file_bytes);
        let (mut event, file) = match converted {
            Converted::Nothing { why } => {
                debug!(update_id = update.update_id, why, "nothing to mirror");
                return Step::Done;
            }
            Converted::Removed { chat, reason } => {
                warn!(%chat, %reason, "the bot lost access to a chat");
                self.status().removed.insert(chat, reason);
                return Step::Done;
            }
            Converted::Added { chat } => {
                info!(%chat, "the bot was added to a chat");
                let mut status = self.status();
                status.removed.remove(&chat);
                status.in_groups |= chat.starts_with('-');
                return Step::Done;
            }
            Converted::Event { event, file } => (event, file),
        };
        match &event {
            InboundEvent::Message(m) if m.from_self => return Step::Done,
            InboundEvent::ChatMigrated { chat, new_chat } => {
                info!(%chat, %new_chat, "group migrated to a supergroup");
                self.status()
                    .migrated
                    .insert(chat.clone(), new_chat.clone());
            }
            _ => {}
        }
        if let (Some(file), InboundEvent::Message(m)) = (file, &mut event) {
            let fetched = tokio::select! {
                _ = token.cancelled() => return Step::Cancelled,
                f = self.fetch(&file) => f,
            };
            match fetched {
                Ok(Ok(attachment)) => m.attachments.push(attachment),
                Ok(Err(placeholder)) => {
                    let mut note = FormattedText::plain(placeholder);
                    if !m.text.is_empty() {
                        note.text.insert(0, '\n');
                    }
                    m.text.append(&note);
                }
                Err(e) => return Step::Retry(e),
            }
        }
        let answer = tokio::select! {
            _ = token.cancelled() => return Step::Cancelled,
            a = ctx.inbound().submit(event) => a,
        };
        match answer {
            Ok(Ack::Stored { trx_id } | Ack::Duplicate { trx_id }) => {
                debug!(update_id = update.update_id, %trx_id, "stored");
                Step::Done
            }
            Ok(Ack::Ignored { reason }) => {
                debug!(update_id = update.update_id, %reason, "ignored by the node");
                Step::Done
            }
            Err(e) if e.is_retryable() => Step::Retry(e),
            Err(e) => {
                warn!(update_id = update.update_id, error = %e, "the node refused an update for good");
                Step::Done
            }
        }
    }

    /// The file as an attachment, or a placeholder text when it cannot be mirrored; `Err` when
    /// it is worth trying again later.
    async fn fetch(&self, file: &FileToFetch) -> Result<std::result::Result<Attachment, String>> {
        let max = self.config.max_file_bytes;
        let too_large =
            || convert::file_placeholder(file, &format!("larger than the {} limit", human(max)));
        if file.size.is_some_and(|s| s > max as u64) {
            return Ok(Err(too_large()));
        }
        self.pacer.wait_unpaused().await;
        let info = match self.client.get_file(&file.file_id).await {
            Ok(info) => info,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => return Ok(Err(convert::file_placeholder(file, &e.to_string()))),
        };
        if info.file_size.is_some_and(|s| s > max as u64) {
            return Ok(Err(too_large()));
        }
        let Some(path) = info.file_path else {
            return Ok(Err(convert::file_placeholder(
                file,
                "Telegram gave no download path",
            )));
        };
        match self.client.download(&path, max).await {
            Ok(Downloaded::Bytes(data)) => Ok(Ok(Attachment {
                kind: if file.is_image {
                    AttachmentKind::Image
                } else {
                    AttachmentKind::File
                },
                mime: file.mime.clone(),
                name: Some(file.name.clone()),
                data,
                width: file.width,
                height: file.height,
            })),
            Ok(Downloaded::TooLarge) => Ok(Err(too_large())),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => Ok(Err(convert::file_placeholder(file, &e.to_string()))),
        }
    }

    /// The account's health, or — with `chat` — its health for that chat: being removed from
    /// one chat fails that chat's links only.
    fn health(&self, chat: Option<&str>) -> Health {
        let status = self.status();
        if let Some(m) = &status.unauthorized {
            return Health::failing(m.clone());
        }
        match chat {
            Some(chat) => {
                let id = chat.split('/').next().unwrap_or(chat);
                if let Some(reason) = status.removed.get(id) {
                    return Health::failing(reason.clone());
                }
            }
            None if !status.removed.is_empty() => {
                let reasons: Vec<String> = status
                    .removed
                    .iter()
                    .map(|(c, r)| format!("{c}: {r}"))
                    .collect();
                return Health::degraded(format!(
                    "removed from {} chat(s): {}",
                    reasons.len(),
                    reasons.join("; ")
                ));
            }
            None => {}
        }
        if let Some(c) = &status.conflict {
            return Health::degraded(format!(
                "getUpdates answered 409 ({c}). Another process is polling updates for this bot \
                 (a second rumgate or another bot framework with the same token), or a webhook is \
                 set: stop the other poller, or call deleteWebhook, or run this gateway in webhook \
                 mode. Retrying with backoff."
            ));
        }
        if status.poll_failures >= 3 {
            return Health::degraded(format!(
                "getUpdates failed {} times in a row; last error: {}",
                status.poll_failures,
                status.last_poll_error.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(left) = self.pacer.paused_for() {
            return Health::degraded(format!(
                "rate limited by Telegram (429) for {} more seconds",
                left.as_secs().max(1)
            ));
        }
        let privacy_on = status
            .me
            .as_ref()
            .is_some_and(|me| !me.can_read_all_group_messages);
        if privacy_on {
            let hint = "privacy mode looks on (getMe: can_read_all_group_messages is false): in \
                        groups the bot sees only commands, replies to it and mentions. To mirror \
                        a group, send /setprivacy to @BotFather and choose Disable (then remove \
                        and re-add the bot), or make the bot an admin of the group";
            if status.in_groups && status.group_messages_seen == 0 {
                return Health::degraded(format!("no group messages received yet; {hint}"));
            }
            return Health {
                detail: Some(hint.into()),
                ..Health::ok()
            };
        }
        Health::ok()
    }
}

/// Whether a permanent error says the bot can no longer use the chat at all.
fn is_removal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["kicked", "blocked", "not a member", "deactivated"]
        .iter()
        .any(|w| m.contains(w))
}

fn human(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// Doubling waits from 1 s up to [`MAX_BACKOFF`].
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: Duration::from_secs(1),
        }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        now
    }

    fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}

/// Sleeps `d` unless `token` is cancelled first; false when cancelled.
async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// The getUpdates loop: the offset sent to Telegram moves past an update only after the node
/// acknowledged it, so Telegram keeps (and re-sends after a crash) everything not yet stored.
async fn poll_loop(inner: Arc<Inner>, ctx: GatewayContext, token: CancellationToken) {
    let mut backoff = Backoff::new();
    // Our own id tells our own messages apart; the token's prefix stands in until getMe answers.
    while inner.status().me.is_none() {
        let me = tokio::select! {
            _ = token.cancelled() => return,
            me = inner.client.get_me() => me,
        };
        match me {
            Ok(me) => {
                let mut status = inner.status();
                status.me = Some(me);
                status.unauthorized = None;
            }
            Err(e) => {
                warn!(error = %e, "getMe failed");
                if let GatewayError::Unauthorized(m) = &e {
                    inner.status().unauthorized = Some(m.clone());
                }
                if !pause(&token, e.retry_after().unwrap_or_else(|| backoff.next())).await {
                    return;
                }
            }
        }
    }
    backoff.reset();

    let timeout = inner.config.poll_timeout();
    let mut offset: Option<i64> = None;
    'poll: loop {
        let polled = tokio::select! {
            _ = token.cancelled() => break 'poll,
            r = inner.client.get_updates(offset, timeout) => r,
        };
        let updates = match polled {
            Ok(updates) => {
                let mut status = inner.status();
                status.conflict = None;
                status.poll_failures = 0;
                status.last_poll_error = None;
                status.unauthorized = None;
                backoff.reset();
                updates
            }
            Err(PollError::Conflict(description)) => {
                warn!(%description, "getUpdates conflict: another poller or a webhook");
                inner.status().conflict = Some(description);
                if !pause(&token, backoff.next()).await {
                    break 'poll;
                }
                continue;
            }
            Err(PollError::Other(e)) => {
                warn!(error = %e, "getUpdates failed");
                let wait = match &e {
                    GatewayError::RateLimited { retry_after } => *retry_after,
                    _ => backoff.next(),
                };
                {
                    let mut status = inner.status();
                    if let GatewayError::Unauthorized(m) = &e {
                        status.unauthorized = Some(m.clone());
                    }
                    status.poll_failures += 1;
                    status.last_poll_error = Some(e.to_string());
                }
                if !pause(&token, wait).await {
                    break 'poll;
                }
                continue;
            }
        };
        for value in updates {
            let Some(id) = value.get("update_id").and_then(serde_json::Value::as_i64) else {
                warn!("an update without update_id skipped");
                continue;
            };
            if offset.is_some_and(|o| id < o) {
                continue; // already handled; Telegram re-sent it before our confirmation
            }
            let step = inner
                .process_update(&ctx, &token, value)
                .instrument(info_span!("update", update_id = id))
                .await;
            match step {
                Step::Done => offset = Some(id + 1),
                Step::Retry(e) => {
                    warn!(update_id = id, error = %e, "update not stored; reading it again later");
                    if !pause(&token, backoff.next()).await {
                        break 'poll;
                    }
                    continue 'poll;
                }
                Step::Cancelled => break 'poll,
            }
        }
    }
    // Confirms what the node stored, so that the next start does not read it again (which would
    // be harmless: the node deduplicates).
    if let Some(offset) = offset {
        let confirm = inner.client.get_updates(Some(offset), Duration::ZERO);
        if tokio::time::timeout(Duration::from_secs(2), confirm)
            .await
            .is_err()
        {
            debug!("could not confirm the update offset at shutdown");
        }
    }
}

/// The pieces a post becomes: photos first (the first one captioned), then the text that did not
/// fit in the caption, split at [`MAX_TEXT_UNITS`].
fn plan(msg: &OutboundMessage) -> Result<Vec<Piece>> {
    let mut text = msg.text.clone();
    let mut photos = Vec::new();
    for (i, a) in msg.attachments.iter().enumerate() {
        match a.kind {
            AttachmentKind::Image if !a.data.is_empty() => photos.push(Photo {
                bytes: a.data.clone(),
                file_name: a.name.clone().unwrap_or_else(|| format!("image{i}.jpg")),
            }),
            _ => {
                let mut note = FormattedText::plain(format!(
                    "[file {} not mirrored]",
                    a.name.as_deref().unwrap_or("attachment")
                ));
                if !text.is_empty() {
                    note.text.insert(0, '\n');
                }
                text.append(&note);
            }
        }
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    for (i, photo) in photos.into_iter().enumerate() {
        let caption = if i == 0 {
            let (caption, remainder) = take_caption(&rest);
            rest = remainder;
            caption
        } else {
            None
        };
        pieces.push(Piece::Photo { photo, caption });
    }
    pieces.extend(text_parts(&rest).into_iter().map(Piece::Text));
    if pieces.is_empty() {
        return Err(GatewayError::Invalid(
            "nothing to send: empty text and no image".into(),
        ));
    }
    Ok(pieces)
}

/// Splits `text` into messages, leaving out blank parts Telegram would reject.
fn text_parts(text: &FormattedText) -> Vec<FormattedText> {
    if text.text.trim().is_empty() {
        return Vec::new();
    }
    split_text(text, MAX_TEXT_UNITS, Unit::Utf16)
        .into_iter()
        .filter(|p| !p.text.trim().is_empty())
        .collect()
}

/// The first caption-sized part of `text`, and the rest.
fn take_caption(text: &FormattedText) -> (Option<FormattedText>, FormattedText) {
    if text.text.trim().is_empty() {
        return (None, FormattedText::default());
    }
    let Some(first) = split_text(text, MAX_CAPTION_UNITS, Unit::Utf16)
        .into_iter()
        .next()
    else {
        return (None, text.clone());
    };
    let rest = tail(text, first.text.len());
    (Some(first).filter(|c| !c.text.trim().is_empty()), rest)
}

/// `text` from byte `from` on, with its spans cut to it (`from` is a char boundary).
fn tail(text: &FormattedText, from: usize) -> FormattedText {
    FormattedText {
        text: text.text.get(from..).unwrap_or_default().to_owned(),
        spans: text
            .valid_spans()
            .filter(|s| s.end > from)
            .map(|s| {
                rumgate_gateway::Span::new(s.start.max(from) - from, s.end - from, s.style.clone())
            })
            .collect(),
    }
}

fn target(chat: &str) -> Result<ChatTarget> {
    chat.parse().map_err(GatewayError::Invalid)
}

fn message_id(part: &RemoteRef) -> Result<i64> {
    part.message_id.parse().map_err(|_| {
        GatewayError::Invalid(format!(
            "{:?} is not a Telegram message id",
            part.message_id
        ))
    })
}

#[async_trait]
impl Gateway for TelegramGateway {
    fn kind(&self) -> &'static str {
        "telegram"
    }

    async fn start(&self, ctx: GatewayContext) -> Result<()> {
        let mut running = self.running.lock().await;
        if let Some(previous) = running.take() {
            previous.token.cancel();
            if let Some(task) = previous.task {
                let _ = task.await;
            }
        }
        match self.inner.client.get_me().await {
            Ok(me) => {
                info!(bot = ?me.username, privacy_mode = !me.can_read_all_group_messages, "telegram bot");
                self.inner.status().me = Some(me);
            }
            Err(e @ GatewayError::Unauthorized(_)) => {
                self.inner.status().unauthorized = Some(e.to_string());
                return Err(e);
            }
            Err(e) => warn!(error = %e, "getMe failed; retrying in the background"),
        }
        let token = ctx.shutdown_token().child_token();
        *self
            .inner
            .ctx
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((ctx.clone(), token.clone()));
        let task = match (
            &self.inner.config.webhook_secret,
            &self.inner.config.webhook_url,
        ) {
            (Some(secret), Some(url)) => {
                self.inner.client.set_webhook(url, secret.expose()).await?;
                None
            }
            (Some(_), None) => None,
            (None, _) => {
                let span = info_span!("gateway", gateway = ctx.gateway(), kind = "telegram");
                Some(tokio::spawn(
                    poll_loop(Arc::clone(&self.inner), ctx, token.clone()).instrument(span),
                ))
            }
        };
        *running = Some(Running { token, task });
        Ok(())
    }

    async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered> {
        let to = target(chat)?;
        let pieces = plan(msg)?;
        let reply_to = msg
            .reply_to
            .as_ref()
            .filter(|r| target(&r.chat).is_ok_and(|t| t.chat == to.chat))
            .and_then(|r| message_id(r).ok());
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let id = if parts.is_empty() {
                // Nothing is out yet: the node may retry the whole post.
                self.inner.deliver(to, piece, reply_to).await?
            } else {
                self.inner
                    .retrying("send a later part", || self.inner.deliver(to, piece, None))
                    .await?
            };
            parts.push(RemoteRef {
                chat: chat.to_owned(),
                message_id: id.to_string(),
            });
        }
        Ok(Delivered { parts })
    }

    async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
        let to = target(chat)?;
        let Some(first) = edit.parts.first() else {
            return Err(GatewayError::Invalid(
                "an edit of an item with no parts".into(),
            ));
        };
        let first_id = message_id(first)?;
        let mut texts = text_parts(&edit.text);
        let Some(head) = texts.first().cloned() else {
            return Err(GatewayError::Invalid("an edit to an empty text".into()));
        };
        // The first part may be a photo, whose caption holds less.
        let mut caption = false;
        match self
            .inner
            .edit_piece(to.chat, first_id, &head, false)
            .await?
        {
            Edited::NoText => {
                let (cap, rest) = take_caption(&edit.text);
                let cap = cap.unwrap_or_default();
                caption = true;
                self.inner
                    .retrying("edit a caption", || {
                        self.inner.edit_piece(to.chat, first_id, &cap, true)
                    })
                    .await?;
                texts = std::iter::once(cap).chain(text_parts(&rest)).collect();
            }
            Edited::Changed | Edited::Unchanged => {}
        }
        debug!(caption, parts = texts.len(), "edited the first part");
        let mut parts = vec![first.clone()];
        for (i, text) in texts.iter().enumerate().skip(1) {
            match edit.parts.get(i) {
                Some(old) => {
                    let id = message_id(old)?;
                    self.inner
                        .retrying("edit a later part", || {
                            self.inner.edit_piece(to.chat, id, text, false)
                        })
                        .await?;
                    parts.push(old.clone());
                }
                None => {
                    let piece = Piece::Text(text.clone());
                    let id = self
                        .inner
                        .retrying("send an added part", || {
                            self.inner.deliver(to, &piece, None)
                        })
                        .await?;
                    parts.push(RemoteRef {
                        chat: chat.to_owned(),
                        message_id: id.to_string(),
                    });
                }
            }
        }
        for old in edit.parts.iter().skip(texts.len()) {
            let id = message_id(old)?;
            self.inner
                .retrying("delete a surplus part", || {
                    self.inner.delete_one(to.chat, id)
                })
                .await?;
        }
        Ok(Delivered { parts })
    }

    async fn delete(&self, chat: &str, del: &OutboundDelete) -> Result<()> {
        let to = target(chat)?;
        for part in &del.parts {
            let chat = target(&part.chat).map(|t| t.chat).unwrap_or(to.chat);
            self.inner.delete_one(chat, message_id(part)?).await?;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.inner.health(None)
    }

    async fn chat_health(&self, chat: &str) -> Health {
        self.inner.health(Some(chat))
    }

    async fn push(
        &self,
        headers: &std::collections::BTreeMap<String, String>,
        body: &[u8],
    ) -> Option<rumgate_gateway::PushReply> {
        let secret = headers
            .get("x-telegram-bot-api-secret-token")
            .map(String::as_str);
        Some(match self.handle_webhook(secret, body).await {
            Ok(WebhookOutcome::Accepted) => rumgate_gateway::PushReply {
                status: 200,
                message: "accepted".into(),
            },
            Ok(WebhookOutcome::Ignored) => rumgate_gateway::PushReply {
                status: 200,
                message: "ignored: not a readable update".into(),
            },
            Err(e) => rumgate_gateway::PushReply {
                status: e.status(),
                message: e.to_string(),
            },
        })
    }

    async fn shutdown(&self) {
        self.inner.stopping.cancel();
        let running = self.running.lock().await.take();
        self.inner
            .ctx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Running { token, task }) = running {
            token.cancel();
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumgate_gateway::{Author, Span, Style};

    fn post(text: FormattedText, attachments: Vec<Attachment>) -> OutboundMessage {
        OutboundMessage {
            item_id: "t1".into(),
            group_id: "g".into(),
            author: Author::default(),
            text,
            reply_to: None,
            attachments,
            origin: None,
            item: None,
        }
    }

    fn image() -> Attachment {
        Attachment {
            kind: AttachmentKind::Image,
            mime: "image/png".into(),
            name: Some("a.png".into()),
            data: vec![1, 2, 3],
            width: None,
            height: None,
        }
    }

    #[test]
    fn a_short_note_is_one_text_piece() {
        let pieces = plan(&post(FormattedText::plain("hi"), vec![])).expect("plan");
        assert!(matches!(&pieces[..], [Piece::Text(t)] if t.text == "hi"));
    }

    #[test]
    fn an_empty_post_is_invalid() {
        assert!(matches!(
            plan(&post(FormattedText::plain("  \n"), vec![])),
            Err(GatewayError::Invalid(_))
        ));
    }

    #[test]
    fn a_long_caption_overflows_into_follow_up_messages() {
        let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let bold_end = text.len();
        let t = FormattedText::new(text.clone(), vec![Span::new(0, bold_end, Style::Bold)])
            .expect("valid");
        let pieces = plan(&post(t, vec![image()])).expect("plan");
        let Piece::Photo {
            caption: Some(caption),
            ..
        } = &pieces[0]
        else {
            panic!("{pieces:?}");
        };
        assert!(rumgate_gateway::text::utf16_len(&caption.text) <= MAX_CAPTION_UNITS);
        let mut joined = caption.text.clone();
        for p in &pieces[1..] {
            let Piece::Text(t) = p else { panic!("{p:?}") };
            assert_eq!(t.spans.len(), 1, "bold continues");
            joined.push_str(&t.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_photo_without_text_has_no_caption_and_files_become_notes() {
        let mut file = image();
        file.kind = AttachmentKind::File;
        file.name = Some("report.pdf".into());
        let pieces = plan(&post(FormattedText::default(), vec![image(), file])).expect("plan");
        match &pieces[..] {
            [Piece::Photo {
                caption: Some(c), ..
            }] => {
                assert_eq!(c.text, "[file report.pdf not mirrored]")
            }
            other => panic!("{other:?}"),
        }
        let pieces = plan(&post(FormattedText::default(), vec![image()])).expect("plan");
        assert!(matches!(&pieces[..], [Piece::Photo { caption: None, .. }]));
    }

    #[test]
    fn webhook_errors_map_to_statuses() {
        assert_eq!(WebhookError::BadSecret.status(), 401);
        assert_eq!(WebhookError::Unavailable("x".into()).status(), 503);
        assert_eq!(WebhookError::NotWebhookMode.status(), 404);
    }
}
