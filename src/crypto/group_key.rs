//! Symmetric group keys: XChaCha20-Poly1305 sealing of trx payloads.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

pub const GROUP_KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;

/// A group's symmetric key. `Debug` prints `***`; the bytes are wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct GroupKey([u8; GROUP_KEY_LEN]);

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(***)")
    }
}

/// Decryption failed: wrong key, wrong associated data or a tampered ciphertext.
#[derive(Debug, thiserror::Error)]
#[error("payload could not be decrypted with the group key")]
pub struct OpenError;

impl GroupKey {
    pub fn generate() -> Self {
        Self(super::random_bytes())
    }

    pub fn from_bytes(bytes: [u8; GROUP_KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; GROUP_KEY_LEN] {
        &self.0
    }

    /// Encrypts `plaintext`, binding it to `aad` (the group id on the wire).
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Encryption only fails for inputs larger than ~256 GiB, far above the trx limit.
            .unwrap_or_default()
    }

    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = GroupKey::generate();
        let nonce = [3u8; NONCE_LEN];
        let ct = key.seal(&nonce, b"group-a", b"secret text");
        assert_eq!(key.open(&nonce, b"group-a", &ct).unwrap(), b"secret text");
        assert!(key.open(&nonce, b"group-b", &ct).is_err());
        assert!(GroupKey::generate().open(&nonce, b"group-a", &ct).is_err());
    }
}
