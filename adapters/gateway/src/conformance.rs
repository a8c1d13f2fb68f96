//! A conformance suite that every adapter's tests run against its fake server (feature `conformance`).
//!
//! Each check drives a [`Gateway`] and compares what the gateway answered with what the fake server
//! saw, as the fake reports it through [`ConformanceObserver`] (outbound) or produces it through
//! [`ConformanceInjector`] (inbound). A check returns the refs it got, so adapter tests can go on
//! to assert protocol details; a broken expectation is a [`Failure`] naming the check.
//!
//! Outbound checks can share one gateway and chat. Inbound checks start and shut the gateway down
//! themselves.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::inbound::{inbound_channel, Ack, AckResult, InboundReceiver, InboundRequest};
use crate::model::{
    Author, Delivered, FormattedText, InboundEvent, InboundMessage, OutboundDelete, OutboundEdit,
    OutboundMessage, RemoteRef,
};
use crate::text::Unit;
use crate::{Gateway, GatewayContext};

/// How long inbound checks wait for an event, and for `shutdown` to finish.
pub const INBOUND_DEADLINE: Duration = Duration::from_secs(10);

/// A message as the fake server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMessage {
    pub message_id: String,
    /// The text as a user of the messenger would read it: markup parsed away, entities decoded.
    pub text: String,
    /// The remote id of the message it replies to.
    pub reply_to: Option<String>,
    /// Informational for adapter tests; the checks look at the text, since some remotes edit by
    /// recall and resend.
    pub edited: bool,
    pub deleted: bool,
}

/// Implemented by an adapter's fake server to report what it received.
#[async_trait]
pub trait ConformanceObserver: Send + Sync {
    /// Every message in `chat`, in the order the server received them, deleted ones included
    /// (flagged `deleted`).
    async fn received(&self, chat: &str) -> Vec<ObservedMessage>;
}

/// Implemented by an adapter's fake server to make a remote user write in a chat.
#[async_trait]
pub trait ConformanceInjector: Send + Sync {
    /// Queues a plain text message from a remote user (not the gateway's account) in `chat`, to be
    /// delivered to the gateway the way the messenger delivers it; returns its remote id.
    async fn inject(&self, chat: &str, text: &str) -> String;
}

/// A conformance check that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct Failure {
    pub check: &'static str,
    pub detail: String,
}

pub type Outcome<T> = std::result::Result<T, Failure>;

/// What the messenger supports, to select the outbound checks [`conformance`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The remote's text limit, and the unit it counts in.
    pub max_units: usize,
    pub unit: Unit,
    pub replies: bool,
    pub edits_and_deletes: bool,
}

/// Runs every outbound check that applies to `caps` against `chat`.
pub async fn conformance<G: Gateway + ?Sized>(
    gw: &G,
    observer: &dyn ConformanceObserver,
    chat: &str,
    caps: &Capabilities,
) -> Outcome<()> {
    sends_in_order(gw, observer, chat, 5).await?;
    splits_long_text(gw, observer, chat, caps.max_units, caps.unit).await?;
    if caps.replies {
        replies(gw, observer, chat).await?;
    }
    if caps.edits_and_deletes {
        edits_and_deletes(gw, observer, chat).await?;
    }
    Ok(())
}

/// Sends `n` short messages one after another: each must become exactly one remote message, in
/// `chat`, arrive in order, and read as sent — including `<`, `&` and `"`, which a markup-based
/// adapter must escape and the server decode.
pub async fn sends_in_order<G: Gateway + ?Sized>(
    gw: &G,
    observer: &dyn ConformanceObserver,
    chat: &str,
    n: usize,
) -> Outcome<Vec<Delivered>> {
    const CHECK: &str = "sends_in_order";
    let run = run_id();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let body = format!("order {run} #{i} <&> \"quoted\"");
        let msg = message(format!("conformance-{run}-order-{i}"), &body);
        let delivered = gw
            .send(chat, &msg)
            .await
            .map_err(|e| fail(CHECK, format!("send #{i}: {e}")))?;
        if delivered.parts.len() != 1 {
            return Err(fail(
                CHECK,
                format!(
                    "short message #{i} became {} remote messages",
                    delivered.parts.len()
                ),
            ));
        }
        sent.push((body, delivered));
    }

    let seen = observer.received(chat).await;
    let mut previous = None;
    for (i, (body, delivered)) in sent.iter().enumerate() {
        let part = &delivered.parts[0];
        if part.chat != chat {
            return Err(fail(
                CHECK,
                format!("message #{i} went to chat {:?}, not {chat:?}", part.chat),
            ));
        }
        let (position, m) = visible(CHECK, &seen, part)?;
        if !m.text.contains(body.as_str()) {
            return Err(fail(
                CHECK,
                format!(
                    "message #{i}: the server shows {:?}, which does not contain {body:?}",
                    m.text
                ),
            ));
        }
        if previous.is_some_and(|p| position <= p) {
            return Err(fail(
                CHECK,
                format!("message #{i} arrived before message #{}", i - 1),
            ));
        }
        previous = Some(position);
    }
    Ok(sent.into_iter().map(|(_, d)| d).collect())
}

/// Sends a text of about 2.5 × `max_units` (words of mostly non-BMP emoji, so UTF-16, char and
/// byte counts differ widely): it must arrive as several messages, in order, each within `max_units`, together
/// holding every word in order.
pub async fn splits_long_text<G: Gateway + ?Sized>(
    gw: &G,
    observer: &dyn ConformanceObserver,
    chat: &str,
    max_units: usize,
    unit: Unit,
) -> Outcome<Delivered> {
    const CHECK: &str = "splits_long_text";
    let run = run_id();
    let mut words = Vec::new();
    let mut body = String::new();
    while unit.len(&body) <= max_units * 5 / 2 {
        // Emoji-heavy, so that a part measured in the wrong unit overshoots whatever the cuts.
        let word = format!("w{:04}😀😀😀😀😀😀", words.len());
        if !body.is_empty() {
            body.push(' ');
        }
        body.push_str(&word);
        words.push(word);
    }
    let delivered = gw
        .send(chat, &message(format!("conformance-{run}-split"), &body))
        .await
        .map_err(|e| fail(CHECK, format!("send: {e}")))?;
    if delivered.parts.len() < 2 {
        return Err(fail(
            CHECK,
            format!(
                "a text of {} {unit:?} units, over a limit of {max_units}, became {} message(s)",
                unit.len(&body),
                delivered.parts.len()
            ),
        ));
    }

    let seen = observer.received(chat).await;
    let mut previous = None;
    let mut joined = String::new();
    for (k, part) in delivered.parts.iter().enumerate() {
        let (position, m) = visible(CHECK, &seen, part)?;
        let len = unit.len(&m.text);
        if len > max_units {
            return Err(fail(
                CHECK,
                format!("part {k} is {len} {unit:?} units long, over the limit of {max_units}"),
            ));
        }
        if previous.is_some_and(|p| position <= p) {
            return Err(fail(
                CHECK,
                format!("part {k} arrived before part {}", k - 1),
            ));
        }
        previous = Some(position);
        joined.push_str(&m.text);
    }
    let mut at = 0;
    for word in &words {
        match joined[at..].find(word.as_str()) {
            Some(i) => at += i + word.len(),
            None => {
                return Err(fail(
                    CHECK,
                    format!("word {word:?} is missing from the parts, cut, or out of order"),
                ))
            }
        }
    }
    Ok(delivered)
}

/// Sends a message, then a reply to its first part: the server must see the reply pointing at it.
/// Returns the target and the reply.
pub async fn replies<G: Gateway + ?Sized>(
    gw: &G,
    observer: &dyn ConformanceObserver,
    chat: &str,
) -> Outcome<(Delivered, Delivered)> {
    const CHECK: &str = "replies";
    let run = run_id();
    let target = gw
        .send(
            chat,
            &message(format!("conformance-{run}-target"), "reply target"),
        )
        .await
        .map_err(|e| fail(CHECK, format!("send target: {e}")))?;
    let target_ref = first_part(CHECK, &target)?.clone();
    let mut msg = message(format!("conformance-{run}-reply"), "a reply");
    msg.reply_to = Some(target_ref.clone());
    let reply = gw
        .send(chat, &msg)
        .await
        .map_err(|e| fail(CHECK, format!("send reply: {e}")))?;

    let seen = observer.received(chat).await;
    let (_, m) = visible(CHECK, &seen, first_part(CHECK, &reply)?)?;
    if m.reply_to.as_deref() != Some(target_ref.message_id.as_str()) {
        return Err(fail(
            CHECK,
            format!(
                "the reply points at {:?}, not at {:?}",
                m.reply_to, target_ref.message_id
            ),
        ));
    }
    Ok((target, reply))
}

/// Sends a message, edits it, deletes it, and deletes it again. After the edit the returned parts
/// must show the new text and any part they no longer include must be deleted (recall and resend);
/// after the delete every part must be deleted; the repeated delete must succeed, since the node
/// repeats deletes whose answer it missed. Returns what the send and the edit delivered.
pub async fn edits_and_deletes<G: Gateway + ?Sized>(
    gw: &G,
    observer: &dyn ConformanceObserver,
    chat: &str,
) -> Outcome<(Delivered, Delivered)> {
    const CHECK: &str = "edits_and_deletes";
    let run = run_id();
    let item_id = format!("conformance-{run}-edit");
    let original = format!("edit {run} original");
    let updated = format!("edit {run} updated");
    let sent = gw
        .send(chat, &message(item_id.clone(), &original))
        .await
        .map_err(|e| fail(CHECK, format!("send: {e}")))?;
    let edit = OutboundEdit {
        item_id: item_id.clone(),
        parts: sent.parts.clone(),
        text: FormattedText::plain(updated.clone()),
        author: author(),
    };
    let edited = gw
        .edit(chat, &edit)
        .await
        .map_err(|e| fail(CHECK, format!("edit: {e}")))?;
    first_part(CHECK, &edited)?;

    let seen = observer.received(chat).await;
    for part in &edited.parts {
        let (_, m) = visible(CHECK, &seen, part)?;
        if !m.text.contains(updated.as_str()) || m.text.contains(original.as_str()) {
            return Err(fail(
                CHECK,
                format!(
                    "after the edit, {} shows {:?} instead of {updated:?}",
                    part.message_id, m.text
                ),
            ));
        }
    }
    for part in sent.parts.iter().filter(|p| !edited.parts.contains(p)) {
        if !observed(CHECK, &seen, part)?.1.deleted {
            return Err(fail(
                CHECK,
                format!(
                    "{} was replaced by the edit but is still visible",
                    part.message_id
                ),
            ));
        }
    }

    let delete = OutboundDelete {
        item_id,
        parts: edited.parts.clone(),
    };
    gw.delete(chat, &delete)
        .await
        .map_err(|e| fail(CHECK, format!("delete: {e}")))?;
    let seen = observer.received(chat).await;
    for part in &delete.parts {
        if !observed(CHECK, &seen, part)?.1.deleted {
            return Err(fail(
                CHECK,
                format!("{} is still visible after the delete", part.message_id),
            ));
        }
    }
    gw.delete(chat, &delete)
        .await
        .map_err(|e| fail(CHECK, format!("repeating the delete failed: {e}")))?;
    Ok((sent, edited))
}

/// Starts `gw`, injects a message and expects it through the inbound sink, then acknowledges it
/// and shuts `gw` down (within [`INBOUND_DEADLINE`]). Returns the event.
pub async fn receives_inbound<G: Gateway + ?Sized>(
    gw: &G,
    injector: &dyn ConformanceInjector,
    chat: &str,
) -> Outcome<InboundMessage> {
    const CHECK: &str = "receives_inbound";
    let run = run_id();
    let (mut rx, token) = start(CHECK, gw).await?;
    let body = format!("inbound {run} <&> \"hi\"");
    let id = injector.inject(chat, &body).await;
    let (msg, reply) = next_message(CHECK, &mut rx, &id, &[]).await?;
    let _ = reply.send(stored(&id));
    stop(CHECK, gw, token, rx).await?;
    if msg.chat != chat {
        return Err(fail(
            CHECK,
            format!("the event names chat {:?}, not {chat:?}", msg.chat),
        ));
    }
    if msg.from_self {
        return Err(fail(CHECK, "a remote user's message is marked from_self"));
    }
    if !msg.text.text.contains(body.as_str()) {
        return Err(fail(
            CHECK,
            format!(
                "the event's text {:?} does not contain {body:?}",
                msg.text.text
            ),
        ));
    }
    Ok(msg)
}

/// Checks that no inbound message is lost across restarts, with a fresh gateway from `make` each
/// time (sharing the fake server): a message the node never acknowledged must come again after a
/// restart; after that, new messages still arrive. Messages acknowledged earlier may come again
/// (they are answered as duplicates, which the node's dedup makes harmless).
pub async fn restart_without_loss<G, F, Fut>(
    mut make: F,
    injector: &dyn ConformanceInjector,
    chat: &str,
) -> Outcome<()>
where
    G: Gateway,
    F: FnMut() -> Fut,
    Fut: Future<Output = G>,
{
    const CHECK: &str = "restart_without_loss";
    let run = run_id();

    let gw = make().await;
    let (mut rx, token) = start(CHECK, &gw).await?;
    let first = injector.inject(chat, &format!("restart {run} first")).await;
    let (_, reply) = next_message(CHECK, &mut rx, &first, &[]).await?;
    drop(reply); // never answered, as if the node died before storing it
    stop(CHECK, &gw, token, rx).await?;
    drop(gw);

    let gw = make().await;
    let (mut rx, token) = start(CHECK, &gw).await?;
    let (_, reply) = next_message(CHECK, &mut rx, &first, &[])
        .await
        .map_err(|f| {
            fail(
                CHECK,
                format!(
                    "a message the node never acknowledged was lost in a restart: {}",
                    f.detail
                ),
            )
        })?;
    let _ = reply.send(stored(&first));
    let second = injector
        .inject(chat, &format!("restart {run} second"))
        .await;
    let (_, reply) = next_message(CHECK, &mut rx, &second, std::slice::from_ref(&first)).await?;
    let _ = reply.send(stored(&second));
    stop(CHECK, &gw, token, rx).await?;
    drop(gw);

    let gw = make().await;
    let (mut rx, token) = start(CHECK, &gw).await?;
    let third = injector.inject(chat, &format!("restart {run} third")).await;
    let (_, reply) = next_message(CHECK, &mut rx, &third, &[first, second]).await?;
    let _ = reply.send(stored(&third));
    stop(CHECK, &gw, token, rx).await
}

fn fail(check: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        check,
        detail: detail.into(),
    }
}

/// Distinguishes the messages of one check from those of others sharing a fake server.
fn run_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn author() -> Author {
    Author {
        id: "conformance-author".into(),
        name: "Conformance Author".into(),
    }
}

fn message(item_id: String, text: &str) -> OutboundMessage {
    OutboundMessage {
        item_id,
        group_id: "conformance-group".into(),
        author: author(),
        text: FormattedText::plain(text),
        reply_to: None,
        attachments: Vec::new(),
        origin: None,
        item: None,
    }
}

fn first_part<'a>(check: &'static str, delivered: &'a Delivered) -> Outcome<&'a RemoteRef> {
    delivered
        .parts
        .first()
        .ok_or_else(|| fail(check, "the gateway reported no remote message"))
}

/// The server's copy of `part` and its position, deleted or not.
fn observed<'a>(
    check: &'static str,
    seen: &'a [ObservedMessage],
    part: &RemoteRef,
) -> Outcome<(usize, &'a ObservedMessage)> {
    seen.iter()
        .enumerate()
        .find(|(_, m)| m.message_id == part.message_id)
        .ok_or_else(|| {
            fail(
                check,
                format!("the server has no message {}", part.message_id),
            )
        })
}

/// Like [`observed`], and the message must not be deleted.
fn visible<'a>(
    check: &'static str,
    seen: &'a [ObservedMessage],
    part: &RemoteRef,
) -> Outcome<(usize, &'a ObservedMessage)> {
    let found = observed(check, seen, part)?;
    if found.1.deleted {
        return Err(fail(
            check,
            format!("message {} is deleted", part.message_id),
        ));
    }
    Ok(found)
}

fn stored(message_id: &str) -> AckResult {
    Ok(Ack::Stored {
        trx_id: format!("trx-{message_id}"),
    })
}

async fn start<G: Gateway + ?Sized>(
    check: &'static str,
    gw: &G,
) -> Outcome<(InboundReceiver, CancellationToken)> {
    let (sink, rx) = inbound_channel(8);
    let token = CancellationToken::new();
    gw.start(GatewayContext::new("conformance", &sink, token.clone()))
        .await
        .map_err(|e| fail(check, format!("start: {e}")))?;
    Ok((rx, token))
}

async fn stop<G: Gateway + ?Sized>(
    check: &'static str,
    gw: &G,
    token: CancellationToken,
    rx: InboundReceiver,
) -> Outcome<()> {
    token.cancel();
    // Submits still waiting fail at once instead of waiting for answers that will not come.
    drop(rx);
    tokio::time::timeout(INBOUND_DEADLINE, gw.shutdown())
        .await
        .map_err(|_| {
            fail(
                check,
                format!("shutdown did not finish within {INBOUND_DEADLINE:?}"),
            )
        })
}

/// Waits for message `wanted`, answering messages in `seen_before` as duplicates and any other
/// event as ignored.
async fn next_message(
    check: &'static str,
    rx: &mut InboundReceiver,
    wanted: &str,
    seen_before: &[String],
) -> Outcome<(InboundMessage, oneshot::Sender<AckResult>)> {
    let deadline = tokio::time::Instant::now() + INBOUND_DEADLINE;
    loop {
        let InboundRequest { event, reply, .. } =
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(request)) => request,
                Ok(None) => return Err(fail(check, "the gateway dropped its inbound sink")),
                Err(_) => {
                    return Err(fail(
                        check,
                        format!("message {wanted} did not arrive within {INBOUND_DEADLINE:?}"),
                    ))
                }
            };
        match event {
            InboundEvent::Message(msg) if msg.message_id == wanted => return Ok((msg, reply)),
            InboundEvent::Message(msg) if seen_before.contains(&msg.message_id) => {
                let _ = reply.send(Ok(Ack::Duplicate {
                    trx_id: format!("trx-{}", msg.message_id),
                }));
            }
            _ => {
                let _ = reply.send(Ok(Ack::Ignored {
                    reason: "not part of this conformance check".into(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use tokio::task::JoinHandle;

    use super::*;
    use crate::error::{GatewayError, Result};
    use crate::html::escape_html;
    use crate::text::split_text;
    use crate::{DynGateway, Health};

    const MAX: usize = 60;
    const UNIT: Unit = Unit::Utf16;
    const CHAT: &str = "chat-1";

    /// Ways the fake gateway can misbehave, each of which some check must catch.
    #[derive(Debug, Clone, Copy, Default)]
    struct Quirks {
        /// Legitimate: edits by deleting and sending anew, like Mixin.
        edits_by_resend: bool,
        reorders: bool,
        ignores_limit: bool,
        /// Splits counting chars while the remote counts UTF-16 units.
        counts_chars: bool,
        shows_escaped_markup: bool,
        drops_reply_to: bool,
        keeps_replaced_parts: bool,
        ignores_delete: bool,
        rejects_repeated_delete: bool,
        commits_before_ack: bool,
    }

    /// An in-memory stand-in for a messenger server.
    #[derive(Default)]
    struct Server {
        state: Mutex<State>,
    }

    #[derive(Default)]
    struct State {
        next_id: u64,
        chats: HashMap<String, Vec<ObservedMessage>>,
        /// Inbound messages (chat, id, text) and how many the gateway has committed.
        inbound: Vec<(String, String, String)>,
        cursor: usize,
    }

    impl Server {
        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[async_trait]
    impl ConformanceObserver for Server {
        async fn received(&self, chat: &str) -> Vec<ObservedMessage> {
            self.state().chats.get(chat).cloned().unwrap_or_default()
        }
    }

    #[async_trait]
    impl ConformanceInjector for Server {
        async fn inject(&self, chat: &str, text: &str) -> String {
            let mut state = self.state();
            state.next_id += 1;
            let id = format!("in-{}", state.next_id);
            state.inbound.push((chat.into(), id.clone(), text.into()));
            id
        }
    }

    /// A gateway onto [`Server`] that records what it sends.
    struct Fake {
        server: Arc<Server>,
        quirks: Quirks,
        inbound: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    }

    impl Fake {
        fn new(server: Arc<Server>, quirks: Quirks) -> Self {
            Self {
                server,
                quirks,
                inbound: Mutex::new(None),
            }
        }

        fn texts(&self, text: &FormattedText) -> Vec<String> {
            if self.quirks.ignores_limit {
                return vec![text.text.clone()];
            }
            let unit = if self.quirks.counts_chars {
                Unit::Chars
            } else {
                UNIT
            };
            split_text(text, MAX, unit)
                .into_iter()
                .map(|part| part.text)
                .collect()
        }

        fn post(&self, chat: &str, text: String, reply_to: Option<String>) -> RemoteRef {
            let mut guard = self.server.state();
            let state = &mut *guard;
            state.next_id += 1;
            let message_id = format!("m{}", state.next_id);
            let text = if self.quirks.shows_escaped_markup {
                escape_html(&text)
            } else {
                text
            };
            let message = ObservedMessage {
                message_id: message_id.clone(),
                text,
                reply_to,
                edited: false,
                deleted: false,
            };
            let messages = state.chats.entry(chat.into()).or_default();
            if self.quirks.reorders {
                messages.insert(0, message);
            } else {
                messages.push(message);
            }
            RemoteRef {
                chat: chat.into(),
                message_id,
            }
        }

        /// Marks `parts` deleted; `Err` names the first one that is not there.
        fn remove(&self, chat: &str, parts: &[RemoteRef]) -> std::result::Result<(), String> {
            let mut state = self.server.state();
            let messages = state.chats.entry(chat.into()).or_default();
            for part in parts {
                match messages
                    .iter_mut()
                    .find(|m| m.message_id == part.message_id && !m.deleted)
                {
                    Some(m) => m.deleted = true,
                    None => return Err(part.message_id.clone()),
                }
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Gateway for Fake {
        fn kind(&self) -> &'static str {
            "fake"
        }

        async fn start(&self, ctx: GatewayContext) -> Result<()> {
            let token = ctx.shutdown_token().child_token();
            let task = tokio::spawn(inbound_loop(
                Arc::clone(&self.server),
                self.quirks,
                ctx,
                token.clone(),
            ));
            let previous = self
                .inbound
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace((token, task));
            if let Some((token, _)) = previous {
                token.cancel();
            }
            Ok(())
        }

        async fn send(&self, chat: &str, msg: &OutboundMessage) -> Result<Delivered> {
            if msg.text.is_empty() && msg.attachments.is_empty() {
                return Err(GatewayError::Invalid("empty message".into()));
            }
            let reply_to = msg
                .reply_to
                .as_ref()
                .filter(|_| !self.quirks.drops_reply_to)
                .map(|r| r.message_id.clone());
            let parts = self
                .texts(&msg.text)
                .into_iter()
                .enumerate()
                .map(|(i, text)| self.post(chat, text, reply_to.clone().filter(|_| i == 0)))
                .collect();
            Ok(Delivered { parts })
        }

        async fn edit(&self, chat: &str, edit: &OutboundEdit) -> Result<Delivered> {
            let texts = self.texts(&edit.text);
            if self.quirks.edits_by_resend {
                if !self.quirks.keeps_replaced_parts {
                    self.remove(chat, &edit.parts)
                        .map_err(|id| GatewayError::Permanent(format!("message {id} not found")))?;
                }
                let parts = texts
                    .into_iter()
                    .map(|text| self.post(chat, text, None))
                    .collect();
                return Ok(Delivered { parts });
            }
            let mut parts = Vec::new();
            {
                let mut state = self.server.state();
                let messages = state.chats.entry(chat.into()).or_default();
                for (old, text) in edit.parts.iter().zip(&texts) {
                    let m = messages
                        .iter_mut()
                        .find(|m| m.message_id == old.message_id && !m.deleted)
                        .ok_or_else(|| GatewayError::Permanent("message not found".into()))?;
                    m.text = text.clone();
                    m.edited = true;
                    parts.push(old.clone());
                }
            }
            let surplus = edit.parts.get(texts.len()..).unwrap_or_default();
            self.remove(chat, surplus)
                .map_err(|id| GatewayError::Permanent(format!("message {id} not found")))?;
            for text in texts.into_iter().skip(edit.parts.len()) {
                parts.push(self.post(chat, text, None));
            }
            Ok(Delivered { parts })
        }

        async fn delete(&self, chat: &str, del: &OutboundDelete) -> Result<()> {
            if self.quirks.ignores_delete {
                return Ok(());
            }
            for part in &del.parts {
                if self.remove(chat, std::slice::from_ref(part)).is_err()
                    && self.quirks.rejects_repeated_delete
                {
                    return Err(GatewayError::Permanent(
                        "message to delete not found".into(),
                    ));
                }
            }
            Ok(())
        }

        async fn health(&self) -> Health {
            Health::ok()
        }

        async fn shutdown(&self) {
            let running = self
                .inbound
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some((token, task)) = running {
                token.cancel();
                let _ = task.await;
            }
        }
    }

    /// Delivers the server's inbound queue from its committed cursor on, committing each message
    /// once the node has answered it.
    async fn inbound_loop(
        server: Arc<Server>,
        quirks: Quirks,
        ctx: GatewayContext,
        token: CancellationToken,
    ) {
        loop {
            let next = {
                let mut state = server.state();
                let next = state.inbound.get(state.cursor).cloned();
                if next.is_some() && quirks.commits_before_ack {
                    state.cursor += 1;
                }
                next
            };
            let Some((chat, message_id, text)) = next else {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                }
            };
            let event = InboundEvent::Message(InboundMessage {
                chat,
                message_id,
                author: Author {
                    id: "remote-user".into(),
                    name: "Remote User".into(),
                },
                text: FormattedText::plain(text),
                reply_to: None,
                attachments: Vec::new(),
                sent_at: None,
                from_self: false,
            });
            let answer = tokio::select! {
                _ = token.cancelled() => return,
                answer = ctx.inbound().submit(event) => answer,
            };
            match answer {
                Err(e) if e.is_retryable() => tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                },
                _ if quirks.commits_before_ack => {}
                _ => server.state().cursor += 1,
            }
        }
    }

    fn fake(quirks: Quirks) -> Fake {
        Fake::new(Arc::default(), quirks)
    }

    fn caps() -> Capabilities {
        Capabilities {
            max_units: MAX,
            unit: UNIT,
            replies: true,
            edits_and_deletes: true,
        }
    }

    async fn expect_failure<T: std::fmt::Debug>(
        check: &str,
        outcome: impl Future<Output = Outcome<T>>,
        detail: &str,
    ) {
        let failure = outcome.await.expect_err("the check should fail");
        assert_eq!(failure.check, check, "{failure}");
        assert!(failure.detail.contains(detail), "{failure}");
    }

    #[tokio::test]
    async fn a_correct_gateway_passes_every_outbound_check() {
        let gw = fake(Quirks::default());
        conformance(&gw, &*gw.server, CHAT, &caps())
            .await
            .expect("conformance");
    }

    #[tokio::test]
    async fn a_gateway_that_edits_by_recall_and_resend_passes() {
        let gw = fake(Quirks {
            edits_by_resend: true,
            ..Quirks::default()
        });
        let (sent, edited) = edits_and_deletes(&gw, &*gw.server, CHAT)
            .await
            .expect("edits_and_deletes");
        assert_ne!(sent, edited);
    }

    #[tokio::test]
    async fn runs_against_a_trait_object() {
        let server = Arc::new(Server::default());
        let gw: DynGateway = Arc::new(Fake::new(Arc::clone(&server), Quirks::default()));
        conformance(&*gw, &*server, CHAT, &caps())
            .await
            .expect("conformance");
    }

    #[tokio::test]
    async fn returns_the_refs_it_delivered() {
        let gw = fake(Quirks::default());
        let sent = sends_in_order(&gw, &*gw.server, CHAT, 3)
            .await
            .expect("in order");
        let ids: Vec<&str> = sent
            .iter()
            .map(|d| d.parts[0].message_id.as_str())
            .collect();
        assert_eq!(ids, ["m1", "m2", "m3"]);
        let split = splits_long_text(&gw, &*gw.server, CHAT, MAX, UNIT)
            .await
            .expect("split");
        assert!(split.parts.len() >= 3, "{split:?}");
    }

    #[tokio::test]
    async fn catches_out_of_order_delivery() {
        let gw = fake(Quirks {
            reorders: true,
            ..Quirks::default()
        });
        expect_failure(
            "sends_in_order",
            sends_in_order(&gw, &*gw.server, CHAT, 3),
            "arrived before",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_markup_shown_escaped() {
        let gw = fake(Quirks {
            shows_escaped_markup: true,
            ..Quirks::default()
        });
        expect_failure(
            "sends_in_order",
            sends_in_order(&gw, &*gw.server, CHAT, 1),
            "does not contain",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_text_over_the_limit() {
        let gw = fake(Quirks {
            ignores_limit: true,
            ..Quirks::default()
        });
        expect_failure(
            "splits_long_text",
            splits_long_text(&gw, &*gw.server, CHAT, MAX, UNIT),
            "became 1 message",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_parts_measured_in_the_wrong_unit() {
        let gw = fake(Quirks {
            counts_chars: true,
            ..Quirks::default()
        });
        expect_failure(
            "splits_long_text",
            splits_long_text(&gw, &*gw.server, CHAT, MAX, UNIT),
            "over the limit",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_lost_reply_targets() {
        let gw = fake(Quirks {
            drops_reply_to: true,
            ..Quirks::default()
        });
        expect_failure(
            "replies",
            replies(&gw, &*gw.server, CHAT),
            "the reply points at None",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_replaced_parts_left_visible() {
        let gw = fake(Quirks {
            edits_by_resend: true,
            keeps_replaced_parts: true,
            ..Quirks::default()
        });
        expect_failure(
            "edits_and_deletes",
            edits_and_deletes(&gw, &*gw.server, CHAT),
            "still visible",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_deletes_that_do_nothing() {
        let gw = fake(Quirks {
            ignores_delete: true,
            ..Quirks::default()
        });
        expect_failure(
            "edits_and_deletes",
            edits_and_deletes(&gw, &*gw.server, CHAT),
            "still visible after the delete",
        )
        .await;
    }

    #[tokio::test]
    async fn catches_repeated_deletes_that_fail() {
        let gw = fake(Quirks {
            rejects_repeated_delete: true,
            ..Quirks::default()
        });
        expect_failure(
            "edits_and_deletes",
            edits_and_deletes(&gw, &*gw.server, CHAT),
            "repeating the delete failed",
        )
        .await;
    }

    #[tokio::test]
    async fn a_correct_gateway_receives_and_loses_nothing_across_restarts() {
        let server = Arc::new(Server::default());
        let gw = Fake::new(Arc::clone(&server), Quirks::default());
        let msg = receives_inbound(&gw, &*server, CHAT)
            .await
            .expect("receives");
        assert_eq!(msg.chat, CHAT);
        restart_without_loss(
            || async { Fake::new(Arc::clone(&server), Quirks::default()) },
            &*server,
            CHAT,
        )
        .await
        .expect("restart without loss");
    }

    #[tokio::test(start_paused = true)]
    async fn catches_a_cursor_committed_before_the_node_stored_the_message() {
        let server = Arc::new(Server::default());
        let quirks = Quirks {
            commits_before_ack: true,
            ..Quirks::default()
        };
        expect_failure(
            "restart_without_loss",
            restart_without_loss(
                || async { Fake::new(Arc::clone(&server), quirks) },
                &*server,
                CHAT,
            ),
            "lost in a restart",
        )
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn catches_messages_that_never_arrive() {
        let server = Arc::new(Server::default());
        let gw = Fake::new(Arc::clone(&server), Quirks::default());
        // Injected into another server: the gateway never sees it.
        let elsewhere = Server::default();
        expect_failure(
            "receives_inbound",
            receives_inbound(&gw, &elsewhere, CHAT),
            "did not arrive",
        )
        .await;
    }
}
