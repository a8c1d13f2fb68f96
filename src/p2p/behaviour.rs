//! The composed libp2p behaviour: gossipsub, block sync, identify, ping and a block list.

use super::protocol::{
    BlocksRequest, BlocksResponse, IDENTIFY_PROTOCOL, MAX_GOSSIP_BYTES, MAX_SYNC_REQUEST_BYTES,
    MAX_SYNC_RESPONSE_BYTES, SYNC_PROTOCOL,
};
use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, identify, identity, ping, request_response};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub type SyncBehaviour = request_response::cbor::Behaviour<BlocksRequest, BlocksResponse>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub sync: SyncBehaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

/// Message id = SHA-256 of the payload: the same trx or block has the same id whoever sends it,
/// so gossipsub's duplicate cache drops copies arriving over several paths.
pub fn message_id(msg: &gossipsub::Message) -> MessageId {
    MessageId::from(Sha256::digest(&msg.data).to_vec())
}

/// The gossipsub configuration every rumgate node uses (also used by tests that speak to nodes
/// with a raw swarm).
pub fn gossipsub_config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        // Payloads are signed trx and blocks: no per-message libp2p signature, author or seqno.
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(message_id)
        // Nothing is forwarded before the application has verified it.
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_millis(700))
        // Re-published trx (see p2p::chain) must get through again after this long.
        .duplicate_cache_time(Duration::from_secs(20))
        .flood_publish(true)
        .connection_handler_queue_len(20_000)
        .build()
        .map_err(|e| e.to_string())
}

/// Peer scoring: only invalid messages count (the rest of gossipsub's scoring assumes steady
/// traffic, which a personal group does not have). One invalid message takes a peer below
/// the gossip threshold; the event loop also bans peers that send invalid blocks.
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: 0.99,
        ..Default::default()
    }
}

fn peer_score() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let params = gossipsub::PeerScoreParams {
        // Every node of a test net or a home network may share one IP.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    (params, gossipsub::PeerScoreThresholds::default())
}

impl Behaviour {
    pub fn new(key: &identity::Keypair) -> Result<Self, String> {
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config()?)?;
        let (params, thresholds) = peer_score();
        gossipsub.with_peer_score(params, thresholds)?;
        let codec = request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(MAX_SYNC_REQUEST_BYTES)
            .set_response_size_maximum(MAX_SYNC_RESPONSE_BYTES);
        let sync = request_response::Behaviour::with_codec(
            codec,
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("rumgate/{}", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Self {
            gossipsub,
            sync,
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            blocked: allow_block_list::Behaviour::default(),
        })
    }
}
