//! The node's ed25519 identity key and the byte-level signature types used on the wire.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ed25519 public key as the 32 bytes that appear on the wire.
pub type PublicKey = [u8; 32];

/// Length of an ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// An ed25519 signature; encoded on the wire as 64 raw bytes (a fixed-size tuple, no length prefix).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(SIGNATURE_LEN)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SigVisitor;
        impl<'de> Visitor<'de> for SigVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; SIGNATURE_LEN];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(SIGNATURE_LEN, SigVisitor)
    }
}

/// The node's signing identity. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", hex::encode(self.public()))
    }
}

impl Identity {
    /// Creates a fresh identity from the OS random number generator.
    pub fn generate() -> Self {
        Self::from_secret(super::random_bytes())
    }

    /// Rebuilds an identity from its 32-byte secret seed.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// The 32-byte secret seed; callers must keep it out of logs.
    pub fn secret(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        self.signing.verifying_key().to_bytes()
    }

    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.signing.sign(msg).to_bytes())
    }
}

/// Verifies with `verify_strict` (rejects small-order keys and non-canonical signatures).
pub fn verify_strict(public: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verify_strict(msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_and_tamper_fails() {
        let id = Identity::generate();
        let sig = id.sign(b"hello");
        assert!(verify_strict(&id.public(), b"hello", &sig));
        assert!(!verify_strict(&id.public(), b"hellO", &sig));
        let mut bad = sig;
        bad.0[0] ^= 1;
        assert!(!verify_strict(&id.public(), b"hello", &bad));
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let id = Identity::from_secret([7u8; 32]);
        let shown = format!("{id:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
    }
}
