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
mod health;
pub mod pacing;
mod plan;
mod poll;
mod webhook;

pub use client::{BotInfo, Client};
pub use config::{BotToken, ConfigError, TelegramConfig, WebhookSecret};
pub use convert::ChatTarget;
pub use pacing::{PacingLimits, Window};
pub use webhook::{WebhookError, WebhookOutcome};

use client::{Downloaded, Edited, Photo, PollError};
use convert::{Converted, FileToFetch};
use pacing::Pacer;
use plan::{message_id, plan, take_caption, target, text_parts, Piece};
use poll::{poll_loop, Backoff, Step};

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
