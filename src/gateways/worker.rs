//! One worker per outbound link: delivers the group's items after the link's cursor, in order.
//!
//! Rate limits are waited out; transient failures back off exponentially with jitter and become
//! dead letters only after `MAX_RETRY` of trying; permanent failures become dead letters at once
//! (so one bad message cannot block the chat). Each outcome commits the ID map and the cursor in
//! one transaction.

use super::render::{attachments_of, author_of, origin_of, text_of};
use super::{LinkHealth, LinkRuntime};
use crate::chain::object::PostPayload;
use crate::chain::{TrxId, TrxKind};
use crate::engine::feed::open_post;
use crate::engine::{ChainEvent, Engine};
use crate::store::{DeadLetter, IncludedTrx, MapChange, RemotePart, TrxStatus};
use crate::util::now_ms;
use rumgate_gateway::{
    Delivered, DynGateway, GatewayError, OutboundDelete, OutboundEdit, OutboundMessage, RemoteRef,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long a message is retried through transient failures before it is dead-lettered.
pub const MAX_RETRY: Duration = Duration::from_secs(24 * 3600);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const PAGE: usize = 100;

enum Step {
    /// Delivered (or deliberately skipped): commit this ID map change with the cursor.
    Done(MapChange),
    /// Failed for good: dead-letter it.
    Dead(String),
    /// Try the same item again after this long.
    Retry(Duration, String, LinkHealth),
    /// The remote chat moved (Telegram supergroup migration): follow it and try again.
    Migrated(String),
}

pub(crate) async fn run(engine: Arc<Engine>, link: Arc<LinkRuntime>, gateway: DynGateway) {
    let mut events = engine.subscribe();
    let gid = link.record().group_id;
    loop {
        if link.cancel.is_cancelled() {
            return;
        }
        // Dead letters an operator asked to retry go first.
        if let Err(e) = retry_dead(&engine, &link, &gateway).await {
            tracing::warn!(link = %link.record().id, error = %e, "dead-letter retry failed");
        }
        let cursor = link.state().delivered;
        let rows = match engine.store().list_trx(gid, cursor, PAGE).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(link = %link.record().id, error = %e, "cannot read the outbox");
                if !pause(&link, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        if rows.is_empty() {
            // Wait for a block of this group, a retry request, or shutdown.
            loop {
                tokio::select! {
                    _ = link.cancel.cancelled() => return,
                    _ = link.wake.notified() => break,
                    ev = events.recv() => match ev {
                        Ok(ChainEvent::Included(c)) if c.group_id == gid => break,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    },
                }
            }
            continue;
        }
        for row in rows {
            if !deliver_until_done(&engine, &link, &gateway, &row, false).await {
                return;
            }
        }
    }
}

/// Works on one item until it is delivered, skipped or dead-lettered; false on shutdown.
async fn deliver_until_done(
    engine: &Engine,
    link: &LinkRuntime,
    gateway: &DynGateway,
    row: &IncludedTrx,
    is_retry: bool,
) -> bool {
    let first_failure = std::time::Instant::now();
    let mut backoff = BACKOFF_START;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let step = deliver(engine, link, gateway, row).await;
        let link_id = link.record().id;
        let (change, dead) = match step {
            Step::Done(change) => (change, None),
            Step::Migrated(new_chat) => {
                follow_migration(engine, link, &new_chat).await;
                continue;
            }
            Step::Dead(error) => dead_letter(link, row, error, attempts),
            Step::Retry(wait, error, health) => {
                if health != LinkHealth::Ok && first_failure.elapsed() > MAX_RETRY {
                    let error = format!("gave up after {attempts} attempts: {error}");
                    dead_letter(link, row, error, attempts)
                } else {
                    link.set_health(health, Some(error));
                    let wait = if wait.is_zero() {
                        let w = jitter(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        w
                    } else {
                        wait
                    };
                    if !pause(link, wait).await {
                        return false;
                    }
                    continue;
                }
            }
        };
        let delivered = dead.is_none();
        // A retried dead letter keeps the cursor where it is (it is behind it already).
        let seq = if is_retry {
            link.state().delivered
        } else {
            row.seq
        };
        match engine
            .store()
            .commit_delivery(link_id.clone(), seq, change, dead)
            .await
        {
            Ok(()) => {
                let mut st = link.state();
                st.delivered = st.delivered.max(seq);
                if delivered {
                    st.delivered_total += 1;
                    if st.health != LinkHealth::Ok {
                        st.health = LinkHealth::Ok;
                    }
                }
                return true;
            }
            Err(e) => {
                // Delivered but not recorded: retrying may repeat it remotely, which adapters
                // make idempotent where the remote allows (deterministic message ids).
                tracing::error!(link = %link_id, error = %e, "cannot record a delivery; retrying");
                if !pause(link, Duration::from_secs(1)).await {
                    return false;
                }
            }
        }
    }
}

async fn retry_dead(
    engine: &Engine,
    link: &LinkRuntime,
    gateway: &DynGateway,
) -> Result<(), crate::store::StoreError> {
    let dead = engine.store().dead_letters(link.record().id).await?;
    for d in dead.into_iter().filter(|d| d.retry) {
        if let Some(TrxStatus::Included(row)) = engine.store().trx_status(d.trx_id).await? {
            if !deliver_until_done(engine, link, gateway, &row, true).await {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Marks the link failing and builds the dead letter to commit for `row`.
fn dead_letter(
    link: &LinkRuntime,
    row: &IncludedTrx,
    error: String,
    attempts: u32,
) -> (MapChange, Option<DeadLetter>) {
    tracing::warn!(link = %link.record().id, trx = %row.trx.trx_id(), %error, "dead-lettered");
    link.set_health(LinkHealth::Failing, Some(error.clone()));
    let dead = DeadLetter {
        seq: row.seq,
        trx_id: row.trx.trx_id(),
        error,
        attempts,
        failed_at: now_ms(),
        retry: false,
    };
    (MapChange::None, Some(dead))
}

/// Sleeps unless the link is stopped; false if it was.
async fn pause(link: &LinkRuntime, d: Duration) -> bool {
    tokio::select! {
        _ = link.cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

fn jitter(d: Duration) -> Duration {
    let r: u64 = u64::from_le_bytes(crate::crypto::random_bytes::<8>());
    // 50–100 % of the nominal backoff.
    d / 2 + Duration::from_millis(r % (d.as_millis() as u64 / 2 + 1))
}

fn classify(e: GatewayError) -> Step {
    match e {
        GatewayError::RateLimited { retry_after } => Step::Retry(
            retry_after.max(Duration::from_millis(50)),
            format!("rate limited for {retry_after:?}"),
            LinkHealth::Degraded,
        ),
        GatewayError::Transient(m) => Step::Retry(Duration::ZERO, m, LinkHealth::Degraded),
        // Nothing on this account works until the credentials are fixed: the link is failing,
        // and the item waits (with backoff) instead of being dead-lettered.
        GatewayError::Unauthorized(m) => Step::Retry(
            Duration::ZERO,
            format!("unauthorized: {m}"),
            LinkHealth::Failing,
        ),
        GatewayError::Permanent(m) | GatewayError::Invalid(m) => Step::Dead(m),
        GatewayError::ChatMigrated { new_chat } => Step::Migrated(new_chat),
    }
}

fn parts_of(d: &Delivered) -> Vec<RemotePart> {
    d.parts
        .iter()
        .map(|p| RemotePart {
            chat: p.chat.clone(),
            id: p.message_id.clone(),
        })
        .collect()
}

fn refs(parts: &[RemotePart]) -> Vec<RemoteRef> {
    parts
        .iter()
        .map(|p| RemoteRef {
            chat: p.chat.clone(),
            message_id: p.id.clone(),
        })
        .collect()
}

/// One delivery attempt of one item.
async fn deliver(
    engine: &Engine,
    link: &LinkRuntime,
    gateway: &DynGateway,
    row: &IncludedTrx,
) -> Step {
    let record = link.record();
    if row.trx.body.kind != TrxKind::Post {
        return Step::Done(MapChange::None);
    }
    let Ok(entry) = engine.group(&record.group_id) else {
        return Step::Done(MapChange::None);
    };
    let Some(PostPayload { object, origin }) = open_post(&row.trx, entry.key.as_ref()) else {
        return Step::Done(MapChange::None);
    };
    // Never echo a message back to the chat it came from.
    if let Some(o) = &origin {
        if o["gateway"].as_str() == Some(record.gateway_id.as_str())
            && o["chat"].as_str() == Some(record.chat.as_str())
        {
            return Step::Done(MapChange::None);
        }
    }
    let trx_id = row.trx.trx_id();
    let author = author_of(&row.trx, origin.as_ref());
    let target = |field: &Value| field.as_str().and_then(TrxId::from_hex);
    match object["type"].as_str().unwrap_or_default() {
        "Note" | "Image" => {
            let reply_to = match target(&object["inReplyTo"]) {
                Some(t) => engine
                    .store()
                    .remote_parts(record.id.clone(), t)
                    .await
                    .ok()
                    .and_then(|p| p.into_iter().next())
                    .map(|p| RemoteRef {
                        chat: p.chat,
                        message_id: p.id,
                    }),
                None => None,
            };
            let msg = OutboundMessage {
                item_id: trx_id.to_hex(),
                group_id: record.group_id.to_hex(),
                text: text_of(&object, &record.nick_format, &author),
                author,
                reply_to,
                attachments: attachments_of(&object),
                origin: origin_of(origin.as_ref()),
                item: Some(item_json(row, &object, origin.as_ref())),
            };
            match gateway.send(&record.chat, &msg).await {
                Ok(d) => Step::Done(MapChange::Set {
                    trx_id,
                    parts: parts_of(&d),
                }),
                Err(e) => classify(e),
            }
        }
        "Update" => {
            let Some((original, parts)) = delivered_target(
                engine,
                &record.id,
                target(&object["object"]["id"]),
                &row.trx.body.sender,
                None,
            )
            .await
            else {
                return Step::Done(MapChange::None);
            };
            let edit = OutboundEdit {
                item_id: original.to_hex(),
                parts: refs(&parts),
                text: text_of(&object["object"], &record.nick_format, &author),
                author,
            };
            match gateway.edit(&record.chat, &edit).await {
                Ok(d) => Step::Done(MapChange::Set {
                    trx_id: original,
                    parts: parts_of(&d),
                }),
                Err(e) => classify(e),
            }
        }
        "Delete" => {
            let Some((original, parts)) = delivered_target(
                engine,
                &record.id,
                target(&object["object"]),
                &row.trx.body.sender,
                Some(&entry.rules.owner),
            )
            .await
            else {
                return Step::Done(MapChange::None);
            };
            let del = OutboundDelete {
                item_id: original.to_hex(),
                parts: refs(&parts),
            };
            match gateway.delete(&record.chat, &del).await {
                Ok(()) => Step::Done(MapChange::Remove { trx_id: original }),
                Err(e) => classify(e),
            }
        }
        // Likes are not mirrored.
        _ => Step::Done(MapChange::None),
    }
}

/// The item as the API shows it (what webhooks forward).
fn item_json(row: &IncludedTrx, object: &Value, origin: Option<&Value>) -> Value {
    serde_json::to_value(crate::engine::feed::ItemView::new(
        row.seq,
        row.height,
        &row.trx,
        Some(PostPayload {
            object: object.clone(),
            origin: origin.cloned(),
        }),
    ))
    .unwrap_or(Value::Null)
}

/// The target of an Update/Delete with its remote parts on this link, if it was delivered here
/// and `sender` may change it: the original sender, or (`owner`, for deletes) the group owner.
async fn delivered_target(
    engine: &Engine,
    link_id: &str,
    original: Option<TrxId>,
    sender: &[u8; 32],
    owner: Option<&[u8; 32]>,
) -> Option<(TrxId, Vec<RemotePart>)> {
    let original = original?;
    // Never delivered here (e.g. before the link existed): nothing to change.
    let parts = engine
        .store()
        .remote_parts(link_id.to_string(), original)
        .await
        .ok()
        .filter(|p| !p.is_empty())?;
    match engine.store().trx_status(original).await {
        Ok(Some(TrxStatus::Included(o)))
            if o.trx.body.sender == *sender || owner == Some(sender) =>
        {
            Some((original, parts))
        }
        _ => None,
    }
}

/// Points the link at the chat's new id, durably, and says so in its status.
pub(crate) async fn follow_migration(engine: &Engine, link: &LinkRuntime, new_chat: &str) {
    let id = link.record().id;
    let old = link.record().chat;
    if let Err(e) = engine
        .store()
        .update_link_chat(id.clone(), new_chat.to_string())
        .await
    {
        tracing::error!(link = %id, error = %e, "cannot record chat migration");
        return;
    }
    link.record.write().unwrap_or_else(|p| p.into_inner()).chat = new_chat.to_string();
    let note = format!("chat {old} migrated to {new_chat}; the link follows it");
    tracing::info!(link = %id, "{note}");
    link.set_health(LinkHealth::Ok, Some(note));
}
