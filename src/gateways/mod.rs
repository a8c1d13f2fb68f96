//! Gateways: runs adapters, the link registry, per-link delivery workers and inbound bridging.
//!
//! Outbound, a link's queue is its group's chain after the link's durable cursor: one worker per
//! link delivers items in chain order and commits the ID map together with the cursor. Inbound,
//! each remote message becomes one signed trx per in-link, deduplicated by
//! (gateway, chat, remote id) in the same transaction that stores it.

mod factory;
mod inbound;
pub mod render;
mod worker;

pub use factory::KINDS;

use crate::chain::GroupId;
use crate::engine::error::NodeError;
use crate::engine::Engine;
use crate::store::{AccountRecord, LinkRecord};
use crate::util::now_ms;
use rumgate_gateway::{inbound_channel, DynGateway, GatewayContext, InboundSink};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Link health as shown in the API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkHealth {
    Ok,
    Degraded,
    Failing,
}

impl LinkHealth {
    fn gauge(self) -> i64 {
        match self {
            Self::Ok => 0,
            Self::Degraded => 1,
            Self::Failing => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    pub health: LinkHealth,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    pub delivered: i64,
    pub delivered_total: u64,
}

/// A running link: its record, its live state and the worker's wake-up.
pub struct LinkRuntime {
    pub(crate) record: RwLock<LinkRecord>,
    pub(crate) state: Mutex<LinkState>,
    pub(crate) wake: Notify,
    pub(crate) cancel: CancellationToken,
    pub(crate) kind: String,
}

impl LinkRuntime {
    pub fn record(&self) -> LinkRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn set_health(&self, health: LinkHealth, error: Option<String>) {
        let mut st = self.state();
        st.health = health;
        if let Some(e) = error {
            st.last_error = Some(e);
            st.last_error_at = Some(now_ms());
        }
    }
    fn outbound(&self) -> bool {
        let r = self.record();
        r.direction == "out" || r.direction == "both"
    }
    fn inbound(&self) -> bool {
        let r = self.record();
        r.direction == "in" || r.direction == "both"
    }
}

pub(crate) struct Account {
    pub record: AccountRecord,
    /// The shared adapter instance (telegram, mixin); webhooks get one per link.
    pub gateway: Option<DynGateway>,
    /// Why the shared instance could not be built (a keystore file gone …), for link status.
    pub start_error: Option<String>,
}

/// The gateway service, owned by the node.
pub struct Gateways {
    pub(crate) engine: Arc<Engine>,
    pub(crate) accounts: RwLock<HashMap<String, Arc<Account>>>,
    pub(crate) links: RwLock<HashMap<String, Arc<LinkRuntime>>>,
    sink: InboundSink,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// What the API shows of a link.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkStatus {
    pub id: String,
    pub group_id: String,
    pub gateway_id: String,
    pub kind: String,
    pub chat: String,
    pub direction: String,
    pub nick_format: String,
    pub backfill: u64,
    pub created_at: u64,
    /// `POST` target for inbound webhooks (webhook links with direction in|both).
    pub inbound_url: Option<String>,
    pub health: LinkHealth,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    /// Items waiting for delivery on this link.
    pub outbox_depth: u64,
    /// Age of the oldest waiting item, ms.
    pub oldest_pending_age_ms: Option<u64>,
    /// Every item up to this cursor has been delivered (or dead-lettered).
    pub delivered_cursor: String,
    pub delivered_total: u64,
    pub dead_letters: Vec<DeadLetterInfo>,
    /// Webhook options without the secret.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterInfo {
    pub cursor: String,
    pub trx_id: String,
    pub error: String,
    pub attempts: u32,
    pub failed_at: u64,
    pub retry_requested: bool,
}

/// A new link as requested.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub group_id: GroupId,
    pub gateway: String,
    pub chat: String,
    pub direction: String,
    pub backfill: u64,
    pub nick_format: Option<String>,
    pub options: serde_json::Value,
}

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    )
}

/// Hides secret values in a JSON config for display.
pub fn redact(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let secret = [
                        "token",
                        "secret",
                        "webhook_secret",
                        "keystore",
                        "private_key",
                        "session_private_key",
                    ]
                    .contains(&k.as_str());
                    (
                        k.clone(),
                        if secret && !v.is_null() {
                            "***".into()
                        } else {
                            redact(v)
                        },
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Gateways {
    /// Loads accounts and links, starts adapters, workers and the inbound consumer.
    pub async fn start(
        engine: Arc<Engine>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, NodeError> {
        let (sink, receiver) = inbound_channel(1024);
        let gw = Arc::new(Self {
            engine: engine.clone(),
            accounts: RwLock::new(HashMap::new()),
            links: RwLock::new(HashMap::new()),
            sink,
            tasks: tasks.clone(),
            cancel: cancel.clone(),
        });
        for record in engine.store().load_accounts().await? {
            gw.start_account(record).await;
        }
        for record in engine.store().load_links().await? {
            gw.start_link(record);
        }
        tasks.spawn(inbound::consume(gw.clone(), receiver, cancel));
        Ok(gw)
    }

    async fn start_account(&self, record: AccountRecord) -> Arc<Account> {
        let mut start_error = None;
        let gateway = match factory::account_gateway(&record) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(gateway = %record.id, error = %e, "cannot start adapter");
                start_error = Some(format!("gateway {} cannot start: {e}", record.name));
                None
            }
        };
        if let Some(g) = &gateway {
            let ctx = GatewayContext::new(record.id.clone(), &self.sink, self.cancel.child_token());
            if let Err(e) = g.start(ctx).await {
                tracing::error!(gateway = %record.id, error = %e, "adapter failed to start");
            }
        }
        let account = Arc::new(Account {
            record,
            gateway,
            start_error,
        });
        self.accounts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.record.id.clone(), account.clone());
        account
    }

    fn account(&self, id: &str) -> Option<Arc<Account>> {
        self.accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Finds an account by id or name.
    fn find_account(&self, key: &str) -> Option<Arc<Account>> {
        let accounts = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        accounts
            .get(key)
            .cloned()
            .or_else(|| accounts.values().find(|a| a.record.name == key).cloned())
    }

    fn start_link(&self, record: LinkRecord) -> Arc<LinkRuntime> {
        let kind = self
            .account(&record.gateway_id)
            .map(|a| a.record.kind.clone())
            .unwrap_or_default();
        let link = Arc::new(LinkRuntime {
            state: Mutex::new(LinkState {
                health: LinkHealth::Ok,
                last_error: None,
                last_error_at: None,
                delivered: record.delivered_seq,
                delivered_total: 0,
            }),
            record: RwLock::new(record),
            wake: Notify::new(),
            cancel: self.cancel.child_token(),
            kind,
        });
        self.links
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(link.record().id, link.clone());
        if link.outbound() {
            match self.outbound_gateway(&link) {
                Ok(gateway) => {
                    self.tasks
                        .spawn(worker::run(self.engine.clone(), link.clone(), gateway));
                }
                Err(e) => link.set_health(LinkHealth::Failing, Some(e)),
            }
        }
        link
    }

    fn outbound_gateway(&self, link: &LinkRuntime) -> Result<DynGateway, String> {
        let record = link.record();
        let account = self
            .account(&record.gateway_id)
            .ok_or_else(|| format!("gateway {} is gone", record.gateway_id))?;
        factory::link_gateway(&account, &record)
    }

    pub fn link(&self, id: &str) -> Option<Arc<LinkRuntime>> {
        self.links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn links_snapshot(&self) -> Vec<Arc<LinkRuntime>> {
        let mut v: Vec<_> = self
            .links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|l| {
            let r = l.record();
            (r.created_at, r.id)
        });
        v
    }

    /// Registers an adapter account (secrets are kept, never shown).
    pub async fn create_account(
        &self,
        kind: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<AccountRecord, NodeError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(NodeError::Invalid("name must be 1 to 64 characters".into()));
        }
        let config = factory::validate_account(kind, config).map_err(NodeError::Invalid)?;
        let record = AccountRecord {
            id: new_id("gw"),
            kind: kind.to_string(),
            name: name.to_string(),
            config,
            created_at: now_ms(),
        };
        self.engine.store().insert_account(record.clone()).await?;
        let account = self.start_account(record.clone()).await;
        tracing::info!(gateway = %account.record.id, kind, "added gateway account");
        Ok(record)
    }

    pub fn accounts(&self) -> Vec<AccountRecord> {
        let mut v: Vec<_> = self
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|a| a.record.clone())
            .collect();
        v.sort_by_key(|a| (a.created_at, a.id.clone()));
        v
    }

    pub async fn delete_account(&self, id: &str) -> Result<(), NodeError> {
        let account = self
            .find_account(id)
            .ok_or_else(|| NodeError::NotFound("unknown_gateway", format!("no gateway {id}")))?;
        self.engine
            .store()
            .delete_account(account.record.id.clone())
            .await?;
        if let Some(g) = &account.gateway {
            g.shutdown().await;
        }
        self.accounts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account.record.id);
        Ok(())
    }

    /// Creates a link and starts delivering (the last `backfill` posts first).
    pub async fn create_link(&self, req: NewLink) -> Result<LinkStatus, NodeError> {
        self.engine.group(&req.group_id)?;
        let account = self.find_account(&req.gateway).ok_or_else(|| {
            NodeError::Invalid(format!(
                "no gateway {:?} (see GET /api/v1/gateways)",
                req.gateway
            ))
        })?;
        if !["in", "out", "both"].contains(&req.direction.as_str()) {
            return Err(NodeError::Invalid(
                "direction must be in, out or both".into(),
            ));
        }
        if req.backfill > 10_000 {
            return Err(NodeError::Invalid("backfill must be at most 10000".into()));
        }
        let options =
            factory::validate_link(&account.record.kind, &req.direction, &req.chat, req.options)
                .map_err(NodeError::Invalid)?;
        let nick_format = req.nick_format.unwrap_or_else(|| "{name}: ".into());
        if nick_format.len() > 200 {
            return Err(NodeError::Invalid(
                "nick_format must be at most 200 bytes".into(),
            ));
        }
        let start = self
            .engine
            .store()
            .backfill_start(req.group_id, req.backfill)
            .await?;
        let record = LinkRecord {
            id: new_id("lnk"),
            group_id: req.group_id,
            gateway_id: account.record.id.clone(),
            chat: req.chat,
            direction: req.direction,
            nick_format,
            backfill: req.backfill,
            options,
            delivered_seq: start,
            created_at: now_ms(),
        };
        self.engine.store().insert_link(record.clone()).await?;
        let link = self.start_link(record);
        tracing::info!(link = %link.record().id, gateway = %account.record.id, "added link");
        self.status(&link).await
    }

    pub async fn delete_link(&self, id: &str) -> Result<(), NodeError> {
        let link = self
            .links
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| NodeError::NotFound("unknown_link", format!("no link {id}")))?;
        link.cancel.cancel();
        self.engine.store().delete_link(id.to_string()).await?;
        Ok(())
    }

    /// Asks the worker to deliver the link's dead letters again.
    pub async fn retry(&self, id: &str) -> Result<usize, NodeError> {
        let link = self
            .link(id)
            .ok_or_else(|| NodeError::NotFound("unknown_link", format!("no link {id}")))?;
        let n = self
            .engine
            .store()
            .retry_dead_letters(id.to_string())
            .await?;
        link.wake.notify_one();
        Ok(n)
    }

    pub async fn list_links(&self) -> Result<Vec<LinkStatus>, NodeError> {
        let mut out = Vec::new();
        for l in self.links_snapshot() {
            out.push(self.status(&l).await?);
        }
        Ok(out)
    }

    pub async fn link_status(&self, id: &str) -> Result<LinkStatus, NodeError> {
        let link = self
            .link(id)
            .ok_or_else(|| NodeError::NotFound("unknown_link", format!("no link {id}")))?;
        self.status(&link).await
    }

    async fn status(&self, link: &LinkRuntime) -> Result<LinkStatus, NodeError> {
        let r = link.record();
        let st = link.state().clone();
        let (depth, oldest) = if link.outbound() {
            self.engine
                .store()
                .backlog(r.group_id, st.delivered)
                .await?
        } else {
            (0, None)
        };
        let dead = self.engine.store().dead_letters(r.id.clone()).await?;
        let mut health = st.health;
        if health == LinkHealth::Ok && !dead.is_empty() {
            health = LinkHealth::Degraded;
        }
        let mut last_error = st.last_error;
        // The account's own state (a websocket down, credentials refused) shows on its links.
        if let Some(g) = self.account(&r.gateway_id).and_then(|a| a.gateway.clone()) {
            let h = g.chat_health(&r.chat).await;
            let adapter = match h.state {
                rumgate_gateway::HealthState::Ok => LinkHealth::Ok,
                rumgate_gateway::HealthState::Degraded => LinkHealth::Degraded,
                rumgate_gateway::HealthState::Failing => LinkHealth::Failing,
            };
            if adapter.gauge() > health.gauge() {
                health = adapter;
                if let Some(detail) = h.detail {
                    last_error = Some(detail);
                }
            }
        }
        let webhook_in = link.kind == "webhook" && link.inbound();
        self.engine
            .metrics()
            .link_gauges(&r.id, depth as i64, health.gauge());
        let chat = factory::display_chat(&link.kind, &r);
        Ok(LinkStatus {
            inbound_url: webhook_in.then(|| format!("/hooks/{}", r.id)),
            id: r.id,
            group_id: r.group_id.to_hex(),
            gateway_id: r.gateway_id,
            chat,
            kind: link.kind.clone(),
            direction: r.direction,
            nick_format: r.nick_format,
            backfill: r.backfill,
            created_at: r.created_at,
            health,
            last_error,
            last_error_at: st.last_error_at,
            outbox_depth: depth,
            oldest_pending_age_ms: oldest.map(|t| now_ms().saturating_sub(t)),
            delivered_cursor: st.delivered.to_string(),
            delivered_total: st.delivered_total,
            dead_letters: dead
                .into_iter()
                .map(|d| DeadLetterInfo {
                    cursor: d.seq.to_string(),
                    trx_id: d.trx_id.to_hex(),
                    error: d.error,
                    attempts: d.attempts,
                    failed_at: d.failed_at,
                    retry_requested: d.retry,
                })
                .collect(),
            options: redact(&r.options),
        })
    }

    /// Handles `POST /hooks/{link_id}`: verifies and bridges one inbound webhook.
    pub async fn hook(
        &self,
        link_id: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<inbound::HookOutcome, inbound::HookError> {
        inbound::hook(self, link_id, headers, body).await
    }

    /// Stops every adapter (workers stop with the node's cancellation token).
    pub async fn shutdown(&self) {
        let accounts: Vec<_> = self
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for a in accounts {
            if let Some(g) = &a.gateway {
                g.shutdown().await;
            }
        }
    }
}

pub use inbound::{HookError, HookOutcome};
