//! The group chain protocol: canonical encoding, genesis and seeds, trx, blocks and verification.
//!
//! Every signed structure is `{body, signature}`; its id is `SHA-256(domain_tag || postcard(body))`
//! and the signature is ed25519 over that 32-byte id. See docs/PROTOCOL.md for the exact bytes.

pub mod encoding;
pub mod object;
pub mod seed;
pub mod types;
pub mod verify;

pub use types::*;
pub use verify::{ChainError, Verified};

/// Protocol version carried in every body.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest encoded trx (body + signature) accepted anywhere.
pub const MAX_TRX_BYTES: usize = 512 * 1024;
/// Largest encoded block accepted anywhere.
pub const MAX_BLOCK_BYTES: usize = 1024 * 1024;
/// How far in the future a timestamp may be (clock skew allowance), in milliseconds.
pub const MAX_FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;

#[cfg(test)]
mod tests;
