//! What the engine needs from the network below the API, as a narrow trait: publish what this
//! node built, follow groups, and report figures. `p2p::Client` implements it; the engine never
//! names the p2p layer, so imports run one way (p2p → engine).

use crate::chain::{Block, GroupId, Trx};
use serde::Serialize;

/// A network error, as text: the engine only logs it (anything lost is recovered by re-publish
/// and sync).
pub type NetworkError = String;

/// The network as the engine and the API see it.
#[async_trait::async_trait]
pub trait Network: Send + Sync + 'static {
    /// Publishes a trx on its group's topic (members forward their trx to producers this way).
    async fn publish_trx(&self, trx: &Trx) -> Result<(), NetworkError>;
    /// Publishes a block on its group's topic (producers announce new blocks this way).
    async fn publish_block(&self, block: &Block) -> Result<(), NetworkError>;
    /// Subscribes to a group's topic and dials the addresses it came with.
    async fn group_added(&self, group: GroupId, bootstrap: &[String]);
    /// Unsubscribes from a group's topic.
    async fn group_removed(&self, group: GroupId);
    /// Connected peers and banned peers.
    async fn peers(&self) -> Result<PeerList, NetworkError>;
    /// This node's libp2p peer id.
    fn peer_id(&self) -> String;
    /// Addresses other nodes can dial, each ending in `/p2p/<peer id>` (what seeds carry).
    fn listen_addrs(&self) -> Vec<String>;
    /// Currently connected peers.
    fn peer_count(&self) -> usize;
    /// What sync knows about a group: the highest height seen on the network.
    fn sync_progress(&self, group: &GroupId) -> Option<SyncProgress>;
}

/// What the network knows about a group's chain beyond this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// The highest height any peer has reported or gossiped.
    pub remote_height: u64,
    /// A sync exchange is in progress.
    pub active: bool,
}

/// One connected peer, as `GET /api/v1/peers` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub agent: Option<String>,
    /// Group ids (hex) whose topic the peer subscribes to.
    pub groups: Vec<String>,
    /// gossipsub peer score (negative after invalid messages).
    pub score: Option<f64>,
    pub penalties: u32,
}

/// A peer refused for a while after sending invalid data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BannedPeer {
    pub peer_id: String,
    pub reason: String,
    /// Seconds until the ban lifts.
    pub remaining_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PeerList {
    pub peers: Vec<PeerInfo>,
    pub banned: Vec<BannedPeer>,
}
