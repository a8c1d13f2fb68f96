//! A seed URL (`rum://seed?v=1&g=…&d=…`) or bare blob as the API receives it: parse, decode,
//! verify the genesis; a seed that verifies must survive `to_url` → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumgate::chain::seed::Seed;

fuzz_target!(|data: &[u8]| {
    // Seeds arrive in JSON strings and CLI arguments: always UTF-8.
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(seed) = Seed::parse_and_verify(input) else {
        return;
    };
    let group = seed.genesis.group_id();
    let again = Seed {
        genesis: seed.genesis.into_inner(),
        group_key: seed.group_key.as_ref().map(|k| *k.as_bytes()),
        bootstrap: seed.bootstrap.clone(),
    };
    let url = again.to_url();
    match Seed::parse_and_verify(&url) {
        Ok(back) => {
            assert_eq!(back.genesis.group_id(), group);
            assert_eq!(back.bootstrap, seed.bootstrap);
            assert_eq!(
                back.group_key.map(|k| *k.as_bytes()),
                again.group_key,
                "the group key changed across to_url"
            );
        }
        Err(e) => panic!("a verified seed does not parse back from {url:?}: {e}"),
    }
});
