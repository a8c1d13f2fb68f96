//! The peer-to-peer network: a libp2p swarm (TCP + Noise + Yamux) carrying one gossipsub topic
//! per group, a block-sync request/response protocol, identify and ping.
//!
//! Shape (as in rust-libp2p's file-sharing example): [`Client`] is a cheap-to-clone handle that
//! sends commands over a bounded channel to the [`event_loop`], which alone owns the `Swarm`;
//! answers come back on oneshot channels. Verification, storage and sync live in [`chain`],
//! an actor fed by the event loop, so the swarm is never blocked on CPU or disk.

pub mod behaviour;
mod chain;
mod client;
pub(crate) mod event_loop;
pub mod protocol;

pub use crate::engine::network::{BannedPeer, PeerInfo, PeerList, SyncProgress};
pub use client::Client;

use crate::chain::GroupId;
use crate::config::P2pConfig;
use crate::engine::Engine;
use behaviour::Behaviour;
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long start-up waits for the listeners to report their bound addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are kept this long (gossip keeps active ones busy anyway).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("invalid multiaddr {addr:?}: {reason}")]
    InvalidAddr { addr: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("the network layer has stopped")]
    Closed,
}

/// Figures the event loop and the chain actor publish for synchronous readers (the API).
pub(crate) struct Shared {
    peer_id: PeerId,
    advertised: RwLock<Vec<Multiaddr>>,
    peer_count: AtomicUsize,
    sync: Mutex<HashMap<GroupId, SyncProgress>>,
}

impl Shared {
    fn advertised(&self) -> Vec<Multiaddr> {
        self.advertised
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_advertised(&self, addrs: Vec<Multiaddr>) {
        *self.advertised.write().unwrap_or_else(|p| p.into_inner()) = addrs;
    }

    fn sync_progress(&self, group: &GroupId) -> Option<SyncProgress> {
        self.sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .copied()
    }

    fn update_sync(&self, group: GroupId, f: impl FnOnce(&mut SyncProgress)) {
        let mut map = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(group).or_default());
    }

    fn forget_sync(&self, group: &GroupId) {
        self.sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }
}

/// Parses configured multiaddrs, naming the bad one.
pub fn parse_addrs(list: &[String]) -> Result<Vec<Multiaddr>, P2pError> {
    list.iter()
        .map(|s| {
            s.parse::<Multiaddr>().map_err(|e| P2pError::InvalidAddr {
                addr: s.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Appends `/p2p/<peer>` unless the address already names a peer.
pub fn with_peer_id(mut addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if !addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
        addr.push(Protocol::P2p(peer));
    }
    addr
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Seeds carry reachable addresses: the announced ones if configured, else the bound listen
/// addresses (an unspecified 0.0.0.0 listener is reported per interface); loopback only when
/// nothing else is bound (a node listening on 127.0.0.1, as tests do).
fn advertised_addrs(bound: &[Multiaddr], announce: &[Multiaddr], me: PeerId) -> Vec<Multiaddr> {
    let chosen: Vec<Multiaddr> = if !announce.is_empty() {
        announce.to_vec()
    } else {
        let public: Vec<_> = bound.iter().filter(|a| !is_loopback(a)).cloned().collect();
        if public.is_empty() {
            bound.to_vec()
        } else {
            public
        }
    };
    let mut out: Vec<Multiaddr> = Vec::new();
    for a in chosen {
        let a = with_peer_id(a, me);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Converts the node identity (ed25519) into the libp2p identity.
fn keypair(engine: &Engine) -> Result<identity::Keypair, P2pError> {
    let mut secret = *engine.identity.secret();
    identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| P2pError::Transport(format!("node key: {e}")))
}

/// Builds the swarm, binds every listen address and starts the event loop and the chain actor
/// as tasks of `tasks`, stopped by `cancel`. Returns once the listeners are bound.
pub async fn start(
    engine: Arc<Engine>,
    cfg: &P2pConfig,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> Result<Client, P2pError> {
    let listen = parse_addrs(&cfg.listen)?;
    let bootstrap = parse_addrs(&cfg.bootstrap)?;
    let announce = parse_addrs(&cfg.announce)?;
    let key = keypair(&engine)?;
    let peer_id = key.public().to_peer_id();
    let mut swarm: Swarm<Behaviour> = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_behaviour(|key| Behaviour::new(key).map_err(Into::into))
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    let mut waiting = HashMap::new();
    for addr in &listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        waiting.insert(id, addr.clone());
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !waiting.is_empty() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| P2pError::Listen {
                addr: waiting
                    .values()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: "no address was bound in time".into(),
            })?;
        match ev {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                waiting.remove(&listener_id);
                bound.push(address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    return Err(P2pError::Listen {
                        addr: addr.to_string(),
                        reason: match reason {
                            Ok(()) => "listener closed".into(),
                            Err(e) => e.to_string(),
                        },
                    });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    return Err(P2pError::Listen {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    });
                }
            }
            _ => {}
        }
    }

    let shared = Arc::new(Shared {
        peer_id,
        advertised: RwLock::new(Vec::new()),
        peer_count: AtomicUsize::new(0),
        sync: Mutex::new(HashMap::new()),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (chain_tx, chain_rx) = mpsc::channel(8192);
    let client = Client {
        tx: cmd_tx,
        shared: shared.clone(),
    };
    let mut event_loop = event_loop::EventLoop::new(
        swarm,
        cmd_rx,
        chain_tx,
        engine.clone(),
        shared,
        tasks.clone(),
        cancel.clone(),
        client.clone(),
        announce,
    );
    event_loop.set_bound(bound);
    event_loop.add_to_book(bootstrap);
    for entry in engine.groups() {
        let addrs = parse_addrs(&entry.bootstrap).unwrap_or_default();
        event_loop.subscribe(entry.id(), addrs);
    }
    tracing::info!(peer = %peer_id, addrs = ?client.listen_addrs(), "p2p listening");
    let chain = chain::ChainActor::new(engine, client.clone(), chain_rx, tasks.clone());
    tasks.spawn(event_loop.run());
    tasks.spawn(chain.run(cancel));
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_prefers_public_and_appends_peer_id() {
        let me = PeerId::random();
        let bound: Vec<Multiaddr> = vec![
            "/ip4/127.0.0.1/tcp/7002".parse().unwrap(),
            "/ip4/192.0.2.10/tcp/7002".parse().unwrap(),
        ];
        let adv = advertised_addrs(&bound, &[], me);
        assert_eq!(adv.len(), 1);
        assert_eq!(
            adv[0].to_string(),
            format!("/ip4/192.0.2.10/tcp/7002/p2p/{me}")
        );
        let only_lo = advertised_addrs(&bound[..1], &[], me);
        assert_eq!(
            only_lo[0].to_string(),
            format!("/ip4/127.0.0.1/tcp/7002/p2p/{me}")
        );
        let ann: Vec<Multiaddr> = vec!["/dns4/example.org/tcp/7002".parse().unwrap()];
        let adv = advertised_addrs(&bound, &ann, me);
        assert_eq!(
            adv[0].to_string(),
            format!("/dns4/example.org/tcp/7002/p2p/{me}")
        );
    }
}
