//! Inbound: remote messages, edits and deletes become signed trx in every linked group.

use super::render::{object_of, origin_json, MAX_HOPS};
use super::{worker, Gateways};
use crate::chain::GroupId;
use crate::engine::error::NodeError;
use crate::engine::PostOptions;
use crate::store::InboundKey;
use rumgate_gateway::{Ack, GatewayError, InboundEvent, InboundReceiver};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn consume(gw: Arc<Gateways>, mut rx: InboundReceiver, cancel: CancellationToken) {
    loop {
        let req = tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let result = bridge(&gw, &req.gateway, None, req.event.clone(), 1).await;
        req.respond(result);
    }
}

/// Bridges one inbound event for a gateway account (all its in-links for that chat), or for one
/// link only (webhooks). `hops` is how many links the message has crossed including this one.
pub(crate) async fn bridge(
    gw: &Gateways,
    gateway_id: &str,
    only_link: Option<&str>,
    event: InboundEvent,
    hops: u64,
) -> Result<Ack, GatewayError> {
    let chat = match &event {
        InboundEvent::Message(m) => m.chat.clone(),
        InboundEvent::Edit { chat, .. } | InboundEvent::Delete { chat, .. } => chat.clone(),
        InboundEvent::ChatMigrated { chat, new_chat } => {
            for link in gw.links_snapshot() {
                let r = link.record();
                if r.gateway_id == gateway_id && r.chat == *chat {
                    worker::follow_migration(&gw.engine, &link, new_chat).await;
                }
            }
            return Ok(Ack::Ignored {
                reason: "chat migration recorded".into(),
            });
        }
    };
    if hops > MAX_HOPS {
        return Ok(Ack::Ignored {
            reason: format!("hop limit {MAX_HOPS} reached"),
        });
    }
    if let InboundEvent::Message(m) = &event {
        if m.from_self {
            return Ok(Ack::Ignored {
                reason: "the adapter's own message".into(),
            });
        }
    }
    let links: Vec<_> = gw
        .links_snapshot()
        .into_iter()
        .filter(|l| {
            let r = l.record();
            l.inbound()
                && r.gateway_id == gateway_id
                && match only_link {
                    Some(id) => r.id == id,
                    None => r.chat == chat,
                }
        })
        .collect();
    if links.is_empty() {
        return Ok(Ack::Ignored {
            reason: format!("no inbound link for chat {chat}"),
        });
    }
    let mut first: Option<Ack> = None;
    for link in links {
        let r = link.record();
        let ack = bridge_one(
            gw, &link.kind, gateway_id, &r.id, &chat, r.group_id, &event, hops,
        )
        .await;
        let ack = match ack {
            Ok(a) => a,
            Err(NodeError::Store(e)) => return Err(GatewayError::Transient(e.to_string())),
            Err(NodeError::ShuttingDown) => {
                return Err(GatewayError::Transient("node shutting down".into()))
            }
            Err(e) => {
                tracing::warn!(link = %r.id, error = %e, "inbound message not bridged");
                Ack::Ignored {
                    reason: e.to_string(),
                }
            }
        };
        first.get_or_insert(ack);
    }
    Ok(first.unwrap_or(Ack::Ignored {
        reason: "nothing to do".into(),
    }))
}

#[allow(clippy::too_many_arguments)]
async fn bridge_one(
    gw: &Gateways,
    kind: &str,
    gateway_id: &str,
    link_id: &str,
    chat: &str,
    group: GroupId,
    event: &InboundEvent,
    hops: u64,
) -> Result<Ack, NodeError> {
    let store = gw.engine.store();
    let lookup =
        |remote: String| store.trx_for_remote(gateway_id.into(), chat.into(), remote, group);
    let (object, remote_id, author) = match event {
        InboundEvent::Message(m) => {
            let reply = match &m.reply_to {
                Some(r) => lookup(r.clone()).await?.map(|t| t.to_hex()),
                None => None,
            };
            (object_of(m, reply), m.message_id.clone(), m.author.clone())
        }
        InboundEvent::Edit {
            message_id,
            text,
            author,
            ..
        } => {
            let Some(original) = lookup(message_id.clone()).await? else {
                return Ok(Ack::Ignored {
                    reason: format!("edit of unknown message {message_id}"),
                });
            };
            let digest = hex::encode(
                &crate::chain::encoding::tagged_hash(b"edit", text.text.as_bytes())[..8],
            );
            (
                json!({"type": "Update", "object": {"id": original.to_hex(), "type": "Note", "content": text.text}}),
                format!("{message_id}#edit-{digest}"),
                author.clone(),
            )
        }
        InboundEvent::Delete { message_id, .. } => {
            let Some(original) = lookup(message_id.clone()).await? else {
                return Ok(Ack::Ignored {
                    reason: format!("delete of unknown message {message_id}"),
                });
            };
            (
                json!({"type": "Delete", "object": original.to_hex()}),
                format!("{message_id}#delete"),
                rumgate_gateway::Author {
                    id: String::new(),
                    name: String::new(),
                },
            )
        }
        InboundEvent::ChatMigrated { .. } => {
            return Ok(Ack::Ignored {
                reason: "migration".into(),
            })
        }
    };
    let origin = origin_json(kind, gateway_id, link_id, chat, &remote_id, &author, hops);
    let posted = gw
        .engine
        .post(
            &group,
            object,
            PostOptions {
                origin: Some(origin),
                inbound: Some(InboundKey {
                    gateway_id: gateway_id.to_string(),
                    chat: chat.to_string(),
                    remote_id,
                }),
                ..PostOptions::default()
            },
        )
        .await?;
    let trx_id = posted.trx_id.to_hex();
    Ok(if posted.replayed {
        Ack::Duplicate { trx_id }
    } else {
        Ack::Stored { trx_id }
    })
}

/// What `POST /hooks/{link_id}` answers on success.
#[derive(Debug, serde::Serialize)]
pub struct HookOutcome {
    /// `stored`, `duplicate` or `ignored`.
    pub status: &'static str,
    pub trx_id: Option<String>,
    pub reason: Option<String>,
}

/// Why a hook was refused, with the HTTP status to answer.
#[derive(Debug)]
pub struct HookError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// An update an adapter's remote pushes to a link's hook (Telegram's webhook mode): the account's
/// adapter handles it and answers once the node acknowledged it. `None`: the adapter takes none.
async fn push(
    gw: &Gateways,
    account: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<Result<HookOutcome, HookError>> {
    let adapter = gw.account(account)?.gateway.clone()?;
    let headers = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let reply = adapter.push(&headers, body).await?;
    Some(if (200..300).contains(&reply.status) {
        Ok(HookOutcome {
            status: "accepted",
            trx_id: None,
            reason: Some(reply.message),
        })
    } else {
        Err(HookError {
            status: reply.status,
            code: if reply.status == 401 {
                "bad_signature"
            } else {
                "unavailable"
            },
            message: reply.message,
        })
    })
}

pub(crate) async fn hook(
    gw: &Gateways,
    link_id: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<HookOutcome, HookError> {
    let not_found = || HookError {
        status: 404,
        code: "unknown_link",
        message: format!("no inbound webhook link {link_id}"),
    };
    let link = gw.link(link_id).ok_or_else(not_found)?;
    if !link.inbound() {
        return Err(not_found());
    }
    if link.kind != "webhook" {
        return push(gw, &link.record().gateway_id, headers, body)
            .await
            .ok_or_else(not_found)?;
    }
    let record = link.record();
    let (remote_id, event, hops) = super::factory::verify_hook(&record, headers, body)?;
    // Our own outbound events come back through a hook of the same group: drop them.
    if let Some(group) = super::factory::echo_group(body) {
        if group == record.group_id.to_hex() {
            return Ok(HookOutcome {
                status: "ignored",
                trx_id: None,
                reason: Some("echo of this group's own item".into()),
            });
        }
    }
    let Some(event) = event else {
        return Ok(HookOutcome {
            status: "ignored",
            trx_id: None,
            reason: Some("nothing to post (e.g. a ping)".into()),
        });
    };
    let event = match event {
        InboundEvent::Message(mut m) => {
            m.chat = record.id.clone();
            m.message_id = remote_id;
            InboundEvent::Message(m)
        }
        other => other,
    };
    let ack = bridge(gw, &record.gateway_id, Some(&record.id), event, hops)
        .await
        .map_err(|e| HookError {
            status: 503,
            code: "unavailable",
            message: e.to_string(),
        })?;
    Ok(match ack {
        Ack::Stored { trx_id } => HookOutcome {
            status: "stored",
            trx_id: Some(trx_id),
            reason: None,
        },
        Ack::Duplicate { trx_id } => HookOutcome {
            status: "duplicate",
            trx_id: Some(trx_id),
            reason: None,
        },
        Ack::Ignored { reason } => HookOutcome {
            status: "ignored",
            trx_id: None,
            reason: Some(reason),
        },
    })
}
