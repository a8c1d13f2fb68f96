//! The engine: group lifecycle and posting on top of the chain rules and the store.

use super::groups::{GroupEntry, Groups, Role};
use crate::chain::object;
use crate::chain::seed::{Seed, VerifiedSeed};
use crate::chain::verify::{verify_genesis, verify_trx};
use crate::chain::{
    Block, Consensus, Genesis, GenesisBody, GroupId, GroupKind, Head, Trx, TrxId, Verified,
    PROTOCOL_VERSION,
};
use crate::crypto::{random_bytes, GroupKey, Identity};
use crate::error::NodeError;
use crate::store::{Committed, JoinOutcome, Store};
use crate::util::now_ms;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use tokio::sync::{broadcast, mpsc};

pub const MAX_GROUP_NAME_CHARS: usize = 128;

/// Something that happened on a chain, for streams, waiters and benchmarks.
#[derive(Debug, Clone)]
pub enum ChainEvent {
    /// A block was durably stored; its trx are now included with these stream cursors.
    Included(Arc<Committed>),
}

pub struct Engine {
    pub(crate) store: Store,
    pub(crate) identity: Identity,
    pub(crate) groups: Groups,
    produce_tx: mpsc::UnboundedSender<GroupId>,
    events: broadcast::Sender<ChainEvent>,
    /// The network handle, set once the p2p layer has started (absent in API-only tests).
    net: OnceLock<crate::p2p::Client>,
}

/// Outcome of a join, so the API can answer 201 or 200.
pub enum Joined {
    Created(Arc<GroupEntry>),
    Existing(Arc<GroupEntry>),
}

impl Engine {
    pub(crate) fn new(
        store: Store,
        identity: Identity,
        produce_tx: mpsc::UnboundedSender<GroupId>,
    ) -> Self {
        Self {
            store,
            identity,
            groups: Groups::default(),
            produce_tx,
            events: broadcast::channel(4096).0,
            net: OnceLock::new(),
        }
    }

    /// The peer-to-peer network, once started.
    pub fn network(&self) -> Option<&crate::p2p::Client> {
        self.net.get()
    }

    pub(crate) fn set_network(&self, client: crate::p2p::Client) {
        let _ = self.net.set(client);
    }

    /// Whether this node produces blocks for the group (else it follows it over the network).
    pub fn produces(&self, entry: &GroupEntry) -> bool {
        entry.rules.is_producer(&self.identity.public())
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.identity.public()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    pub(crate) fn publish(&self, ev: ChainEvent) {
        // No subscribers is normal.
        let _ = self.events.send(ev);
    }

    pub fn group(&self, id: &GroupId) -> Result<Arc<GroupEntry>, NodeError> {
        self.groups
            .get(id)
            .ok_or_else(|| NodeError::UnknownGroup(id.to_hex()))
    }

    pub fn groups(&self) -> Vec<Arc<GroupEntry>> {
        self.groups.list()
    }

    /// Creates a group owned (and produced) by this node.
    pub async fn create_group(
        &self,
        name: &str,
        kind: GroupKind,
    ) -> Result<Arc<GroupEntry>, NodeError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_CHARS {
            return Err(NodeError::Invalid(format!(
                "name must be 1 to {MAX_GROUP_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(NodeError::Invalid(
                "name must not contain control characters".into(),
            ));
        }
        let body = GenesisBody {
            version: PROTOCOL_VERSION,
            name: name.to_string(),
            app: "timeline".into(),
            kind,
            owner: self.identity.public(),
            consensus: Consensus::Poa,
            created_at: now_ms(),
            salt: random_bytes(),
        };
        let genesis = verify_genesis(Genesis::sign(body, &self.identity))?;
        let key = GroupKey::generate();
        self.store
            .join_group(&genesis, Some(key.clone()), Vec::new(), now_ms())
            .await?;
        let created_at = genesis.body.created_at;
        let gid = genesis.group_id();
        let entry = Arc::new(GroupEntry::new(
            genesis,
            Some(key),
            Vec::new(),
            now_ms(),
            crate::chain::Head::genesis(gid, created_at),
            &self.identity.public(),
        ));
        self.groups.insert(entry.clone());
        self.announce_group(gid, &[]).await;
        tracing::info!(group = %gid, kind = kind.as_str(), "created group");
        Ok(entry)
    }

    /// The seed of a joined group (the key is included only for public groups).
    pub fn seed(&self, entry: &GroupEntry) -> Seed {
        Seed {
            genesis: (*entry.genesis).clone(),
            group_key: match entry.rules.kind {
                GroupKind::Public => entry.key.as_ref().map(|k| *k.as_bytes()),
                GroupKind::Private => None,
            },
            bootstrap: self.seed_bootstrap(entry),
        }
    }

    /// This node's own addresses first, then the addresses the group came with.
    fn seed_bootstrap(&self, entry: &GroupEntry) -> Vec<String> {
        let mut out: Vec<String> = self
            .net
            .get()
            .map(|n| n.listen_addrs().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        for b in &entry.bootstrap {
            if !out.contains(b) {
                out.push(b.clone());
            }
        }
        out
    }

    /// Joins a group from its seed after verifying it.
    pub async fn join(&self, seed: &str) -> Result<Joined, NodeError> {
        let VerifiedSeed {
            genesis,
            group_key,
            bootstrap,
        } = Seed::parse_and_verify(seed)?;
        let gid = genesis.group_id();
        if let Some(existing) = self.groups.get(&gid) {
            return Ok(Joined::Existing(existing));
        }
        let outcome = self
            .store
            .join_group(&genesis, group_key, bootstrap, now_ms())
            .await?;
        // Re-read: a group left earlier keeps its data, head and (for its owner) its key.
        let record = self
            .store
            .load_group(gid)
            .await?
            .ok_or_else(|| NodeError::UnknownGroup(gid.to_hex()))?;
        let entry = Arc::new(GroupEntry::new(
            genesis,
            record.group_key,
            record.bootstrap,
            record.joined_at,
            record.head,
            &self.identity.public(),
        ));
        self.load_pending_into(&entry).await?;
        self.groups.insert(entry.clone());
        self.announce_group(gid, &entry.bootstrap).await;
        tracing::info!(group = %gid, role = entry.role.as_str(), "joined group");
        Ok(match outcome {
            JoinOutcome::AlreadyJoined => Joined::Existing(entry),
            JoinOutcome::Created | JoinOutcome::Rejoined => Joined::Created(entry),
        })
    }

    /// Leaves a group; `purge` also deletes its blocks and trx.
    pub async fn leave(&self, id: &GroupId, purge: bool) -> Result<(), NodeError> {
        let known = self.groups.remove(id).is_some();
        if let Some(net) = self.net.get() {
            let _ = net.group_removed(*id).await;
        }
        let stored = self.store.leave_group(*id, purge).await?;
        if !known && !stored {
            return Err(NodeError::UnknownGroup(id.to_hex()));
        }
        tracing::info!(group = %id, purge, "left group");
        Ok(())
    }

    /// Validates, signs, verifies and durably stores a POST; returns once it is acknowledged.
    pub async fn post(&self, id: &GroupId, object: serde_json::Value) -> Result<TrxId, NodeError> {
        let entry = self.group(id)?;
        let key = entry.key.as_ref().ok_or(NodeError::NoGroupKey(*id))?;
        let object = object::normalize(object)?;
        let payload = object::PostPayload {
            object,
            origin: None,
        };
        let plaintext = serde_json::to_vec(&payload)
            .map_err(|e| NodeError::Invalid(format!("object does not serialise: {e}")))?;
        let now = now_ms();
        let trx = Trx::new_post(&self.identity, *id, key, &plaintext, now, random_bytes());
        let verified = verify_trx(trx, &entry.rules, now)?;
        let trx_id = verified.id();
        self.store.insert_pending(&verified, now).await?;
        let forward = (!self.produces(&entry)).then(|| verified.clone());
        entry.lock().pending.push_back(verified);
        self.schedule(&entry);
        if let (Some(trx), Some(net)) = (forward, self.net.get()) {
            // Acknowledged once stored; the network layer re-publishes until it is included.
            if let Err(e) = net.publish_trx(&trx).await {
                tracing::debug!(trx = %trx_id, error = %e, "first publish failed; will retry");
            }
        }
        Ok(trx_id)
    }

    /// Subscribes the network to a group's topic and dials the addresses it came with.
    async fn announce_group(&self, gid: GroupId, bootstrap: &[String]) {
        if let Some(net) = self.net.get() {
            let addrs = bootstrap.iter().filter_map(|a| a.parse().ok()).collect();
            let _ = net.group_added(gid, addrs).await;
        }
    }

    /// A verified trx received from a peer, for a group this node produces: stored as pending
    /// and queued for the next block, exactly like a local post.
    pub(crate) async fn accept_remote_trx(
        &self,
        entry: &Arc<GroupEntry>,
        trx: Verified<Trx>,
    ) -> Result<(), NodeError> {
        self.store.insert_pending(&trx, now_ms()).await?;
        entry.lock().pending.push_back(trx);
        self.schedule(entry);
        Ok(())
    }

    /// Records a block from the network that is now durably stored: moves the head, drops its
    /// trx from the pending queue and tells subscribers.
    pub(crate) fn apply_committed(
        &self,
        entry: &GroupEntry,
        block: &Verified<Block>,
        committed: Committed,
    ) {
        {
            let mut st = entry.lock();
            if block.body.height > st.head.height {
                st.head = Head {
                    height: block.body.height,
                    hash: block.hash(),
                    timestamp: block.body.timestamp,
                };
            }
            if !st.pending.is_empty() {
                let included: HashSet<TrxId> = committed.trx.iter().map(|(id, _)| *id).collect();
                st.pending.retain(|t| !included.contains(&t.id()));
            }
        }
        self.publish(ChainEvent::Included(Arc::new(committed)));
    }

    /// Publishes a block this node produced to the group's peers.
    pub(crate) async fn announce_block(&self, block: &Verified<Block>) {
        if let Some(net) = self.net.get() {
            if let Err(e) = net.publish_block(block).await {
                tracing::debug!(height = block.body.height, error = %e, "block not published");
            }
        }
    }

    /// Tells the producer a group has pending trx (at most one outstanding wake-up per group).
    pub(crate) fn schedule(&self, entry: &GroupEntry) {
        let produces =
            entry.role == Role::Owner || entry.rules.is_producer(&self.identity.public());
        if produces && !entry.scheduled.swap(true, Ordering::AcqRel) {
            let _ = self.produce_tx.send(entry.id());
        }
    }

    /// Refills a group's in-memory pending queue from the store (start-up and re-join).
    pub(crate) async fn load_pending_into(&self, entry: &GroupEntry) -> Result<(), NodeError> {
        let pending = self.store.load_pending(entry.id()).await?;
        let now = now_ms();
        let mut ok = Vec::with_capacity(pending.len());
        for trx in pending {
            let id = trx.trx_id();
            match verify_trx(trx, &entry.rules, now) {
                Ok(v) => ok.push(v),
                Err(e) => tracing::warn!(trx = %id, error = %e, "dropping invalid pending trx"),
            }
        }
        entry.lock().pending.extend(ok);
        Ok(())
    }
}
