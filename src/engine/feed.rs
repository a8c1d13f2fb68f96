//! Live feed of included items: the hub decrypts each block once and fans it out per group.
//!
//! Each batch carries the group's cursor before it (`prev`), so a subscriber that has seen
//! everything up to `prev` knows the batch follows without a gap.

use crate::chain::object::PostPayload;
use crate::chain::{GroupId, Trx, TrxKind};
use crate::crypto::GroupKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// One included item as the API shows it (posts listing, SSE, WebSocket).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemView {
    /// Position in the stream; pass as `after` / `Last-Event-ID` to resume after this item.
    pub cursor: String,
    pub trx_id: String,
    pub group_id: String,
    pub height: u64,
    /// Hex ed25519 key of the signer.
    pub sender: String,
    /// Sender's timestamp, unix milliseconds.
    pub timestamp: u64,
    /// The ActivityStreams object; `null` when this node cannot decrypt it.
    #[schema(value_type = Option<Object>)]
    pub object: Option<serde_json::Value>,
    /// For bridged messages: adapter, chat, message id, author.
    #[schema(value_type = Option<Object>)]
    pub origin: Option<serde_json::Value>,
}

/// Decrypts a POST payload; `None` without the key or for an undecodable payload.
pub fn open_post(trx: &Trx, key: Option<&GroupKey>) -> Option<PostPayload> {
    if trx.body.kind != TrxKind::Post {
        return None;
    }
    let plain = trx.open_payload(key?).ok()?;
    serde_json::from_slice(&plain).ok()
}

impl ItemView {
    pub fn new(seq: i64, height: u64, trx: &Trx, payload: Option<PostPayload>) -> Self {
        let (object, origin) = match payload {
            Some(p) => (Some(p.object), p.origin),
            None => (None, None),
        };
        Self {
            cursor: seq.to_string(),
            trx_id: trx.trx_id().to_hex(),
            group_id: trx.body.group_id.to_hex(),
            height,
            sender: hex::encode(trx.body.sender),
            timestamp: trx.body.timestamp,
            object,
            origin,
        }
    }
}

/// A pre-serialised item: serialised once, sent to every subscriber.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub cursor: i64,
    pub json: Arc<str>,
}

impl FeedItem {
    pub fn from_view(view: &ItemView) -> Self {
        Self {
            cursor: view.cursor.parse().unwrap_or(0),
            json: serde_json::to_string(view).unwrap_or_default().into(),
        }
    }
}

#[derive(Debug)]
pub struct Batch {
    pub group_id: GroupId,
    /// The group's cursor before the first item of this batch.
    pub prev: i64,
    pub items: Vec<FeedItem>,
}

pub struct Hub {
    feeds: Mutex<HashMap<GroupId, broadcast::Sender<Arc<Batch>>>>,
    capacity: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_capacity(crate::config::DEFAULT_STREAM_BUFFER)
    }
}

impl Hub {
    /// `capacity`: batches buffered per group before a lagging subscriber is told to resume.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            feeds: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn subscribe(&self, gid: GroupId) -> broadcast::Receiver<Arc<Batch>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(gid)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Whether anyone listens to this group (so idle groups cost nothing).
    pub fn has_subscribers(&self, gid: &GroupId) -> bool {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.get(gid).is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub fn publish(&self, batch: Batch) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = feeds.get(&batch.group_id) {
            if tx.send(Arc::new(batch)).is_err() {
                // The last subscriber went away: forget the channel.
                feeds.retain(|_, tx| tx.receiver_count() > 0);
            }
        }
    }

    pub fn subscriber_count(&self) -> usize {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.values().map(|tx| tx.receiver_count()).sum()
    }
}
