//! Helpers shared by the integration tests: a stand-in for the node's inbound side, and polling
//! with a deadline.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumgate_gateway::{
    inbound_channel, Ack, AckResult, Gateway, GatewayContext, InboundEvent, InboundReceiver,
    InboundRequest,
};
use rumgate_telegram::TelegramGateway;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, or panics after `deadline` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the simulated node stored: one trx per (chat, message id), plus every submission seen.
#[derive(Debug, Default)]
pub struct Store {
    pub trx: BTreeMap<(String, String), InboundEvent>,
    pub submissions: Vec<InboundEvent>,
}

/// A stand-in for the node: stores each inbound event once (deduplicating by chat and message
/// id, as the node's unique index does) and answers the adapter.
#[derive(Clone, Default)]
pub struct SimNode {
    store: Arc<Mutex<Store>>,
}

impl SimNode {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores (or recognises) the event and returns the answer the node would give.
    pub fn ingest(&self, event: &InboundEvent) -> AckResult {
        let mut store = self.store();
        store.submissions.push(event.clone());
        let key = match event {
            InboundEvent::Message(m) => (m.chat.clone(), m.message_id.clone()),
            InboundEvent::Edit {
                chat, message_id, ..
            } => (
                chat.clone(),
                format!("{message_id}/edit/{}", store.submissions.len()),
            ),
            InboundEvent::Delete { chat, message_id } => {
                (chat.clone(), format!("{message_id}/delete"))
            }
            InboundEvent::ChatMigrated { chat, new_chat } => {
                (chat.clone(), format!("migrated/{new_chat}"))
            }
        };
        let trx_id = format!("trx-{}-{}", key.0, key.1);
        if store.trx.contains_key(&key) {
            return Ok(Ack::Duplicate { trx_id });
        }
        store.trx.insert(key, event.clone());
        Ok(Ack::Stored { trx_id })
    }

    /// Messages stored, as (chat, message id, text).
    pub fn messages(&self) -> Vec<(String, String, String)> {
        self.store()
            .trx
            .values()
            .filter_map(|e| match e {
                InboundEvent::Message(m) => {
                    Some((m.chat.clone(), m.message_id.clone(), m.text.text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<InboundEvent> {
        self.store().trx.values().cloned().collect()
    }

    pub fn submissions(&self) -> Vec<InboundEvent> {
        self.store().submissions.clone()
    }
}

/// A started gateway with the node loop answering it.
pub struct Running {
    pub token: CancellationToken,
    pub node: JoinHandle<()>,
}

/// Starts `gw` with `node` answering every event at once.
pub async fn start(gw: &TelegramGateway, node: &SimNode) -> Running {
    let (sink, rx) = inbound_channel(16);
    let token = CancellationToken::new();
    gw.start(GatewayContext::new("telegram:test", &sink, token.clone()))
        .await
        .expect("start");
    let node = node.clone();
    let task = tokio::spawn(answer_all(rx, node));
    Running { token, node: task }
}

async fn answer_all(mut rx: InboundReceiver, node: SimNode) {
    while let Some(InboundRequest { event, reply, .. }) = rx.recv().await {
        let _ = reply.send(node.ingest(&event));
    }
}

impl Running {
    pub async fn stop(self, gw: &TelegramGateway) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), gw.shutdown())
            .await
            .expect("shutdown within 10 s");
        self.node.abort();
    }
}

/// Starts `gw` and hands back the raw receiver, for tests that answer (or do not answer) by hand.
pub async fn start_raw(gw: &TelegramGateway) -> (InboundReceiver, CancellationToken) {
    let (sink, rx) = inbound_channel(16);
    let token = CancellationToken::new();
    gw.start(GatewayContext::new("telegram:test", &sink, token.clone()))
        .await
        .expect("start");
    (rx, token)
}

/// The next request, within the deadline.
pub async fn next_request(rx: &mut InboundReceiver) -> (InboundEvent, oneshot::Sender<AckResult>) {
    let req = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("an inbound event within the deadline")
        .expect("the sink is open");
    (req.event, req.reply)
}
