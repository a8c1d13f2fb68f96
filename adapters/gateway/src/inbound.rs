//! The bounded channel that carries inbound events from adapters to the node, with per-event acks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::{GatewayError, Result};
use crate::model::InboundEvent;

/// The node's answer to one inbound event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Ack {
    /// Stored durably as a new trx.
    Stored { trx_id: String },
    /// Already stored earlier (same gateway, chat and remote message id).
    Duplicate { trx_id: String },
    /// Deliberately not stored (no link for this chat, message from the gateway itself …).
    Ignored { reason: String },
}

/// What the node replies: an [`Ack`], or an error meaning "not stored" — retryable errors ask the
/// adapter to submit the event again later, others say it never will be stored.
pub type AckResult = Result<Ack>;

/// One event waiting for the node, with the means to answer it.
#[derive(Debug)]
pub struct InboundRequest {
    /// The gateway instance the event came from, as given to [`crate::GatewayContext::new`].
    pub gateway: Arc<str>,
    pub event: InboundEvent,
    pub reply: oneshot::Sender<AckResult>,
}

impl InboundRequest {
    /// Answers the adapter; returns false when it had stopped waiting.
    pub fn respond(self, result: AckResult) -> bool {
        self.reply.send(result).is_ok()
    }
}

/// The adapters' end of the channel: cheap to clone, one per gateway instance.
#[derive(Debug, Clone)]
pub struct InboundSink {
    tx: mpsc::Sender<InboundRequest>,
    gateway: Arc<str>,
}

/// The node's end of the channel.
#[derive(Debug)]
pub struct InboundReceiver {
    rx: mpsc::Receiver<InboundRequest>,
}

/// A channel holding at most `capacity` unanswered events (at least one), so that a slow node
/// slows the adapters down instead of buffering without bound.
pub fn inbound_channel(capacity: usize) -> (InboundSink, InboundReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        InboundSink {
            tx,
            gateway: Arc::from(""),
        },
        InboundReceiver { rx },
    )
}

impl InboundSink {
    /// Hands `event` to the node and waits until it is durably stored, recognised as a duplicate
    /// or ignored. Adapters commit their own cursor (update offset, ack) only after `Ok`.
    ///
    /// Errors when the node does not store the event, including when it has stopped
    /// (`Transient`); this future does not watch the shutdown signal, so adapters `select!` it
    /// with [`crate::GatewayContext::cancelled`].
    pub async fn submit(&self, event: InboundEvent) -> Result<Ack> {
        let (reply, answer) = oneshot::channel();
        let request = InboundRequest {
            gateway: Arc::clone(&self.gateway),
            event,
            reply,
        };
        self.tx.send(request).await.map_err(|_| {
            GatewayError::Transient("the node no longer accepts inbound events".into())
        })?;
        answer.await.map_err(|_| {
            GatewayError::Transient("the node dropped the event without answering".into())
        })?
    }

    /// A sink for the same node whose events say they came from gateway `gateway`.
    pub fn for_gateway(&self, gateway: impl Into<Arc<str>>) -> Self {
        Self {
            tx: self.tx.clone(),
            gateway: gateway.into(),
        }
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// True once the node's receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl InboundReceiver {
    /// The next event; `None` once every sink is dropped and the queue is drained.
    pub async fn recv(&mut self) -> Option<InboundRequest> {
        self.rx.recv().await
    }

    /// Stops accepting events; those already queued can still be received.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Author, FormattedText, InboundMessage};

    fn event(id: &str) -> InboundEvent {
        InboundEvent::Message(InboundMessage {
            chat: "c".into(),
            message_id: id.into(),
            author: Author::default(),
            text: FormattedText::plain("hi"),
            reply_to: None,
            attachments: Vec::new(),
            sent_at: None,
            from_self: false,
        })
    }

    #[tokio::test]
    async fn submit_resolves_with_the_nodes_ack_and_carries_the_gateway_id() {
        let (sink, mut rx) = inbound_channel(4);
        let sink = sink.for_gateway("telegram:bot");
        let node = tokio::spawn(async move {
            let req = rx.recv().await.expect("a request");
            assert_eq!(&*req.gateway, "telegram:bot");
            assert_eq!(req.event, event("1"));
            assert!(req.respond(Ok(Ack::Stored {
                trx_id: "t1".into()
            })));
        });
        let ack = sink.submit(event("1")).await;
        assert_eq!(
            ack,
            Ok(Ack::Stored {
                trx_id: "t1".into()
            })
        );
        node.await.expect("node task");
    }

    #[tokio::test]
    async fn submit_passes_node_errors_through() {
        let (sink, mut rx) = inbound_channel(1);
        let node = tokio::spawn(async move {
            let req = rx.recv().await.expect("a request");
            req.respond(Err(GatewayError::Transient("database busy".into())));
        });
        let res = sink.submit(event("1")).await;
        assert_eq!(res, Err(GatewayError::Transient("database busy".into())));
        node.await.expect("node task");
    }

    #[tokio::test]
    async fn submit_fails_retryably_when_the_node_drops_the_request_or_is_gone() {
        let (sink, mut rx) = inbound_channel(1);
        let node = tokio::spawn(async move {
            drop(rx.recv().await);
            rx
        });
        let res = sink.submit(event("1")).await;
        assert!(matches!(res, Err(GatewayError::Transient(_))), "{res:?}");
        let rx = node.await.expect("node task");

        drop(rx);
        assert!(sink.is_closed());
        let res = sink.submit(event("2")).await;
        assert!(matches!(res, Err(GatewayError::Transient(_))), "{res:?}");
    }

    #[tokio::test]
    async fn a_zero_capacity_still_makes_a_working_channel() {
        let (sink, mut rx) = inbound_channel(0);
        let node = tokio::spawn(async move {
            let req = rx.recv().await.expect("a request");
            req.respond(Ok(Ack::Ignored {
                reason: "no link".into(),
            }));
        });
        assert!(matches!(
            sink.submit(event("1")).await,
            Ok(Ack::Ignored { .. })
        ));
        node.await.expect("node task");
    }
}
