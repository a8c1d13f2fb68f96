//! Group seeds: the signed genesis (+ the key for public groups) + bootstrap addresses, as a URL.
//!
//! `rum://seed?v=1&g=<group id hex>&d=<base64url(postcard(Seed))>`; the bare `d` blob is accepted
//! too. Parsing verifies the owner's signature and that the genesis hashes to the stated group id.

use super::encoding::{decode, encode};
use super::types::{Genesis, GroupId, GroupKind};
use super::verify::{verify_genesis, ChainError, Verified};
use crate::crypto::{GroupKey, GROUP_KEY_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const SEED_SCHEME: &str = "rum://seed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub genesis: Genesis,
    /// Present for public groups only.
    pub group_key: Option<[u8; GROUP_KEY_LEN]>,
    /// libp2p multiaddrs of peers that carry the group (an address book, not authorities).
    pub bootstrap: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("not a seed: expected {SEED_SCHEME}?v=1&g=...&d=... or a base64url blob")]
    NotASeed,
    #[error("unsupported seed version {0:?}")]
    Version(String),
    #[error("seed data is not valid base64url")]
    Base64,
    #[error("seed data does not decode: {0}")]
    Decode(String),
    #[error("seed states group {stated} but its genesis hashes to {actual}")]
    GroupIdMismatch { stated: String, actual: GroupId },
    #[error("seed genesis is invalid: {0}")]
    Genesis(#[from] ChainError),
    #[error("a private group's seed must not carry the group key")]
    PrivateKeyInSeed,
    #[error("a public group's seed must carry the group key")]
    PublicKeyMissing,
}

/// A seed whose genesis verified; the key (if any) is ready to use.
#[derive(Debug)]
pub struct VerifiedSeed {
    pub genesis: Verified<Genesis>,
    pub group_key: Option<GroupKey>,
    pub bootstrap: Vec<String>,
}

impl Seed {
    pub fn to_url(&self) -> String {
        format!(
            "{SEED_SCHEME}?v=1&g={}&d={}",
            self.genesis.group_id(),
            B64.encode(encode(self))
        )
    }

    /// Parses and verifies a seed URL (or bare blob).
    pub fn parse_and_verify(input: &str) -> Result<VerifiedSeed, SeedError> {
        let input = input.trim();
        let (stated, blob) = match input.strip_prefix(SEED_SCHEME) {
            Some(rest) => {
                let query = rest.strip_prefix('?').ok_or(SeedError::NotASeed)?;
                let (mut v, mut g, mut d) = (None, None, None);
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("v", x)) => v = Some(x),
                        Some(("g", x)) => g = Some(x),
                        Some(("d", x)) => d = Some(x),
                        _ => {}
                    }
                }
                match v {
                    Some("1") => {}
                    Some(other) => return Err(SeedError::Version(other.into())),
                    None => return Err(SeedError::Version(String::new())),
                }
                (g, d.ok_or(SeedError::NotASeed)?)
            }
            None if !input.is_empty() && !input.contains(['?', '/', ':']) => (None, input),
            None => return Err(SeedError::NotASeed),
        };
        let bytes = B64.decode(blob).map_err(|_| SeedError::Base64)?;
        let seed: Seed = decode(&bytes).map_err(|e| SeedError::Decode(e.to_string()))?;
        let actual = seed.genesis.group_id();
        if let Some(stated) = stated {
            if !stated.eq_ignore_ascii_case(&actual.to_hex()) {
                return Err(SeedError::GroupIdMismatch {
                    stated: stated.into(),
                    actual,
                });
            }
        }
        let genesis = verify_genesis(seed.genesis)?;
        let group_key = match (genesis.body.kind, seed.group_key) {
            (GroupKind::Public, Some(k)) => Some(GroupKey::from_bytes(k)),
            (GroupKind::Public, None) => return Err(SeedError::PublicKeyMissing),
            (GroupKind::Private, Some(_)) => return Err(SeedError::PrivateKeyInSeed),
            (GroupKind::Private, None) => None,
        };
        Ok(VerifiedSeed {
            genesis,
            group_key,
            bootstrap: seed.bootstrap,
        })
    }
}
