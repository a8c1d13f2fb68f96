//! A block from a peer (sync) or from disk: the canonical postcard decode with its strict
//! re-encode check, then every verification path (detached, single, batch), cross-checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate::chain::encoding::{decode, encode};
use rumgate::chain::Block;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = decode::<Block>(data) else {
        return;
    };
    assert_eq!(
        encode(&block),
        data,
        "decode accepted a non-canonical block"
    );
    rumgate_fuzz::check_block(&block, data.len());
});
