//! The engine: the domain service — group lifecycle and posting on top of the chain rules and
//! the store. Everything above it (API, p2p, gateways) calls into it; it calls nothing above.

pub mod error;
pub mod feed;
mod groups;
pub mod network;
pub(crate) mod producer;

pub use groups::{GroupEntry, Role};
pub use network::Network;

use crate::chain::object::{self, RefKind};
use crate::chain::seed::{Seed, VerifiedSeed};
use crate::chain::verify::{verify_genesis, verify_trx};
use crate::chain::{
    Block, Consensus, Genesis, GenesisBody, GroupId, GroupKind, Head, Trx, TrxId, Verified,
    PROTOCOL_VERSION,
};
use crate::crypto::{random_bytes, GroupKey, Identity};
use crate::metrics::Metrics;
use crate::store::{Committed, JoinOutcome, Store};
use crate::store::{IdempotencyKey, InboundKey, Submitted};
use error::NodeError;
use feed::{open_post, Batch, FeedItem, Hub, ItemView};
use groups::Groups;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

use crate::util::now_ms;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

type NetworkHandle = Arc<dyn Network>;
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
    hub: Hub,
    metrics: Arc<Metrics>,
    waiters: Mutex<HashMap<TrxId, Vec<oneshot::Sender<Inclusion>>>>,
    /// The network, set once it has started (absent in API-only tests).
    net: OnceLock<NetworkHandle>,
}

/// Where a trx was included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    pub height: u64,
    pub cursor: i64,
}

/// Options of a post beyond the object itself.
#[derive(Debug, Default, Clone)]
pub struct PostOptions {
    pub idempotency: Option<IdempotencyKey>,
    /// Where a bridged message came from (set by gateways).
    pub origin: Option<serde_json::Value>,
    /// The remote message this post bridges: stored once per group, ever.
    pub inbound: Option<InboundKey>,
}

/// Result of a post: the trx id, and whether an idempotency key matched an earlier post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub trx_id: TrxId,
    pub replayed: bool,
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
        metrics: Arc<Metrics>,
        feed_buffer: usize,
    ) -> Self {
        Self {
            store,
            identity,
            groups: Groups::default(),
            produce_tx,
            events: broadcast::channel(4096).0,
            hub: Hub::with_capacity(feed_buffer),
            metrics,
            waiters: Mutex::new(HashMap::new()),
            net: OnceLock::new(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The peer-to-peer network, once started.
    pub fn network(&self) -> Option<&dyn Network> {
        self.net.get().map(|n| n.as_ref())
    }

    pub(crate) fn set_network(&self, net: NetworkHandle) {
        let _ = self.net.set(net);
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
            0,
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
        let mut out: Vec<String> = self.net.get().map(|n| n.listen_addrs()).unwrap_or_default();
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
            record.last_cursor,
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
            net.group_removed(*id).await;
        }
        let stored = self.store.leave_group(*id, purge).await?;
        if !known && !stored {
            return Err(NodeError::UnknownGroup(id.to_hex()));
        }
        tracing::info!(group = %id, purge, "left group");
        Ok(())
    }

    /// Validates, signs, verifies and durably stores a POST; returns once it is acknowledged.
    pub async fn post(
        &self,
        id: &GroupId,
        object: serde_json::Value,
        opts: PostOptions,
    ) -> Result<Posted, NodeError> {
        let entry = self.group(id)?;
        let key = entry.key.as_ref().ok_or(NodeError::NoGroupKey(*id))?;
        let normalized = object::normalize(object)?;
        if let Some((kind, target)) = &normalized.reference {
            self.check_reference(&entry, *kind, target).await?;
        }
        let payload = object::PostPayload {
            object: normalized.object,
            origin: opts.origin,
        };
        let plaintext = serde_json::to_vec(&payload)
            .map_err(|e| NodeError::Invalid(format!("object does not serialise: {e}")))?;
        let now = now_ms();
        let trx = Trx::new_post(&self.identity, *id, key, &plaintext, now, random_bytes());
        let verified = verify_trx(trx, &entry.rules, now)?;
        let trx_id = verified.id();
        match self
            .store
            .submit_pending_from(&verified, now, opts.idempotency, opts.inbound)
            .await?
        {
            Submitted::Existing(existing) => Ok(Posted {
                trx_id: existing,
                replayed: true,
            }),
            Submitted::New => {
                self.metrics.trx_ingested.inc();
                self.queue_local(&entry, verified).await;
                Ok(Posted {
                    trx_id,
                    replayed: false,
                })
            }
        }
    }

    /// Accepts a trx signed elsewhere (another identity, via the API): verifies, stores as
    /// pending and queues it for the producer (or the network, if this node does not produce).
    pub async fn accept_trx(&self, trx: Trx) -> Result<TrxId, NodeError> {
        let entry = self.group(&trx.body.group_id)?;
        let now = now_ms();
        let verified = verify_trx(trx, &entry.rules, now)?;
        let trx_id = verified.id();
        self.accept_remote_trx(&entry, verified).await?;
        Ok(trx_id)
    }

    /// Queues a stored pending trx: for the producer, or — on a node that does not produce the
    /// group — for the network, which re-publishes it until it is included.
    async fn queue_local(&self, entry: &Arc<GroupEntry>, verified: Verified<Trx>) {
        let forward = (!self.produces(entry)).then(|| verified.clone());
        let trx_id = verified.id();
        entry.lock().pending.push_back(verified);
        self.schedule(entry);
        if let (Some(trx), Some(net)) = (forward, self.net.get()) {
            // Acknowledged once stored; the network layer re-publishes until it is included.
            if let Err(e) = net.publish_trx(&trx).await {
                tracing::debug!(trx = %trx_id, error = %e, "first publish failed; will retry");
            }
        }
    }

    /// Subscribes the network to a group's topic and dials the addresses it came with.
    async fn announce_group(&self, gid: GroupId, bootstrap: &[String]) {
        if let Some(net) = self.net.get() {
            net.group_added(gid, bootstrap).await;
        }
    }

    /// A verified trx signed elsewhere (a peer, another identity): stored as pending and queued
    /// exactly like a local post.
    pub(crate) async fn accept_remote_trx(
        &self,
        entry: &Arc<GroupEntry>,
        trx: Verified<Trx>,
    ) -> Result<(), NodeError> {
        let now = now_ms();
        crate::chain::verify::check_admission_age(&trx, now)?;
        self.store.submit_pending(&trx, now, None).await?;
        self.metrics.trx_ingested.inc();
        self.queue_local(entry, trx).await;
        Ok(())
    }

    /// Publishes a block this node produced to the group's peers.
    pub(crate) async fn announce_block(&self, block: &Verified<Block>) {
        if let Some(net) = self.net.get() {
            if let Err(e) = net.publish_block(block).await {
                tracing::debug!(height = block.body.height, error = %e, "block not published");
            }
        }
    }
    /// References must point at an existing item of the same group; updates only from the
    /// original sender, deletes from the original sender or the owner.
    async fn check_reference(
        &self,
        entry: &GroupEntry,
        kind: RefKind,
        target: &str,
    ) -> Result<(), NodeError> {
        let field = match kind {
            RefKind::Reply => "inReplyTo",
            _ => "object",
        };
        let unknown = || NodeError::UnknownReference {
            field,
            id: target.to_string(),
        };
        let tid = TrxId::from_hex(target).ok_or_else(unknown)?;
        let original = self
            .store
            .trx_in_group(entry.id(), tid)
            .await?
            .ok_or_else(unknown)?;
        let is_content = open_post(&original, entry.key.as_ref())
            .is_some_and(|p| object::is_content_type(&p.object));
        if !is_content {
            return Err(NodeError::Invalid(format!(
                "{field} {target} is not a Note or Image"
            )));
        }
        let me = self.identity.public();
        match kind {
            RefKind::Update if original.body.sender != me => Err(NodeError::Forbidden(format!(
                "only the original sender may update {target}"
            ))),
            RefKind::Delete if original.body.sender != me && entry.rules.owner != me => {
                Err(NodeError::Forbidden(format!(
                    "only the original sender or the group owner may delete {target}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Waits until `trx_id` is included, up to `timeout`.
    pub async fn wait_included(&self, trx_id: TrxId, timeout: Duration) -> Option<Inclusion> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(trx_id)
            .or_default()
            .push(tx);
        // It may have been included before we registered.
        if let Ok(Some(crate::store::TrxStatus::Included(r))) = self.store.trx_status(trx_id).await
        {
            self.waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&trx_id);
            return Some(Inclusion {
                height: r.height,
                cursor: r.seq,
            });
        }
        let result = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok);
        if result.is_none() {
            let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = w.get_mut(&trx_id) {
                list.retain(|s| !s.is_closed());
                if list.is_empty() {
                    w.remove(&trx_id);
                }
            }
        }
        result
    }

    /// Stores a verified block of a joined group: indexes its references, commits, advances the
    /// head, feeds live subscribers and wakes waiters. The one path for every stored block.
    pub async fn store_block(
        &self,
        entry: &GroupEntry,
        block: &Verified<Block>,
    ) -> Result<Arc<Committed>, NodeError> {
        let (payloads, refs) = Self::open_block(entry, block);
        let committed = Arc::new(self.store.commit_block_with_refs(block, refs).await?);
        self.apply_stored(entry, block, payloads, &committed);
        Ok(committed)
    }

    /// Stores consecutive verified blocks from the network in one transaction (all or none),
    /// then applies each exactly as [`Engine::store_block`] does and drops their trx from the
    /// pending queues. Blocks of groups no longer joined are skipped.
    pub async fn store_blocks(
        &self,
        blocks: &[Verified<Block>],
    ) -> Result<Vec<Arc<Committed>>, NodeError> {
        let mut opened = Vec::with_capacity(blocks.len());
        let mut batch = Vec::with_capacity(blocks.len());
        for block in blocks {
            let Ok(entry) = self.group(&block.body.group_id) else {
                continue;
            };
            let (payloads, refs) = Self::open_block(&entry, block);
            batch.push((block, refs));
            opened.push((entry, block, payloads));
        }
        let committed = self.store.commit_blocks(batch).await?;
        let mut out = Vec::with_capacity(committed.len());
        for ((entry, block, payloads), c) in opened.into_iter().zip(committed) {
            let c = Arc::new(c);
            {
                let mut st = entry.lock();
                if !st.pending.is_empty() {
                    let included: HashSet<TrxId> = c.trx.iter().map(|(id, _)| *id).collect();
                    st.pending.retain(|t| !included.contains(&t.id()));
                }
            }
            self.apply_stored(&entry, block, payloads, &c);
            out.push(c);
        }
        Ok(out)
    }

    /// Decrypts a block's posts (where this node has the key) and finds their references.
    fn open_block(
        entry: &GroupEntry,
        block: &Verified<Block>,
    ) -> (Vec<Option<object::PostPayload>>, crate::store::BlockRefs) {
        let payloads: Vec<_> = block
            .body
            .trxs
            .iter()
            .map(|t| open_post(t, entry.key.as_ref()))
            .collect();
        let refs = block
            .body
            .trxs
            .iter()
            .zip(&payloads)
            .filter_map(|(t, p)| {
                let (kind, target) = object::reference_of(&p.as_ref()?.object)?;
                Some((t.trx_id(), kind, TrxId::from_hex(&target)?))
            })
            .collect();
        (payloads, refs)
    }

    /// What follows a durable commit: head, cursor, metrics, live feed, waiters, events.
    fn apply_stored(
        &self,
        entry: &GroupEntry,
        block: &Verified<Block>,
        payloads: Vec<Option<object::PostPayload>>,
        committed: &Arc<Committed>,
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
            if let Some((_, seq)) = committed.trx.last() {
                st.last_cursor = st.last_cursor.max(*seq);
            }
        }
        self.metrics.trx_included.inc_by(committed.trx.len() as u64);
        if self.hub.has_subscribers(&entry.id()) {
            let items = block
                .body
                .trxs
                .iter()
                .zip(payloads)
                .zip(&committed.trx)
                .filter(|((t, _), _)| t.body.kind == crate::chain::TrxKind::Post)
                .map(|((t, p), (_, seq))| {
                    FeedItem::from_view(&ItemView::new(*seq, block.body.height, t, p))
                })
                .collect();
            self.hub.publish(Batch {
                group_id: entry.id(),
                prev: committed.prev_seq,
                items,
            });
        }
        self.resolve_waiters(committed);
        self.publish(ChainEvent::Included(committed.clone()));
    }

    fn resolve_waiters(&self, c: &Committed) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_empty() {
            return;
        }
        for (id, seq) in &c.trx {
            if let Some(list) = w.remove(id) {
                for tx in list {
                    let _ = tx.send(Inclusion {
                        height: c.height,
                        cursor: *seq,
                    });
                }
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
                Err(e) => {
                    tracing::warn!(trx = %id, error = %e, "rejecting invalid pending trx");
                    self.store
                        .reject_pending(id, entry.id(), e.to_string(), now)
                        .await?;
                }
            }
        }
        entry.lock().pending.extend(ok);
        Ok(())
    }
}
