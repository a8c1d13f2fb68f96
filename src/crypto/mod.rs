//! Cryptographic primitives: node identity, the on-disk keystore and group payload keys.

mod group_key;
mod identity;
pub mod keystore;

pub use group_key::{GroupKey, OpenError, GROUP_KEY_LEN, NONCE_LEN};
pub use identity::{verify_strict, Identity, PublicKey, Signature, SIGNATURE_LEN};

/// Fills a fixed-size array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}
