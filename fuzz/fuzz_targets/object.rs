//! An ActivityStreams object as the API receives it (and as a decrypted payload carries it):
//! JSON parse, `normalize`, and the invariants the store relies on — normalising is idempotent
//! and the reference read back from a stored object is the one validated at post time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate::chain::object::{normalize, reference_of, PostPayload};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // A decrypted payload from a peer is parsed as a `PostPayload` and only read.
    if let Ok(payload) = serde_json::from_slice::<PostPayload>(data) {
        let _ = reference_of(&payload.object);
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(normalized) = normalize(value) else {
        return;
    };
    assert_eq!(
        reference_of(&normalized.object),
        normalized.reference,
        "the stored object's reference differs from the validated one"
    );
    match normalize(normalized.object.clone()) {
        Ok(again) => assert_eq!(again, normalized, "normalize is not idempotent"),
        Err(e) => panic!("a normalized object does not normalize again: {e}"),
    }
    let stored = PostPayload {
        object: normalized.object.clone(),
        origin: None,
    };
    let bytes = serde_json::to_vec(&stored).unwrap_or_default();
    match serde_json::from_slice::<PostPayload>(&bytes) {
        Ok(back) => assert_eq!(back, stored),
        Err(e) => panic!("a stored payload does not parse back: {e}"),
    }
});
