//! A block-sync response from a peer: the request-response CBOR codec, then each carried block
//! through the canonical decode, then the batch verifier, cross-checked against verifying the
//! same blocks one by one.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use rumgate::chain::encoding::decode;
use rumgate::chain::verify::{verify_block, verify_blocks};
use rumgate::chain::{Block, Head};
use rumgate::p2p::protocol::{BlocksResponse, SYNC_PROTOCOL};
use rumgate_fuzz::{group, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let mut codec = rumgate_fuzz::sync_codec();
    let Ok(resp) = block_on(codec.read_response(&SYNC_PROTOCOL, &mut Cursor::new(data))) else {
        return;
    };
    let BlocksResponse::Blocks { blocks, .. } = resp else {
        return;
    };
    // The sync actor drops the whole batch at the first undecodable or out-of-sequence block.
    let mut decoded: Vec<Block> = Vec::with_capacity(blocks.len());
    for bytes in &blocks {
        let Ok(block) = decode::<Block>(bytes) else {
            return;
        };
        if let Some(prev) = decoded.last() {
            if block.body.height != prev.body.height.saturating_add(1) {
                return;
            }
        }
        decoded.push(block);
    }
    let Some(first) = decoded.first() else {
        return;
    };
    let g = group();
    let head = g.head_for(first.body.height);
    let n = decoded.len();
    let (verified, failure) = verify_blocks(decoded.clone(), &g.rules, &head, NOW_MS);
    let mut cur = head;
    let mut one_by_one = Vec::new();
    for block in decoded {
        match verify_block(block, &g.rules, &cur, NOW_MS) {
            Ok(v) => {
                cur = Head {
                    height: v.body.height,
                    hash: v.hash(),
                    timestamp: v.body.timestamp,
                };
                one_by_one.push(v.hash());
            }
            Err(_) => break,
        }
    }
    let batch: Vec<_> = verified.iter().map(|v| v.hash()).collect();
    assert_eq!(
        batch, one_by_one,
        "batch and single verification disagree ({failure:?})"
    );
    assert_eq!(failure.is_some(), batch.len() < n);
});
