//! A gossipsub payload as the network's chain actor reads it: the topic's group, the
//! `GossipMessage` decode, the group check, then trx or block verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libp2p::gossipsub::TopicHash;
use rumgate::p2p::protocol::{encode_block, encode_trx, group_of_topic, topic, GossipMessage};

fuzz_target!(|data: &[u8]| {
    // Topic names come from peers too.
    let _ = group_of_topic(&TopicHash::from_raw(String::from_utf8_lossy(data)));
    let Ok(msg) = GossipMessage::decode(data) else {
        return;
    };
    let group = msg.group_id();
    assert_eq!(group_of_topic(&topic(&group).hash()), Some(group));
    // The variant index is one byte; the rest is the signed structure.
    match &msg {
        GossipMessage::Trx(trx) => {
            assert_eq!(encode_trx(trx), data, "non-canonical gossip trx accepted");
            rumgate_fuzz::check_trx(trx, data.len() - 1);
        }
        GossipMessage::Block(block) => {
            assert_eq!(
                encode_block(block),
                data,
                "non-canonical gossip block accepted"
            );
            rumgate_fuzz::check_block(block, data.len() - 1);
        }
    }
});
