//! Inbound: Blaze messages → node events, acknowledged to Mixin only once the node stored them.
//!
//! Messages are handled one at a time in the order Blaze delivers them, so a chat's messages
//! become trx in order. Mixin delivers a message again until it is acknowledged (and sometimes
//! anyway); ids stored recently are acknowledged again without bothering the node, older repeats
//! are answered by the node's durable dedup.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumgate_gateway::{
    Ack, Attachment, AttachmentKind, Author, FormattedText, GatewayContext, InboundEvent,
    InboundMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blaze::{Connection, MessageView};
use crate::convert::{self, AttachmentPayload, Incoming};
use crate::error::Error;
use crate::{lock, Inner};

/// Messages read from Blaze but not yet handled; the connection waits when this is full.
const QUEUE: usize = 256;

pub(crate) fn spawn(
    inner: Arc<Inner>,
    ctx: GatewayContext,
    token: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let (views_tx, views_rx) = mpsc::channel(QUEUE);
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let connection = Connection {
        url: inner.account.blaze_url.clone(),
        signer: inner.signer.clone(),
        tuning: inner.options.blaze,
        health: Arc::clone(&inner.health),
    };
    let blaze = tokio::spawn(connection.run(views_tx, acks_rx, token.clone()));
    let handler = tokio::spawn(handle_all(inner, ctx, views_rx, acks_tx, token));
    vec![blaze, handler]
}

/// The ids most recently stored, forgetting the oldest beyond a capacity.
struct Recent {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Recent {
    fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

async fn handle_all(
    inner: Arc<Inner>,
    ctx: GatewayContext,
    mut views: mpsc::Receiver<MessageView>,
    acks: mpsc::UnboundedSender<String>,
    token: CancellationToken,
) {
    let mut recent = Recent::new(inner.options.dedup_window);
    loop {
        let view = tokio::select! {
            () = token.cancelled() => return,
            v = views.recv() => match v {
                Some(v) => v,
                None => return,
            },
        };
        let id = view.message_id.clone();
        if recent.contains(&id) {
            tracing::debug!(message = %id, "Mixin delivered a stored message again; acknowledging");
            let _ = acks.send(id);
            continue;
        }
        let Some(event) = (tokio::select! {
            () = token.cancelled() => return,
            e = to_event(&inner, &view) => e,
        }) else {
            // Nothing to bridge (our own message, a system message): acknowledge it.
            recent.insert(id.clone());
            let _ = acks.send(id);
            continue;
        };
        let mut wait = inner.options.submit_retry;
        loop {
            let answer = tokio::select! {
                () = token.cancelled() => return,
                a = ctx.inbound().submit(event.clone()) => a,
            };
            match answer {
                Ok(Ack::Ignored { reason }) => {
                    // Names the conversation, which is how operators find the id to link.
                    tracing::info!(message = %id, %reason, "Mixin message not bridged");
                    break;
                }
                Ok(ack) => {
                    tracing::debug!(message = %id, ?ack, "stored; acknowledging to Mixin");
                    break;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(message = %id, error = %e, "the node did not store a Mixin message; retrying");
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    // The node says it never will store it: acknowledge, or Mixin repeats it
                    // for a week.
                    tracing::warn!(message = %id, error = %e, "the node refused a Mixin message");
                    break;
                }
            }
        }
        recent.insert(id.clone());
        let _ = acks.send(id);
    }
}

/// The event a Mixin message becomes, or `None` when there is nothing to bridge.
async fn to_event(inner: &Inner, view: &MessageView) -> Option<InboundEvent> {
    let chat = view.conversation_id.to_ascii_lowercase();
    let message_id = view.message_id.clone();
    let incoming = convert::classify(view, &inner.account.user_id);
    let text = match incoming {
        Incoming::Skip(why) => {
            tracing::debug!(message = %message_id, %why, "not bridged");
            return None;
        }
        Incoming::Recall { target } => {
            return Some(InboundEvent::Delete {
                chat,
                message_id: target,
            })
        }
        Incoming::Text(t) => (t, None),
        Incoming::Attachment { kind, payload } => match download(inner, kind, &payload).await {
            Ok(a) => (String::new(), Some(a)),
            Err(why) => (convert::attachment_placeholder(kind, &why), None),
        },
    };
    let author = Author {
        id: view.user_id.clone(),
        name: name_of(inner, &view.user_id).await,
    };
    Some(InboundEvent::Message(InboundMessage {
        chat,
        message_id,
        author,
        text: FormattedText::plain(text.0),
        reply_to: Some(view.quote_message_id.clone()).filter(|q| !q.is_empty()),
        attachments: text.1.into_iter().collect(),
        sent_at: convert::parse_timestamp(&view.created_at),
        from_self: false,
    }))
}

/// The user's display name (asked of Mixin once), or a short id when it cannot be had.
async fn name_of(inner: &Inner, user_id: &str) -> String {
    if let Some(n) = lock(&inner.names).get(user_id) {
        return n.clone();
    }
    match inner.client.user(user_id).await {
        Ok(u) if !u.full_name.trim().is_empty() => {
            let name = u.full_name.trim().to_string();
            lock(&inner.names).insert(user_id.to_string(), name.clone());
            name
        }
        Ok(_) | Err(_) => {
            // Remembered too: a name is not worth a request per message while Mixin is down.
            let short: String = user_id.chars().take(8).collect();
            lock(&inner.names).insert(user_id.to_string(), short.clone());
            short
        }
    }
}

/// Fetches an attachment within the size limit; `Err` says why it is not mirrored.
async fn download(
    inner: &Inner,
    kind: AttachmentKind,
    payload: &AttachmentPayload,
) -> Result<Attachment, String> {
    let limit = inner.account.max_image_bytes;
    if payload.size > limit {
        return Err(format!(
            "{} bytes, over the {limit}-byte limit",
            payload.size
        ));
    }
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        let result: Result<Option<Vec<u8>>, Error> = async {
            let view = inner.client.attachment(&payload.attachment_id).await?;
            if view.view_url.is_empty() {
                return Err(Error::Protocol("the attachment has no view_url".into()));
            }
            inner.client.download(&view.view_url, limit).await
        }
        .await;
        match result {
            Ok(Some(data)) => {
                return Ok(Attachment {
                    kind,
                    mime: if payload.mime_type.is_empty() {
                        "application/octet-stream".into()
                    } else {
                        payload.mime_type.clone()
                    },
                    name: payload.name.clone(),
                    data,
                    width: payload.width,
                    height: payload.height,
                })
            }
            Ok(None) => return Err(format!("larger than the {limit}-byte limit")),
            Err(e) if e.is_retryable() => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("download failed: {last}"))
}
