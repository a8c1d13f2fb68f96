//! Wire formats of the network: gossip topics and payloads, and the block-sync request/response.

use crate::chain::encoding::{decode, encode, DecodeError};
use crate::chain::{Block, GroupId, Trx, MAX_BLOCK_BYTES};
use libp2p::gossipsub::{IdentTopic, TopicHash};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// The block-sync request/response protocol (CBOR envelopes around canonical block bytes).
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/rumgate/sync/1");
/// The gossipsub protocol id prefix is libp2p's default (`/meshsub/1.x.0`); our identify string.
pub const IDENTIFY_PROTOCOL: &str = "/rumgate/id/1";

/// Room for the gossip variant tag and the gossipsub envelope around a block (topic, protobuf
/// framing, control messages piggy-backed on the same RPC).
pub const GOSSIP_OVERHEAD: usize = 64 * 1024;
/// Largest gossip frame accepted or sent: one maximal block plus overhead.
pub const MAX_GOSSIP_BYTES: usize = MAX_BLOCK_BYTES + GOSSIP_OVERHEAD;

/// Most blocks a sync response carries; a requester may ask for fewer.
pub const MAX_SYNC_BLOCKS: u32 = 2048;
/// Most block bytes a sync response carries (it always carries at least one block if any).
pub const MAX_SYNC_BYTES: u32 = 8 * 1024 * 1024;
/// What a requester asks for by default.
pub const DEFAULT_SYNC_BLOCKS: u32 = 1024;
pub const DEFAULT_SYNC_BYTES: u32 = 4 * 1024 * 1024;
/// Codec limits: a request is tiny; a response is at most the byte budget plus one block.
pub const MAX_SYNC_REQUEST_BYTES: u64 = 4 * 1024;
pub const MAX_SYNC_RESPONSE_BYTES: u64 = (MAX_SYNC_BYTES as u64) + (2 * MAX_BLOCK_BYTES as u64);

/// The gossip topic of a group: `rumgate/g/<group id hex>/v1`.
pub fn topic(group: &GroupId) -> IdentTopic {
    IdentTopic::new(format!("rumgate/g/{}/v1", group.to_hex()))
}

/// The group a topic belongs to, if it is one of ours.
pub fn group_of_topic(topic: &TopicHash) -> Option<GroupId> {
    let s = topic.as_str();
    let hex = s.strip_prefix("rumgate/g/")?.strip_suffix("/v1")?;
    GroupId::from_hex(hex)
}

/// A gossip payload: the canonical postcard encoding of this enum (variant index, then the
/// signed structure exactly as in docs/PROTOCOL.md). Variant indices are part of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage {
    /// A signed trx on its way to a producer (index 0).
    Trx(Trx),
    /// A signed block from a producer (index 1).
    Block(Block),
}

/// Borrowed twin of [`GossipMessage`] for encoding without cloning; serialises identically.
#[derive(Serialize)]
enum GossipRef<'a> {
    Trx(&'a Trx),
    Block(&'a Block),
}

impl GossipMessage {
    /// Decodes one message, rejecting trailing and non-canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }

    pub fn group_id(&self) -> GroupId {
        match self {
            Self::Trx(t) => t.body.group_id,
            Self::Block(b) => b.body.group_id,
        }
    }
}

pub fn encode_trx(trx: &Trx) -> Vec<u8> {
    encode(&GossipRef::Trx(trx))
}

pub fn encode_block(block: &Block) -> Vec<u8> {
    encode(&GossipRef::Block(block))
}

/// "Give me blocks of `group_id` from height `from` on", bounded by count and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksRequest {
    pub group_id: GroupId,
    /// First height wanted (≥ 1).
    pub from: u64,
    pub max_blocks: u32,
    pub max_bytes: u32,
}

/// The answer to a [`BlocksRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlocksResponse {
    /// Consecutive blocks from the requested height (possibly none), each the canonical postcard
    /// encoding of a signed `Block`, and the responder's head height.
    Blocks {
        head_height: u64,
        blocks: Vec<serde_bytes::ByteBuf>,
    },
    /// The responder does not carry this group.
    UnknownGroup,
    /// The responder is overloaded or failed to read; try again later or elsewhere.
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_round_trips_group_id() {
        let g = GroupId([0xab; 32]);
        let t = topic(&g);
        assert_eq!(
            t.hash().as_str(),
            format!("rumgate/g/{}/v1", "ab".repeat(32))
        );
        assert_eq!(group_of_topic(&t.hash()), Some(g));
        assert_eq!(group_of_topic(&IdentTopic::new("other").hash()), None);
    }

    #[test]
    fn borrowed_encoding_matches_owned() {
        use crate::crypto::Signature;
        let block = Block {
            body: crate::chain::BlockBody {
                version: 1,
                group_id: GroupId([1; 32]),
                height: 1,
                prev_hash: crate::chain::BlockHash([1; 32]),
                timestamp: 5,
                producer: [2; 32],
                trxs: vec![],
            },
            signature: Signature([3; 64]),
        };
        let bytes = encode_block(&block);
        assert_eq!(bytes, encode(&GossipMessage::Block(block.clone())));
        assert_eq!(bytes[0], 1);
        assert_eq!(
            GossipMessage::decode(&bytes).unwrap(),
            GossipMessage::Block(block)
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(GossipMessage::decode(&trailing).is_err());
    }
}
