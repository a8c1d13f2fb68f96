//! The event loop: the only owner of the `Swarm`. It turns client commands into swarm calls and
//! swarm events into answers, chain-actor inputs and sync-serving tasks; it never blocks on CPU
//! or disk work.

use super::behaviour::{topic_score_params, Behaviour, BehaviourEvent};
use super::chain::Input;
use super::protocol::{
    group_of_topic, topic, BlocksRequest, BlocksResponse, MAX_SYNC_BLOCKS, MAX_SYNC_BYTES,
};
use super::{
    advertised_addrs, is_loopback, BannedPeer, Client, P2pError, PeerInfo, PeerList, Shared,
};
use crate::chain::GroupId;
use crate::engine::Engine;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a peer that sent an invalid block stays blocked.
pub const BAN_DURATION: Duration = Duration::from_secs(600);
const REDIAL_MIN: Duration = Duration::from_millis(500);
const REDIAL_MAX: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(250);
/// The address book stays small: configured and seed addresses plus what peers tell us.
const MAX_BOOK: usize = 512;
/// Concurrent sync requests served; more get `Unavailable`.
const MAX_SERVING: usize = 8;

pub(crate) enum Command {
    Publish {
        group: GroupId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
    Report {
        msg_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Subscribe {
        group: GroupId,
        bootstrap: Vec<Multiaddr>,
    },
    Unsubscribe {
        group: GroupId,
    },
    AddAddresses {
        addrs: Vec<Multiaddr>,
    },
    RequestBlocks {
        peer: PeerId,
        request: BlocksRequest,
        reply: oneshot::Sender<Result<BlocksResponse, P2pError>>,
    },
    Respond {
        channel: ResponseChannel<BlocksResponse>,
        response: BlocksResponse,
    },
    Peers {
        reply: oneshot::Sender<PeerList>,
    },
    Penalize {
        peer: PeerId,
        reason: String,
        ban: bool,
    },
    SetOffline {
        offline: bool,
        reply: oneshot::Sender<()>,
    },
}

/// An address to keep connected to.
struct BookEntry {
    addr: Multiaddr,
    /// Known from the address or learnt on the first connection through it.
    peer: Option<PeerId>,
    next_dial: Instant,
    backoff: Duration,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    chain: mpsc::Sender<Input>,
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    client: Client,
    announce: Vec<Multiaddr>,
    bound: Vec<Multiaddr>,
    book: Vec<BookEntry>,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<BlocksResponse, P2pError>>>,
    connections: HashMap<PeerId, HashMap<ConnectionId, Multiaddr>>,
    agents: HashMap<PeerId, String>,
    penalties: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, (String, Instant)>,
    serving: Arc<Semaphore>,
    offline: bool,
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        chain: mpsc::Sender<Input>,
        engine: Arc<Engine>,
        shared: Arc<Shared>,
        tasks: TaskTracker,
        cancel: CancellationToken,
        client: Client,
        announce: Vec<Multiaddr>,
    ) -> Self {
        Self {
            swarm,
            commands,
            chain,
            engine,
            shared,
            tasks,
            cancel,
            client,
            announce,
            bound: Vec::new(),
            book: Vec::new(),
            requests: HashMap::new(),
            connections: HashMap::new(),
            agents: HashMap::new(),
            penalties: HashMap::new(),
            banned: HashMap::new(),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            offline: false,
        }
    }

    pub(super) fn set_bound(&mut self, bound: Vec<Multiaddr>) {
        self.bound = bound;
        self.refresh_advertised();
    }

    fn refresh_advertised(&self) {
        let me = *self.swarm.local_peer_id();
        self.shared
            .set_advertised(advertised_addrs(&self.bound, &self.announce, me));
    }

    fn is_self(&self, addr: &Multiaddr) -> bool {
        if peer_of(addr) == Some(*self.swarm.local_peer_id()) {
            return true;
        }
        let bare = without_peer(addr);
        self.bound.contains(&bare)
    }

    /// Adds addresses to the address book; they are dialled on the next tick.
    pub(super) fn add_to_book(&mut self, addrs: Vec<Multiaddr>) {
        let now = Instant::now();
        for addr in addrs {
            if self.is_self(&addr) || self.book.iter().any(|e| e.addr == addr) {
                continue;
            }
            if self.book.len() >= MAX_BOOK {
                break;
            }
            self.book.push(BookEntry {
                peer: peer_of(&addr),
                addr,
                next_dial: now,
                backoff: REDIAL_MIN,
            });
        }
    }

    pub(super) fn subscribe(&mut self, group: GroupId, bootstrap: Vec<Multiaddr>) {
        let t = topic(&group);
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        if let Err(e) = gs.subscribe(&t) {
            tracing::error!(group = %group, error = %e, "cannot subscribe to the group topic");
        }
        if let Err(e) = gs.set_topic_params(t.clone(), topic_score_params()) {
            tracing::warn!(group = %group, error = %e, "cannot set topic score parameters");
        }
        self.add_to_book(bootstrap);
        let hash = t.hash();
        let carriers: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(p, _)| *p)
            .collect();
        for peer in carriers {
            let _ = self.chain.try_send(Input::PeerHasGroup { peer, group });
        }
    }

    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        for (_, reply) in self.requests.drain() {
            let _ = reply.send(Err(P2pError::Closed));
        }
        tracing::debug!("p2p event loop stopped");
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.banned.remove(&p);
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
            tracing::info!(peer = %p, "ban lifted");
        }
        if self.offline {
            return;
        }
        let mut dials = Vec::new();
        for e in &mut self.book {
            if let Some(p) = e.peer {
                if self.swarm.is_connected(&p) || self.banned.contains_key(&p) {
                    continue;
                }
            }
            if e.next_dial <= now {
                e.next_dial = now + e.backoff;
                e.backoff = (e.backoff * 2).min(REDIAL_MAX);
                dials.push(e.addr.clone());
            }
        }
        for addr in dials {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(addr = %addr, error = %e, "dial failed");
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { group, data, reply } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic(&group), data);
                let _ = reply.send(match r {
                    Ok(_) => Ok(()),
                    // Already sent recently (a re-publish inside the duplicate window).
                    Err(PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(P2pError::Publish(e.to_string())),
                });
            }
            Command::Report {
                msg_id,
                source,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&msg_id, &source, acceptance);
            }
            Command::Subscribe { group, bootstrap } => self.subscribe(group, bootstrap),
            Command::Unsubscribe { group } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&topic(&group));
                let _ = self.chain.try_send(Input::GroupRemoved { group });
            }
            Command::AddAddresses { addrs } => self.add_to_book(addrs),
            Command::RequestBlocks {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                // The requester may have gone; nothing to do then.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_list());
            }
            Command::Penalize { peer, reason, ban } => self.penalize(peer, reason, ban),
            Command::SetOffline { offline, reply } => {
                self.offline = offline;
                if offline {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for p in peers {
                        let _ = self.swarm.disconnect_peer_id(p);
                    }
                    tracing::info!("p2p offline: disconnected from every peer");
                } else {
                    let now = Instant::now();
                    for e in &mut self.book {
                        e.next_dial = now;
                        e.backoff = REDIAL_MIN;
                    }
                    tracing::info!("p2p back online");
                    self.on_tick();
                }
                let _ = reply.send(());
            }
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: String, ban: bool) {
        let n = self.penalties.entry(peer).or_insert(0);
        *n += 1;
        tracing::warn!(peer = %peer, reason = %reason, penalties = *n, ban, "penalised peer");
        if ban {
            self.banned
                .insert(peer, (reason, Instant::now() + BAN_DURATION));
            // Blocking also closes its open connections.
            self.swarm.behaviour_mut().blocked.block_peer(peer);
        }
    }

    fn peer_list(&self) -> PeerList {
        let gs = &self.swarm.behaviour().gossipsub;
        let topics: HashMap<PeerId, Vec<String>> = gs
            .all_peers()
            .map(|(p, ts)| {
                (
                    *p,
                    ts.iter()
                        .filter_map(|t| group_of_topic(t).map(|g| g.to_hex()))
                        .collect(),
                )
            })
            .collect();
        let mut peers: Vec<PeerInfo> = self
            .swarm
            .connected_peers()
            .map(|p| PeerInfo {
                peer_id: p.to_string(),
                addrs: self
                    .connections
                    .get(p)
                    .map(|c| c.values().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                agent: self.agents.get(p).cloned(),
                groups: topics.get(p).cloned().unwrap_or_default(),
                score: gs.peer_score(p),
                penalties: self.penalties.get(p).copied().unwrap_or(0),
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        let now = Instant::now();
        let mut banned: Vec<BannedPeer> = self
            .banned
            .iter()
            .map(|(p, (reason, until))| BannedPeer {
                peer_id: p.to_string(),
                reason: reason.clone(),
                remaining_secs: until.saturating_duration_since(now).as_secs(),
            })
            .collect();
        banned.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        PeerList { peers, banned }
    }

    fn update_peer_count(&self) {
        self.shared
            .peer_count
            .store(self.swarm.connected_peers().count(), Ordering::Relaxed);
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.agents.insert(peer_id, info.agent_version);
                // Remember where the peer listens, to reconnect after it restarts.
                let remote_is_local = self
                    .connections
                    .get(&peer_id)
                    .is_some_and(|c| c.values().all(is_loopback));
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| remote_is_local || !is_loopback(a))
                    .map(|a| super::with_peer_id(a, peer_id))
                    .collect();
                self.add_to_book(addrs);
            }
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self.offline || self.banned.contains_key(&peer_id) {
                    let _ = self.swarm.close_connection(connection_id);
                    return;
                }
                let remote = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() {
                    let bare = without_peer(&remote);
                    for e in &mut self.book {
                        if e.addr == remote || without_peer(&e.addr) == bare {
                            e.peer.get_or_insert(peer_id);
                            if e.peer == Some(peer_id) {
                                e.backoff = REDIAL_MIN;
                            }
                        }
                    }
                }
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, remote);
                tracing::debug!(peer = %peer_id, "connected");
                self.update_peer_count();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(c) = self.connections.get_mut(&peer_id) {
                    c.remove(&connection_id);
                }
                if num_established == 0 {
                    self.connections.remove(&peer_id);
                    let _ = self.chain.try_send(Input::PeerGone { peer: peer_id });
                    tracing::debug!(peer = %peer_id, "disconnected");
                }
                self.update_peer_count();
            }
            SwarmEvent::NewListenAddr { address, .. } if !self.bound.contains(&address) => {
                self.bound.push(address);
                self.refresh_advertised();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.bound.retain(|a| *a != address);
                self.refresh_advertised();
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(group) = group_of_topic(&message.topic) else {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                };
                let input = Input::Gossip {
                    source: propagation_source,
                    msg_id: message_id.clone(),
                    group,
                    data: message.data,
                };
                if self.chain.try_send(input).is_err() {
                    // Overloaded: drop it (not forwarded); sync recovers what this loses.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(group) = group_of_topic(&topic) {
                    let _ = self.chain.try_send(Input::PeerHasGroup {
                        peer: peer_id,
                        group,
                    });
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(group) = group_of_topic(&topic) {
                    let _ = self.chain.try_send(Input::PeerLeftGroup {
                        peer: peer_id,
                        group,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, ev: request_response::Event<BlocksRequest, BlocksResponse>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let Ok(permit) = self.serving.clone().try_acquire_owned() else {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, BlocksResponse::Unavailable);
                        return;
                    };
                    let engine = self.engine.clone();
                    let client = self.client.clone();
                    let cancel = self.cancel.clone();
                    self.tasks.spawn(async move {
                        let _permit = permit;
                        let response = tokio::select! {
                            _ = cancel.cancelled() => return,
                            r = serve(&engine, request, peer) => r,
                        };
                        let _ = client.tx.send(Command::Respond { channel, response }).await;
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(peer = %peer, error = %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// Answers a sync request from the store: consecutive blocks from `from`, within the limits.
async fn serve(engine: &Engine, req: BlocksRequest, peer: PeerId) -> BlocksResponse {
    let Ok(entry) = engine.group(&req.group_id) else {
        return BlocksResponse::UnknownGroup;
    };
    let head_height = entry.head().height;
    if req.from == 0 || req.from > head_height {
        return BlocksResponse::Blocks {
            head_height,
            blocks: Vec::new(),
        };
    }
    let max_blocks = req.max_blocks.clamp(1, MAX_SYNC_BLOCKS) as usize;
    let max_bytes = req.max_bytes.clamp(1, MAX_SYNC_BYTES) as usize;
    match engine
        .store()
        .encoded_blocks(req.group_id, req.from, head_height, max_blocks, max_bytes)
        .await
    {
        Ok(blocks) => BlocksResponse::Blocks {
            head_height,
            blocks: blocks.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        },
        Err(e) => {
            tracing::warn!(peer = %peer, group = %req.group_id, error = %e, "cannot serve sync request");
            BlocksResponse::Unavailable
        }
    }
}
