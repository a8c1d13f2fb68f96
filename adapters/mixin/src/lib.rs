//! Mixin Messenger gateway for rumgate: a small in-house client (no maintained Rust SDK exists)
//! speaking Ed25519-JWT-signed REST and the Blaze websocket, and [`MixinGateway`], its
//! [`Gateway`] implementation.
//!
//! * A link's `chat` is a Mixin conversation id (group or 1:1).
//! * Outbound posts become `POST /messages` with `message_id`s derived from the trx id, so a
//!   retried request never shows twice. Mixin has no edit: an `Update` recalls the old text
//!   parts and sends the new text as new messages; a `Delete` recalls every part.
//! * Inbound messages arrive over Blaze; each is acknowledged only once the node has stored it,
//!   so a crash in between makes Mixin deliver it again.

pub mod auth;
mod b64;
pub mod blaze;
pub mod client;
pub mod config;
pub mod conversation;
pub mod convert;
pub mod error;
mod health;
mod inbound;

#[cfg(feature = "fake")]
pub mod fake;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rumgate_gateway::{
    Delivered, Gateway, GatewayContext, GatewayError, Health, OutboundDelete, OutboundEdit,
    OutboundMessage, RemoteRef, Result,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use auth::Signer;
pub use blaze::BlazeTuning;
pub use client::{Client, MessageRequest, RateLimitPolicy};
pub use config::{Account, Keystore, MixinConfig, Secret, SessionKey};
pub use conversation::{group_conversation_id, unique_conversation_id};
pub use error::Error;

use convert::{Ids, Target};
use health::HealthBoard;

/// How long `start` waits for Mixin to confirm the credentials.
const START_CHECK: Duration = Duration::from_secs(5);

/// The adapter kind, as links and origins name it.
pub const KIND: &str = "mixin";

/// Timings and limits of a gateway; the defaults suit the real Mixin, tests shorten them.
#[derive(Debug, Clone)]
pub struct Options {
    pub blaze: BlazeTuning,
    pub rate: RateLimitPolicy,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// How many recently stored message ids the gateway remembers to answer Mixin's repeats
    /// without asking the node again (the node deduplicates durably anyway).
    pub dedup_window: usize,
    /// The pause before submitting an event again after the node answered with a retryable
    /// error; doubles up to 30 s.
    pub submit_retry: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            blaze: BlazeTuning::default(),
            rate: RateLimitPolicy::default(),
            http_timeout: Duration::from_secs(30),
            dedup_window: 10_000,
            submit_retry: Duration::from_millis(200),
        }
    }
}

/// One Mixin bot session as a rumgate gateway.
#[derive(Debug, Clone)]
pub struct MixinGateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) account: Account,
    pub(crate) client: Client,
    pub(crate) signer: Signer,
    pub(crate) health: Arc<HealthBoard>,
    pub(crate) options: Options,
    /// Conversation id → where its messages go (1:1 conversations need the recipient).
    targets: Mutex<HashMap<String, Target>>,
    /// User id → display name.
    pub(crate) names: Mutex<HashMap<String, String>>,
    /// Outgoing message id → the attachment already uploaded for it, so a retried send does
    /// not upload the same file again.
    uploads: Mutex<Bounded>,
    running: tokio::sync::Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A map that forgets its oldest entries beyond a capacity.
#[derive(Debug, Default)]
struct Bounded {
    map: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Bounded {
    const CAPACITY: usize = 1024;

    fn insert(&mut self, k: String, v: String) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MixinGateway {
    /// A gateway for the account `config` describes, with default timings.
    pub fn new(config: &MixinConfig) -> std::result::Result<Self, Error> {
        let account = config.validate()?;
        let mut options = Options::default();
        options.rate.base = account.rate_limit_backoff;
        options.rate.max = options.rate.max.max(account.rate_limit_backoff);
        Self::with_options(account, options)
    }

    pub fn with_options(account: Account, options: Options) -> std::result::Result<Self, Error> {
        let signer = Signer::new(
            account.user_id.clone(),
            account.session_id.clone(),
            account.key.clone(),
        );
        let health = Arc::new(HealthBoard::default());
        let client = Client::with_health(
            &account.api_url,
            signer.clone(),
            options.rate,
            options.http_timeout,
            Arc::clone(&health),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                account,
                client,
                signer,
                health,
                options,
                targets: Mutex::default(),
                names: Mutex::default(),
                uploads: Mutex::default(),
                running: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The bot's user id.
    pub fn user_id(&self) -> &str {
        &self.inner.account.user_id
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Whether the Blaze websocket is connected and has listed pending messages.
    pub fn is_connected(&self) -> bool {
        self.inner.health.blaze_is_up()
    }
}

impl Inner {
    /// Where messages for conversation `chat` go, asked of Mixin once per conversation.
    async fn target(&self, chat: &str) -> std::result::Result<Target, Error> {
        let chat = chat.trim().to_ascii_lowercase();
        if let Some(t) = lock(&self.targets).get(&chat) {
            return Ok(t.clone());
        }
        let conv = match self.client.conversation(&chat).await {
            Ok(c) => c,
            Err(Error::Api { code: 404, .. }) => {
                return Err(Error::Api {
                    status: 202,
                    code: 404,
                    description: format!(
                        "conversation {chat} not found: add the bot to the group first"
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        let recipient_id = if conv.category.eq_ignore_ascii_case("CONTACT") {
            conv.participants
                .iter()
                .map(|p| p.user_id.to_ascii_lowercase())
                .find(|u| *u != self.account.user_id)
                .unwrap_or_default()
        } else {
            String::new()
        };
        let target = Target {
            conversation_id: chat.clone(),
            recipient_id,
        };
        lock(&self.targets).insert(chat, target.clone());
        Ok(target)
    }

    fn ids(&self, target: &Target) -> Ids {
        Ids::new(&self.account.user_id, &target.conversation_id)
    }

    /// The message for attachment `j` of `item_id`, uploading its bytes unless a previous
    /// attempt already did.
    async fn attachment_request(
        &self,
        target: &Target,
        ids: &Ids,
        item_id: &str,
        j: usize,
        attachment: &rumgate_gateway::Attachment,
    ) -> std::result::Result<MessageRequest, Error> {
        let message_id = ids.attachment(item_id, j);
        let known = lock(&self.uploads).map.get(&message_id).cloned();
        let attachment_id = match known {
            Some(id) => id,
            None => {
                let view = self.client.create_attachment().await?;
                if view.upload_url.is_empty() || view.attachment_id.is_empty() {
                    return Err(Error::Protocol(
                        "POST /attachments answered without an upload URL".into(),
                    ));
                }
                self.client
                    .upload(&view.upload_url, attachment.data.clone())
                    .await?;
                lock(&self.uploads).insert(message_id.clone(), view.attachment_id.clone());
                view.attachment_id
            }
        };
        Ok(convert::attachment_message(
            target,
            message_id,
            attachment,
            attachment_id,
        ))
    }
}

fn part(target: &Target, m: &MessageRequest) -> RemoteRef {
    RemoteRef {
        chat: target.conversation_id.clone(),
        message_id: m.message_id.clone(),
    }
}

#[async_trait]
impl Gateway for MixinGateway {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// Checks the credentials (`GET /me`), then runs the Blaze connection and the inbound loop
    /// until `ctx` is cancelled or [`Gateway::shutdown`]. Network trouble at start is not an
    /// error: the connection keeps retrying; refused credentials are.
    async fn start(&self, ctx: GatewayContext) -> Result<()> {
        // Bounded: the node starts its gateways one after another, and an unreachable Mixin must
        // not hold the node's start-up for a whole HTTP timeout.
        let me = tokio::time::timeout(START_CHECK, self.inner.client.me())
            .await
            .unwrap_or_else(|_| Err(Error::Transport("GET /me timed out".into())));
        match me {
            Ok(me) if !me.user_id.eq_ignore_ascii_case(&self.inner.account.user_id) => {
                return Err(GatewayError::Unauthorized(format!(
                    "the keystore's session belongs to user {}, not to app_id {}",
                    me.user_id, self.inner.account.user_id
                )));
            }
            Ok(_) => {}
            Err(e @ Error::Unauthorized(_)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "Mixin API not reachable at start; Blaze keeps retrying");
            }
        }
        let token = ctx.shutdown_token().child_token();
        let tasks = inbound::spawn(Arc::clone(&self.inner), ctx, token.clone());
        let previous = self
            .inner
            .running
            .lock()
            .await
            .replace(Running { token, tasks });
        if let Some(old) = previous {
            old.token.cancel();
            for t in old.tasks {
                let _ = t.await;
            }
        }
        Ok(())
    }

    async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered> {
        let inner = &self.inner;
        let target = inner.target(chat).await?;
        let ids = inner.ids(&target);
        let mut requests = Vec::new();
        for (j, a) in msg.attachments.iter().enumerate() {
            requests.push(
                inner
                    .attachment_request(&target, &ids, &msg.item_id, j, a)
                    .await?,
            );
        }
        for (k, text) in convert::text_parts(&msg.text).iter().enumerate() {
            requests.push(convert::text_message(
                &target,
                ids.text(&msg.item_id, k),
                text,
            ));
        }
        let Some(first) = requests.first_mut() else {
            return Err(GatewayError::Invalid(
                "nothing to send: no text, no attachment".into(),
            ));
        };
        if let Some(r) = msg
            .reply_to
            .as_ref()
            .filter(|r| r.chat.eq_ignore_ascii_case(chat))
        {
            first.quote_message_id = r.message_id.clone();
        }
        inner.client.post_messages(&requests).await?;
        Ok(Delivered {
            parts: requests.iter().map(|m| part(&target, m)).collect(),
        })
    }

    /// Mixin cannot edit: the text parts are recalled and the new text is sent as new messages
    /// (attachment parts stay). Ids derive from the replaced parts and the new text, so
    /// repeating the same edit repeats the same requests.
    async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
        let inner = &self.inner;
        let target = inner.target(chat).await?;
        let ids = inner.ids(&target);
        let attachment_ids: HashSet<String> = (0..edit.parts.len())
            .map(|j| ids.attachment(&edit.item_id, j))
            .collect();
        let (kept, replaced): (Vec<&RemoteRef>, Vec<&RemoteRef>) = edit
            .parts
            .iter()
            .partition(|p| attachment_ids.contains(&p.message_id));
        let generation = replaced
            .first()
            .map_or_else(|| edit.item_id.clone(), |p| p.message_id.clone());
        let mut requests: Vec<MessageRequest> = replaced
            .iter()
            .map(|p| convert::recall_message(&target, &ids, &p.message_id))
            .collect();
        let texts = convert::text_parts(&edit.text);
        let new: Vec<MessageRequest> = texts
            .iter()
            .enumerate()
            .map(|(k, t)| {
                convert::text_message(&target, ids.edit(&edit.item_id, &generation, t, k), t)
            })
            .collect();
        if new.is_empty() && kept.is_empty() {
            return Err(GatewayError::Invalid("an edit to an empty text".into()));
        }
        requests.extend(new.iter().cloned());
        inner.client.post_messages(&requests).await?;
        let mut parts: Vec<RemoteRef> = kept.into_iter().cloned().collect();
        parts.extend(new.iter().map(|m| part(&target, m)));
        Ok(Delivered { parts })
    }

    /// Recalls every part; recalling again is harmless (same recall ids).
    async fn delete(&self, chat: &str, del: &OutboundDelete) -> Result<()> {
        if del.parts.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let target = inner.target(chat).await?;
        let ids = inner.ids(&target);
        let requests: Vec<MessageRequest> = del
            .parts
            .iter()
            .map(|p| convert::recall_message(&target, &ids, &p.message_id))
            .collect();
        inner.client.post_messages(&requests).await?;
        Ok(())
    }

    async fn health(&self) -> Health {
        self.inner.health.health()
    }

    async fn shutdown(&self) {
        let running = self.inner.running.lock().await.take();
        if let Some(r) = running {
            r.token.cancel();
            for t in r.tasks {
                let _ = t.await;
            }
        }
    }
}
