//! A block-sync request from a peer, read by the request-response CBOR codec; what decodes must
//! re-encode to the same request, and the limits the node clamps it to stay in range.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use rumgate::p2p::protocol::{MAX_SYNC_BLOCKS, MAX_SYNC_BYTES, SYNC_PROTOCOL};

fuzz_target!(|data: &[u8]| {
    let mut codec = rumgate_fuzz::sync_codec();
    let Ok(req) = block_on(codec.read_request(&SYNC_PROTOCOL, &mut Cursor::new(data))) else {
        return;
    };
    // As the responder's `serve` bounds it.
    let blocks = req.max_blocks.clamp(1, MAX_SYNC_BLOCKS);
    let bytes = req.max_bytes.clamp(1, MAX_SYNC_BYTES);
    assert!((1..=MAX_SYNC_BLOCKS).contains(&blocks) && (1..=MAX_SYNC_BYTES).contains(&bytes));
    let mut out = Vec::new();
    if let Err(e) = block_on(codec.write_request(&SYNC_PROTOCOL, &mut out, req.clone())) {
        panic!("a decoded request does not encode: {e}");
    }
    match block_on(codec.read_request(&SYNC_PROTOCOL, &mut Cursor::new(&out))) {
        Ok(back) => assert_eq!(back, req),
        Err(e) => panic!("a re-encoded request does not decode: {e}"),
    }
});
