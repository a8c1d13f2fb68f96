//! The chain actor: validates gossip, applies blocks from peers in order, runs block sync and
//! re-publishes this node's pending trx until they are included.
//!
//! One task owns the per-group sync state. Blocks are verified (on all cores) against the
//! *verified* head and queued; one store transaction at a time commits everything queued, so
//! under load many small blocks share one fsync, as the producer's trx do.

use super::protocol::{BlocksRequest, BlocksResponse, GossipMessage};
use super::{Client, P2pError};
use crate::chain::encoding::decode;
use crate::chain::verify::{check_block_detached, verify_blocks, verify_trx};
use crate::chain::{Block, ChainError, GroupId, Head, TrxId, Verified};
use crate::engine::error::NodeError;
use crate::engine::{Engine, GroupEntry};
use crate::store::Committed;
use crate::util::now_ms;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a group's head is compared with a peer's even without a detected gap (a dropped
/// last block leaves no gap to see).
const POLL_INTERVAL: Duration = Duration::from_secs(3);
/// First re-publish of a pending trx after this long, then doubling up to the cap.
const REPUBLISH_FIRST: Duration = Duration::from_secs(2);
const REPUBLISH_MAX: Duration = Duration::from_secs(30);
/// A trx not included this long after its timestamp is given up and marked rejected.
pub const TRX_EXPIRY: Duration = Duration::from_secs(3600);
/// Blocks beyond a gap kept while sync fills it.
const MAX_AHEAD: usize = 1024;
/// Blocks per commit transaction at most.
const MAX_COMMIT_BLOCKS: usize = 4096;
/// Trx count above which block verification moves to the blocking pool.
const INLINE_VERIFY_MAX_TRX: usize = 32;
const TICK: Duration = Duration::from_millis(500);

pub(crate) enum Input {
    Gossip {
        source: PeerId,
        msg_id: MessageId,
        group: GroupId,
        data: Vec<u8>,
    },
    PeerHasGroup {
        peer: PeerId,
        group: GroupId,
    },
    PeerLeftGroup {
        peer: PeerId,
        group: GroupId,
    },
    PeerGone {
        peer: PeerId,
    },
    GroupRemoved {
        group: GroupId,
    },
}

struct SyncDone {
    group: GroupId,
    peer: PeerId,
    from: u64,
    result: Result<BlocksResponse, P2pError>,
}

struct GroupSync {
    /// Head including blocks verified but not yet committed.
    verified: Head,
    /// Blocks received beyond a gap, signature-checked, waiting for their predecessors.
    ahead: BTreeMap<u64, Block>,
    /// Connected peers subscribed to the group's topic.
    carriers: HashSet<PeerId>,
    remote_height: u64,
    /// The peer a sync request is outstanding with.
    requesting: Option<PeerId>,
    /// The peer that served the last batch (kept while it keeps answering).
    preferred: Option<PeerId>,
    next_poll: Instant,
}

struct Retry {
    attempts: u32,
    next: Instant,
}

type CommitJob = JoinHandle<(Vec<Verified<Block>>, Result<Vec<Arc<Committed>>, NodeError>)>;

pub(crate) struct ChainActor {
    engine: Arc<Engine>,
    client: Client,
    rx: mpsc::Receiver<Input>,
    tasks: TaskTracker,
    groups: HashMap<GroupId, GroupSync>,
    queue: Vec<Verified<Block>>,
    retries: HashMap<TrxId, Retry>,
    done_tx: mpsc::Sender<SyncDone>,
    done_rx: mpsc::Receiver<SyncDone>,
}

/// Whether a rejection is the sender's fault (penalise) or possibly ours (clock skew: ignore).
fn is_clock_relative(e: &ChainError) -> bool {
    matches!(e, ChainError::Timestamp { .. })
}

impl ChainActor {
    pub(super) fn new(
        engine: Arc<Engine>,
        client: Client,
        rx: mpsc::Receiver<Input>,
        tasks: TaskTracker,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel(256);
        Self {
            engine,
            client,
            rx,
            tasks,
            groups: HashMap::new(),
            queue: Vec::new(),
            retries: HashMap::new(),
            done_tx,
            done_rx,
        }
    }

    pub(super) async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inflight: Option<CommitJob> = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                input = self.rx.recv() => match input {
                    Some(i) => self.on_input(i).await,
                    None => break,
                },
                Some(done) = self.done_rx.recv() => self.on_sync_done(done).await,
                res = async {
                    match inflight.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => {
                    inflight = None;
                    match res {
                        Ok((blocks, result)) => self.on_committed(blocks, result),
                        Err(e) => tracing::error!(error = %e, "block commit task failed"),
                    }
                }
                _ = tick.tick() => self.on_tick().await,
            }
            if inflight.is_none() && !self.queue.is_empty() {
                let n = self.queue.len().min(MAX_COMMIT_BLOCKS);
                let batch: Vec<Verified<Block>> = self.queue.drain(..n).collect();
                let engine = self.engine.clone();
                inflight = Some(self.tasks.spawn(async move {
                    let r = engine.store_blocks(&batch).await;
                    (batch, r)
                }));
            }
        }
        tracing::debug!("p2p chain actor stopped");
    }

    /// The sync state of a group this node follows (not one it produces).
    fn state(&mut self, entry: &GroupEntry) -> &mut GroupSync {
        self.groups.entry(entry.id()).or_insert_with(|| GroupSync {
            verified: entry.head(),
            ahead: BTreeMap::new(),
            carriers: HashSet::new(),
            remote_height: 0,
            requesting: None,
            preferred: None,
            next_poll: Instant::now(),
        })
    }

    fn followed(&self, group: &GroupId) -> Option<Arc<GroupEntry>> {
        let entry = self.engine.group(group).ok()?;
        (!self.engine.produces(&entry)).then_some(entry)
    }

    fn publish_progress(&self, group: GroupId) {
        if let Some(gs) = self.groups.get(&group) {
            let (remote, active) = (gs.remote_height, gs.requesting.is_some());
            self.client.shared.update_sync(group, |p| {
                p.remote_height = remote;
                p.active = active;
            });
        }
    }

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Gossip {
                source,
                msg_id,
                group,
                data,
            } => {
                let verdict = self.on_gossip(source, &msg_id, group, data).await;
                if let Some(acceptance) = verdict {
                    self.client.report(msg_id, source, acceptance).await;
                }
            }
            Input::PeerHasGroup { peer, group } => {
                if let Some(entry) = self.followed(&group) {
                    self.state(&entry).carriers.insert(peer);
                    self.start_sync(group, Some(peer));
                }
                // A (re)connected carrier: retry this node's pending trx of the group now.
                if let Ok(entry) = self.engine.group(&group) {
                    let ids: Vec<TrxId> = entry.lock().pending.iter().map(|t| t.id()).collect();
                    let now = Instant::now();
                    for id in ids {
                        if let Some(r) = self.retries.get_mut(&id) {
                            r.next = now;
                        }
                    }
                }
            }
            Input::PeerLeftGroup { peer, group } => {
                if let Some(gs) = self.groups.get_mut(&group) {
                    gs.carriers.remove(&peer);
                }
            }
            Input::PeerGone { peer } => {
                for gs in self.groups.values_mut() {
                    gs.carriers.remove(&peer);
                    if gs.preferred == Some(peer) {
                        gs.preferred = None;
                    }
                }
            }
            Input::GroupRemoved { group } => {
                self.groups.remove(&group);
                self.queue.retain(|b| b.body.group_id != group);
                self.client.shared.forget_sync(&group);
            }
        }
    }

    /// Validates one gossip message; returns the verdict to report, or `None` when a spawned
    /// task reports it later.
    async fn on_gossip(
        &mut self,
        source: PeerId,
        msg_id: &MessageId,
        group: GroupId,
        data: Vec<u8>,
    ) -> Option<MessageAcceptance> {
        let msg = match GossipMessage::decode(&data) {
            Ok(m) => m,
            Err(e) => {
                self.reject(source, group, format!("undecodable gossip: {e}"), true)
                    .await;
                return Some(MessageAcceptance::Reject);
            }
        };
        if msg.group_id() != group {
            self.reject(
                source,
                group,
                "message for another group on this topic".into(),
                true,
            )
            .await;
            return Some(MessageAcceptance::Reject);
        }
        let Ok(entry) = self.engine.group(&group) else {
            return Some(MessageAcceptance::Ignore);
        };
        match msg {
            GossipMessage::Trx(trx) => {
                let id = trx.trx_id();
                let verified = match verify_trx(trx, &entry.rules, now_ms()) {
                    Ok(v) => v,
                    Err(e) if is_clock_relative(&e) => return Some(MessageAcceptance::Ignore),
                    Err(e) => {
                        self.reject(source, group, format!("invalid trx {id}: {e}"), false)
                            .await;
                        return Some(MessageAcceptance::Reject);
                    }
                };
                if !self.engine.produces(&entry) {
                    // Valid: forward it towards the producers.
                    return Some(MessageAcceptance::Accept);
                }
                let engine = self.engine.clone();
                let client = self.client.clone();
                let msg_id = msg_id.clone();
                self.tasks.spawn(async move {
                    let acceptance = match engine.accept_remote_trx(&entry, verified).await {
                        Ok(()) => MessageAcceptance::Accept,
                        Err(NodeError::Duplicate(_)) => MessageAcceptance::Ignore,
                        Err(e) => {
                            tracing::debug!(trx = %id, error = %e, "could not queue a gossiped trx");
                            MessageAcceptance::Ignore
                        }
                    };
                    client.report(msg_id, source, acceptance).await;
                });
                None
            }
            GossipMessage::Block(block) => Some(self.on_gossip_block(source, &entry, block).await),
        }
    }

    async fn on_gossip_block(
        &mut self,
        source: PeerId,
        entry: &Arc<GroupEntry>,
        block: Block,
    ) -> MessageAcceptance {
        if self.engine.produces(entry) {
            // Our own block coming back, or a block we did not make for a group we produce.
            return MessageAcceptance::Ignore;
        }
        let group = entry.id();
        let height = block.body.height;
        let gs = self.state(entry);
        if height <= gs.verified.height {
            return MessageAcceptance::Ignore;
        }
        if height > gs.verified.height + 1 {
            if let Err(e) = check_block_detached(&block, &entry.rules) {
                self.reject(source, group, format!("invalid block {height}: {e}"), true)
                    .await;
                return MessageAcceptance::Reject;
            }
            gs.remote_height = gs.remote_height.max(height);
            if gs.ahead.len() < MAX_AHEAD {
                gs.ahead.insert(height, block);
            }
            gs.carriers.insert(source);
            tracing::debug!(group = %group, height, have = gs.verified.height, "gap: syncing");
            self.start_sync(group, Some(source));
            self.publish_progress(group);
            return MessageAcceptance::Accept;
        }
        match self.verify_and_queue(entry, vec![block]).await {
            None => {
                self.drain_ahead(entry).await;
                self.publish_progress(group);
                MessageAcceptance::Accept
            }
            Some((_, e)) if is_clock_relative(&e) => MessageAcceptance::Ignore,
            Some((h, e)) => {
                self.reject(source, group, format!("invalid block {h}: {e}"), true)
                    .await;
                MessageAcceptance::Reject
            }
        }
    }

    /// Verifies consecutive blocks on top of the verified head and queues the valid prefix for
    /// commit. Returns the first failure.
    async fn verify_and_queue(
        &mut self,
        entry: &GroupEntry,
        blocks: Vec<Block>,
    ) -> Option<(u64, ChainError)> {
        let head = self.state(entry).verified;
        let rules = entry.rules.clone();
        let now = now_ms();
        let trx: usize = blocks.iter().map(|b| b.body.trxs.len()).sum();
        let (ok, err) = if trx <= INLINE_VERIFY_MAX_TRX {
            verify_blocks(blocks, &rules, &head, now)
        } else {
            match tokio::task::spawn_blocking(move || verify_blocks(blocks, &rules, &head, now))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "block verification task failed");
                    return None;
                }
            }
        };
        if let Some(last) = ok.last() {
            let gs = self.state(entry);
            gs.verified = Head {
                height: last.body.height,
                hash: last.hash(),
                timestamp: last.body.timestamp,
            };
            gs.remote_height = gs.remote_height.max(gs.verified.height);
            self.queue.extend(ok);
        }
        err
    }

    /// Applies buffered blocks that now follow the verified head.
    async fn drain_ahead(&mut self, entry: &GroupEntry) {
        loop {
            let gs = self.state(entry);
            let next = gs.verified.height + 1;
            gs.ahead = gs.ahead.split_off(&next);
            let Some(block) = gs.ahead.remove(&next) else {
                return;
            };
            if let Some((h, e)) = self.verify_and_queue(entry, vec![block]).await {
                // It passed the detached check, so only the link can be wrong: a fork we cannot
                // resolve from gossip. Drop the buffer; sync will fetch the real chain.
                tracing::warn!(group = %entry.id(), height = h, error = %e, "buffered block does not extend the chain");
                self.state(entry).ahead.clear();
                return;
            }
        }
    }

    async fn reject(&self, peer: PeerId, group: GroupId, reason: String, ban: bool) {
        tracing::warn!(peer = %peer, group = %group, reason = %reason, "rejected data from peer");
        self.client.penalize(peer, reason, ban).await;
    }

    /// Sends a sync request for the group unless one is outstanding.
    fn start_sync(&mut self, group: GroupId, hint: Option<PeerId>) {
        self.request_from(group, hint, None);
    }

    /// Sends a sync request from `from` (default: just above the verified head).
    fn request_from(&mut self, group: GroupId, hint: Option<PeerId>, from: Option<u64>) {
        let Some(gs) = self.groups.get_mut(&group) else {
            return;
        };
        if gs.requesting.is_some() {
            return;
        }
        let peer = hint
            .filter(|p| gs.carriers.contains(p))
            .or(gs.preferred.filter(|p| gs.carriers.contains(p)))
            .or_else(|| gs.carriers.iter().next().copied());
        let Some(peer) = peer else {
            return;
        };
        gs.requesting = Some(peer);
        gs.next_poll = Instant::now() + POLL_INTERVAL;
        let from = from.unwrap_or(gs.verified.height + 1);
        let request = BlocksRequest {
            group_id: group,
            from,
            max_blocks: super::protocol::DEFAULT_SYNC_BLOCKS,
            max_bytes: super::protocol::DEFAULT_SYNC_BYTES,
        };
        let client = self.client.clone();
        let done = self.done_tx.clone();
        self.tasks.spawn(async move {
            let result = client.request_blocks(peer, request).await;
            let _ = done
                .send(SyncDone {
                    group,
                    peer,
                    from,
                    result,
                })
                .await;
        });
        self.publish_progress(group);
    }

    async fn on_sync_done(&mut self, done: SyncDone) {
        let SyncDone {
            group,
            peer,
            from,
            result,
        } = done;
        let Some(entry) = self.followed(&group) else {
            return;
        };
        let gs = self.state(&entry);
        gs.requesting = None;
        let (head_height, raw) = match result {
            Ok(BlocksResponse::Blocks {
                head_height,
                blocks,
            }) => (head_height, blocks),
            Ok(BlocksResponse::UnknownGroup) => {
                gs.carriers.remove(&peer);
                self.publish_progress(group);
                return;
            }
            Ok(BlocksResponse::Unavailable) | Err(_) => {
                if let Err(e) = &result {
                    tracing::debug!(peer = %peer, group = %group, error = %e, "sync request failed");
                }
                if gs.preferred == Some(peer) {
                    gs.preferred = None;
                }
                // Try again (maybe elsewhere) on a later tick.
                gs.next_poll = Instant::now() + TICK;
                self.publish_progress(group);
                return;
            }
        };
        gs.remote_height = gs.remote_height.max(head_height);
        gs.preferred = Some(peer);
        if from != gs.verified.height + 1 {
            // The head moved meanwhile (gossip, or an earlier batch failed): ask again.
            self.start_sync(group, Some(peer));
            return;
        }
        let mut blocks = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            match decode::<Block>(bytes) {
                Ok(b) if b.body.height == from + i as u64 => blocks.push(b),
                Ok(b) => {
                    let reason = format!(
                        "sync: expected block {}, got {}",
                        from + i as u64,
                        b.body.height
                    );
                    self.reject(peer, group, reason, true).await;
                    self.drop_carrier(group, peer);
                    return;
                }
                Err(e) => {
                    self.reject(peer, group, format!("sync: undecodable block: {e}"), true)
                        .await;
                    self.drop_carrier(group, peer);
                    return;
                }
            }
        }
        let got = blocks.len() as u64;
        // Pipelining: ask for the next batch before verifying this one.
        if got > 0 && from + got <= head_height {
            self.request_from(group, Some(peer), Some(from + got));
        }
        if got > 0 {
            if let Some((h, e)) = self.verify_and_queue(&entry, blocks).await {
                if is_clock_relative(&e) {
                    tracing::info!(peer = %peer, group = %group, height = h, error = %e, "sync paused: block timestamp ahead of our clock");
                } else {
                    self.reject(peer, group, format!("sync: invalid block {h}: {e}"), true)
                        .await;
                    self.drop_carrier(group, peer);
                }
            }
            self.drain_ahead(&entry).await;
        }
        let gs = self.state(&entry);
        if gs.requesting.is_none() && gs.verified.height < gs.remote_height {
            self.start_sync(group, None);
        }
        self.publish_progress(group);
    }

    fn drop_carrier(&mut self, group: GroupId, peer: PeerId) {
        if let Some(gs) = self.groups.get_mut(&group) {
            gs.carriers.remove(&peer);
            if gs.preferred == Some(peer) {
                gs.preferred = None;
            }
        }
    }

    fn on_committed(
        &mut self,
        blocks: Vec<Verified<Block>>,
        result: Result<Vec<Arc<Committed>>, NodeError>,
    ) {
        match result {
            // The engine applied them (head, feed, waiters, pending) as part of storing.
            Ok(_) => {}
            Err(e) => {
                let groups: HashSet<GroupId> = blocks.iter().map(|b| b.body.group_id).collect();
                tracing::warn!(error = %e, groups = groups.len(), "storing synced blocks failed; resyncing");
                for g in groups {
                    self.queue.retain(|b| b.body.group_id != g);
                    if let Ok(entry) = self.engine.group(&g) {
                        let gs = self.state(&entry);
                        gs.verified = entry.head();
                        gs.ahead.clear();
                        gs.next_poll = Instant::now();
                    }
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let entries = self.engine.groups();
        let mut live: HashSet<TrxId> = HashSet::new();
        for entry in &entries {
            let group = entry.id();
            if !self.engine.produces(entry) {
                let gs = self.state(entry);
                if gs.requesting.is_none() && gs.next_poll <= now && !gs.carriers.is_empty() {
                    self.start_sync(group, None);
                }
                self.publish_progress(group);
                self.republish(entry, now, &mut live).await;
            }
        }
        self.retries.retain(|id, _| live.contains(id));
    }

    /// Re-publishes this node's pending trx of a group it does not produce, with back-off, and
    /// gives up on those older than [`TRX_EXPIRY`].
    async fn republish(&mut self, entry: &GroupEntry, now: Instant, live: &mut HashSet<TrxId>) {
        let pending: Vec<Verified<crate::chain::Trx>> =
            entry.lock().pending.iter().cloned().collect();
        let wall = now_ms();
        let mut expired = Vec::new();
        for trx in pending {
            let id = trx.id();
            if wall.saturating_sub(trx.body.timestamp) > TRX_EXPIRY.as_millis() as u64 {
                expired.push(id);
                continue;
            }
            live.insert(id);
            let r = self.retries.entry(id).or_insert(Retry {
                attempts: 0,
                next: now + REPUBLISH_FIRST,
            });
            if r.next > now {
                continue;
            }
            r.attempts += 1;
            let backoff = REPUBLISH_FIRST
                .saturating_mul(1 << r.attempts.min(5))
                .min(REPUBLISH_MAX);
            r.next = now + backoff;
            if let Err(e) = self.client.publish_trx(&trx).await {
                tracing::debug!(trx = %id, error = %e, "re-publish failed; will retry");
            }
        }
        for id in expired {
            let reason = format!(
                "expired: not included within {} s of its timestamp",
                TRX_EXPIRY.as_secs()
            );
            match self.engine.store().expire_pending(id, reason, wall).await {
                Ok(_) => {
                    entry.lock().pending.retain(|t| t.id() != id);
                    tracing::warn!(group = %entry.id(), trx = %id, "pending trx expired without inclusion");
                }
                Err(e) => tracing::warn!(trx = %id, error = %e, "cannot expire pending trx"),
            }
        }
    }
}
