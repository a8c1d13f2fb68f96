//! The cheap-to-clone handle to the network: commands go to the event loop over a bounded
//! channel, answers come back on oneshot channels; a few read-mostly figures are shared.

use super::event_loop::Command;
use super::protocol::{encode_block, encode_trx, BlocksRequest, BlocksResponse};
use super::{P2pError, PeerList, Shared, SyncProgress};
use crate::chain::{Block, GroupId, Trx};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone)]
pub struct Client {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p2p::Client({})", self.shared.peer_id)
    }
}

impl Client {
    async fn send(&self, cmd: Command) -> Result<(), P2pError> {
        self.tx.send(cmd).await.map_err(|_| P2pError::Closed)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| P2pError::Closed)
    }

    /// This node's libp2p peer id (derived from the node key).
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// Addresses other nodes can dial, each ending in `/p2p/<peer id>` (what seeds carry).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.advertised()
    }

    /// Currently connected peers.
    pub fn peer_count(&self) -> usize {
        self.shared.peer_count.load(Ordering::Relaxed)
    }

    /// What sync knows about a group: the highest height seen on the network.
    pub fn sync_progress(&self, group: &GroupId) -> Option<SyncProgress> {
        self.shared.sync_progress(group)
    }

    /// Connected peers and banned peers.
    pub async fn peers(&self) -> Result<PeerList, P2pError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Publishes a trx on its group's topic (members forward their trx to producers this way).
    pub async fn publish_trx(&self, trx: &Trx) -> Result<(), P2pError> {
        let data = encode_trx(trx);
        self.ask(|reply| Command::Publish {
            group: trx.body.group_id,
            data,
            reply,
        })
        .await?
    }

    /// Publishes a block on its group's topic (producers announce new blocks this way).
    pub async fn publish_block(&self, block: &Block) -> Result<(), P2pError> {
        let data = encode_block(block);
        self.ask(|reply| Command::Publish {
            group: block.body.group_id,
            data,
            reply,
        })
        .await?
    }

    /// Publishes raw bytes on a group's topic without any check. Only for tests that play a
    /// misbehaving peer; a normal node never sends anything it has not built or verified.
    #[doc(hidden)]
    pub async fn publish_raw(&self, group: GroupId, data: Vec<u8>) -> Result<(), P2pError> {
        self.ask(|reply| Command::Publish { group, data, reply })
            .await?
    }

    /// Adds addresses to the address book and dials them (and keeps redialling them).
    pub async fn dial(&self, addrs: Vec<Multiaddr>) -> Result<(), P2pError> {
        self.send(Command::AddAddresses { addrs }).await
    }

    /// Takes the node off the network (disconnects every peer, refuses and stops making
    /// connections) or back on. For maintenance and for partition tests.
    pub async fn set_offline(&self, offline: bool) -> Result<(), P2pError> {
        self.ask(|reply| Command::SetOffline { offline, reply })
            .await
    }

    pub(crate) async fn group_added(
        &self,
        group: GroupId,
        bootstrap: Vec<Multiaddr>,
    ) -> Result<(), P2pError> {
        self.send(Command::Subscribe { group, bootstrap }).await
    }

    pub(crate) async fn group_removed(&self, group: GroupId) -> Result<(), P2pError> {
        self.send(Command::Unsubscribe { group }).await
    }

    pub(crate) async fn request_blocks(
        &self,
        peer: PeerId,
        request: BlocksRequest,
    ) -> Result<BlocksResponse, P2pError> {
        self.ask(|reply| Command::RequestBlocks {
            peer,
            request,
            reply,
        })
        .await?
    }

    pub(crate) async fn report(
        &self,
        msg_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    ) {
        let _ = self
            .send(Command::Report {
                msg_id,
                source,
                acceptance,
            })
            .await;
    }

    /// Records misbehaviour of a peer; `ban` also disconnects and blocks it for a while.
    pub(crate) async fn penalize(&self, peer: PeerId, reason: String, ban: bool) {
        let _ = self.send(Command::Penalize { peer, reason, ban }).await;
    }
}

#[async_trait::async_trait]
impl crate::engine::Network for Client {
    async fn publish_trx(&self, trx: &Trx) -> Result<(), String> {
        Client::publish_trx(self, trx)
            .await
            .map_err(|e| e.to_string())
    }

    async fn publish_block(&self, block: &Block) -> Result<(), String> {
        Client::publish_block(self, block)
            .await
            .map_err(|e| e.to_string())
    }

    async fn group_added(&self, group: GroupId, bootstrap: &[String]) {
        let addrs = bootstrap.iter().filter_map(|a| a.parse().ok()).collect();
        // Closed only while shutting down.
        let _ = Client::group_added(self, group, addrs).await;
    }

    async fn group_removed(&self, group: GroupId) {
        let _ = Client::group_removed(self, group).await;
    }

    async fn peers(&self) -> Result<PeerList, String> {
        Client::peers(self).await.map_err(|e| e.to_string())
    }

    fn peer_id(&self) -> String {
        Client::peer_id(self).to_string()
    }

    fn listen_addrs(&self) -> Vec<String> {
        Client::listen_addrs(self)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn peer_count(&self) -> usize {
        Client::peer_count(self)
    }

    fn sync_progress(&self, group: &GroupId) -> Option<SyncProgress> {
        Client::sync_progress(self, group)
    }
}
