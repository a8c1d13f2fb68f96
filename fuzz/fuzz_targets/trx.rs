//! A trx from a peer: the canonical postcard decode with its strict re-encode check, trx
//! verification against the fixed group, and for posts the payload the node then decrypts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate::chain::encoding::{decode, encode};
use rumgate::chain::Trx;

fuzz_target!(|data: &[u8]| {
    let Ok(trx) = decode::<Trx>(data) else {
        return;
    };
    assert_eq!(encode(&trx), data, "decode accepted a non-canonical trx");
    rumgate_fuzz::check_trx(&trx, data.len());
});
