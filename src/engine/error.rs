//! Errors of node operations, mapped to API status codes in `api::error`.

use crate::chain::object::ObjectError;
use crate::chain::seed::SeedError;
use crate::chain::{ChainError, GroupId, TrxId};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("unknown group {0}")]
    UnknownGroup(String),
    #[error("invalid object: {0}")]
    InvalidObject(#[from] ObjectError),
    #[error("invalid seed: {0}")]
    InvalidSeed(#[from] SeedError),
    #[error("rejected: {0}")]
    Rejected(#[from] ChainError),
    #[error("this node has no key for group {0} (relay-only): it cannot post or read there")]
    NoGroupKey(GroupId),
    #[error("duplicate trx {0}")]
    Duplicate(TrxId),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{field} refers to {id}, which is not an item of this group")]
    UnknownReference { field: &'static str, id: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("storage: {0}")]
    Store(StoreError),
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(id) => NodeError::Duplicate(id),
            StoreError::Closed => NodeError::ShuttingDown,
            StoreError::IdempotencyMismatch(m) => NodeError::IdempotencyMismatch(m),
            other => NodeError::Store(other),
        }
    }
}
