//! Errors a gateway reports to the node, classified by what the node should do next.

use std::time::Duration;

/// What went wrong talking to a messenger. The variant decides the node's reaction: wait and retry
/// (`RateLimited`, `Transient`), stop the link (`Unauthorized`), or give up on this one item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The remote asked us to slow down; retry the same request after `retry_after`.
    #[error("rate limited, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// A 5xx, a timeout or a network error: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The remote refused for good (chat not found, bot kicked, message too old to delete …).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The credentials were rejected; nothing on this account works until they are fixed.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request itself is malformed (bad text, bad chat id …); retrying it cannot help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The chat has a new id (Telegram group → supergroup migration). Retrying the same request
    /// at `new_chat` can succeed; the node moves the link there.
    #[error("chat moved to {new_chat}")]
    ChatMigrated { new_chat: String },
}

impl GatewayError {
    /// Whether the very same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// How long the remote asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A `Result` whose error is [`GatewayError`].
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Why a [`FormattedText`](crate::model::FormattedText) is not well-formed; `index` is the span's
/// position in `spans`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("span {index}: empty or reversed range {start}..{end}")]
    EmptyRange {
        index: usize,
        start: usize,
        end: usize,
    },
    #[error("span {index}: range {start}..{end} exceeds the text length {len}")]
    OutOfRange {
        index: usize,
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("span {index}: byte offset {offset} is not on a char boundary")]
    NotCharBoundary { index: usize, offset: usize },
}

impl From<FormatError> for GatewayError {
    fn from(e: FormatError) -> Self {
        Self::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rate_limits_and_transient_failures_are_retryable() {
        let limited = GatewayError::RateLimited {
            retry_after: Duration::from_secs(3),
        };
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert!(GatewayError::Transient("502".into()).is_retryable());
        for e in [
            GatewayError::Permanent("kicked".into()),
            GatewayError::Unauthorized("bad token".into()),
            GatewayError::Invalid("empty".into()),
            GatewayError::ChatMigrated {
                new_chat: "-100".into(),
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
            assert_eq!(e.retry_after(), None);
        }
        assert_eq!(GatewayError::Transient("x".into()).retry_after(), None);
    }

    #[test]
    fn format_errors_become_invalid_requests() {
        let e: GatewayError = FormatError::NotCharBoundary {
            index: 2,
            offset: 5,
        }
        .into();
        assert_eq!(
            e,
            GatewayError::Invalid("span 2: byte offset 5 is not on a char boundary".into())
        );
    }
}
