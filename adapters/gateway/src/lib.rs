//! The contract between the rumgate node and its messenger adapters: the [`Gateway`] trait, the
//! message model, the inbound channel and the text utilities every adapter needs.
//!
//! The node and the adapters (telegram, mixin, webhook) all depend on this crate and never on each
//! other; the node holds adapters as [`DynGateway`].

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
pub mod html;
pub mod inbound;
pub mod model;
pub mod text;

pub use error::{FormatError, GatewayError, Result};
pub use inbound::{inbound_channel, Ack, AckResult, InboundReceiver, InboundRequest, InboundSink};
pub use model::{
    Attachment, AttachmentKind, Author, Delivered, FormattedText, InboundEvent, InboundMessage,
    Origin, OutboundDelete, OutboundEdit, OutboundMessage, RemoteRef, Span, Style,
};

/// One messenger account, seen from the node.
///
/// Outbound calls for one chat come one at a time, in chain order. The node retries on
/// [`GatewayError::is_retryable`] errors and after a crash, so `send` may see the same `item_id`
/// again; adapters whose remote takes an idempotency key derive it from `item_id`. Inbound events
/// flow through the [`GatewayContext`] given to `start`.
///
/// Adapter crates check their implementation with the `conformance` suite (feature
/// `conformance`).
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    /// The adapter kind: `"telegram"`, `"mixin"`, `"webhook"`.
    fn kind(&self) -> &'static str;

    /// Begins the inbound flow (polling, websocket, webhook routes) in tasks the gateway owns and
    /// stops when `ctx` is cancelled or on [`Gateway::shutdown`]. Returns once that flow is
    /// running; an error means it could not start (bad credentials …).
    async fn start(&self, ctx: GatewayContext) -> Result<()>;

    /// Delivers one group post into `chat`, split into several messages if it is too long.
    async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered>;

    /// Changes the text of an item delivered earlier; the result replaces the item's parts.
    async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered>;

    /// Removes every part of an item delivered earlier. Parts that are already gone are not an
    /// error: the node may repeat a delete whose answer it did not see.
    async fn delete(&self, chat: &str, del: &OutboundDelete) -> Result<()>;

    async fn health(&self) -> Health;

    /// How the gateway is doing for one chat: an account can be fine while one chat is lost (the
    /// bot was removed from it). Defaults to [`Gateway::health`].
    async fn chat_health(&self, _chat: &str) -> Health {
        self.health().await
    }

    /// Remote updates pushed to the node's `/hooks/{link}` route (Telegram's webhook mode).
    /// `headers` has lower-case names. The adapter handles the body through its inbound sink
    /// and answers only once the node has acknowledged it. `None`: this gateway takes no pushes.
    async fn push(
        &self,
        _headers: &std::collections::BTreeMap<String, String>,
        _body: &[u8],
    ) -> Option<PushReply> {
        None
    }

    /// Stops the inbound flow and waits for the gateway's tasks to finish.
    async fn shutdown(&self);
}

/// The answer to a pushed update: the HTTP status for the remote and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReply {
    /// 2xx: handled (stored, known or deliberately ignored); others make the remote retry.
    pub status: u16,
    pub message: String,
}

/// A gateway as the node's registry holds it.
pub type DynGateway = Arc<dyn Gateway>;

/// How a gateway is doing, as shown in link status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Health {
    pub state: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Ok,
    /// Working partly or with delays (being rate limited, another poller holds the updates …).
    Degraded,
    /// Not working (credentials rejected, remote unreachable for long).
    Failing,
}

impl Health {
    pub fn ok() -> Self {
        Self {
            state: HealthState::Ok,
            detail: None,
        }
    }

    pub fn degraded(detail: impl Into<String>) -> Self {
        Self {
            state: HealthState::Degraded,
            detail: Some(detail.into()),
        }
    }

    pub fn failing(detail: impl Into<String>) -> Self {
        Self {
            state: HealthState::Failing,
            detail: Some(detail.into()),
        }
    }
}

/// What a gateway gets from the node when it starts: where to put inbound events, and when to
/// stop.
#[derive(Debug, Clone)]
pub struct GatewayContext {
    inbound: InboundSink,
    shutdown: CancellationToken,
}

impl GatewayContext {
    /// A context for gateway instance `gateway` (the node's name for the account, e.g.
    /// `"telegram:mybot"`), which tags every event it submits through `inbound`.
    pub fn new(
        gateway: impl Into<Arc<str>>,
        inbound: &InboundSink,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inbound: inbound.for_gateway(gateway),
            shutdown,
        }
    }

    pub fn gateway(&self) -> &str {
        self.inbound.gateway()
    }

    pub fn inbound(&self) -> &InboundSink {
        &self.inbound
    }

    /// The node's shutdown signal; adapters derive child tokens from it for their tasks.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Resolves once the node asks the gateway to stop.
    pub async fn cancelled(&self) {
        self.shutdown.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The node stores gateways as trait objects; this fails to compile if the trait stops being
    // object-safe.
    struct Null;

    #[async_trait]
    impl Gateway for Null {
        fn kind(&self) -> &'static str {
            "null"
        }
        async fn start(&self, _ctx: GatewayContext) -> Result<()> {
            Ok(())
        }
        async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered> {
            Ok(Delivered {
                parts: vec![RemoteRef {
                    chat: chat.into(),
                    message_id: msg.item_id.clone(),
                }],
            })
        }
        async fn edit(&self, _chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
            Ok(Delivered {
                parts: edit.parts.clone(),
            })
        }
        async fn delete(&self, _chat: &str, _del: &OutboundDelete) -> Result<()> {
            Ok(())
        }
        async fn health(&self) -> Health {
            Health::ok()
        }
        async fn shutdown(&self) {}
    }

    #[tokio::test]
    async fn gateways_work_as_trait_objects() {
        let gw: DynGateway = Arc::new(Null);
        let (sink, _rx) = inbound_channel(1);
        let token = CancellationToken::new();
        let ctx = GatewayContext::new("null:1", &sink, token.child_token());
        assert_eq!(ctx.gateway(), "null:1");
        assert_eq!(ctx.inbound().gateway(), "null:1");
        gw.start(ctx.clone()).await.expect("start");
        assert!(!ctx.is_cancelled());
        token.cancel();
        ctx.cancelled().await;
        assert_eq!(gw.kind(), "null");
        assert_eq!(gw.health().await, Health::ok());
        gw.shutdown().await;
    }

    #[test]
    fn health_serializes_in_snake_case() {
        let json = serde_json::to_value(Health::degraded("409: another poller")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"state": "degraded", "detail": "409: another poller"})
        );
        assert_eq!(
            serde_json::to_value(Health::ok()).expect("json"),
            serde_json::json!({"state": "ok"})
        );
    }
}
