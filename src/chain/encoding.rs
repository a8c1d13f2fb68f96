//! Canonical binary encoding (postcard) and the domain-separated hashes built on it.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Domain tags keep a signature over one kind of structure from being valid for another.
pub const TAG_GENESIS: &[u8] = b"rumgate/genesis/v1";
pub const TAG_TRX: &[u8] = b"rumgate/trx/v1";
pub const TAG_BLOCK: &[u8] = b"rumgate/block/v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the encoded value")]
    Trailing(usize),
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes a value canonically (postcard: fixed field order, LEB128 varints, raw fixed arrays).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard serialisation into a Vec cannot fail for our types (no maps with non-string keys,
    // no unsupported serde features), so an empty vec here would be a programming error.
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes exactly one value and rejects trailing bytes and non-canonical encodings
/// (re-encoding must give the same bytes), so every accepted byte string has one meaning.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// `SHA-256(tag || bytes)`.
pub fn tagged_hash(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(bytes);
    h.finalize().into()
}
