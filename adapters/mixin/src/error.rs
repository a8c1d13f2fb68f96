//! The crate's error type and how each error tells the node what to do next.

use std::time::Duration;

use rumgate_gateway::GatewayError;

/// Everything that can go wrong talking to Mixin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The account configuration is unusable; every problem, each with its key name.
    #[error("invalid mixin configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// Mixin answered `{"error":{"code":429}}` (inside an HTTP 202) or HTTP 429.
    #[error("rate limited by Mixin (429), retrying after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Mixin rejected the session's credentials (code 401).
    #[error(
        "Mixin rejected the bot's credentials (401: {0}); check session_id and \
         session_private_key in the keystore: the session may have been reset in the developer \
         dashboard"
    )]
    Unauthorized(String),
    /// A business error from the API (the `error` object of a 202 body, or of another status).
    #[error("Mixin API error {code} (HTTP {status}): {description}")]
    Api {
        status: u16,
        code: i64,
        description: String,
    },
    /// 10002 "invalid field" naming `message_id`. Outgoing ids are UUIDs derived from the trx,
    /// so Mixin refusing one means it already has that message: an earlier attempt landed and
    /// its answer was lost. [`crate::client::Client::post_messages`] counts such a message as
    /// delivered.
    #[error("Mixin already has this message id (10002 on message_id): {0}")]
    KnownMessageId(String),
    /// Network trouble, a timeout, an HTTP 5xx without a usable body.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer that does not parse as the Mixin protocol says it should.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A request this client refuses to make (too large, malformed id).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    /// Error codes Mixin documents as server-side trouble: worth retrying.
    fn code_is_transient(code: i64) -> bool {
        // 500 internal, 7000 blaze server error, 7001 blaze operation timeout, and any other 5xx.
        (500..600).contains(&code) || code == 7000 || code == 7001
    }

    /// Whether the very same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport(_) | Self::Protocol(_) => true,
            Self::Api { code, .. } => Self::code_is_transient(*code),
            Self::Config(_)
            | Self::Unauthorized(_)
            | Self::Invalid(_)
            | Self::KnownMessageId(_) => false,
        }
    }
}

impl From<Error> for GatewayError {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(_) | Error::Invalid(_) => Self::Invalid(e.to_string()),
            Error::RateLimited { retry_after } => Self::RateLimited { retry_after },
            Error::Unauthorized(_) => Self::Unauthorized(e.to_string()),
            Error::Api { code, .. } if Error::code_is_transient(code) => {
                Self::Transient(e.to_string())
            }
            // 400 bad body, 10002 invalid field: this request can never succeed.
            Error::Api {
                code: 400 | 10002, ..
            } => Self::Invalid(e.to_string()),
            // 403 not a participant, 404, 20116 group full and anything else undocumented.
            Error::Api { .. } | Error::KnownMessageId(_) => Self::Permanent(e.to_string()),
            Error::Transport(_) | Error::Protocol(_) => Self::Transient(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64) -> Error {
        Error::Api {
            status: 202,
            code,
            description: "x".into(),
        }
    }

    #[test]
    fn maps_each_error_to_what_the_node_should_do() {
        let wait = Duration::from_secs(2);
        assert_eq!(
            GatewayError::from(Error::RateLimited { retry_after: wait }),
            GatewayError::RateLimited { retry_after: wait }
        );
        assert!(matches!(
            GatewayError::from(Error::Unauthorized("bad token".into())),
            GatewayError::Unauthorized(m) if m.contains("401") && m.contains("keystore")
        ));
        for code in [500, 7000, 7001] {
            assert!(
                matches!(api(code).into(), GatewayError::Transient(_)),
                "{code}"
            );
            assert!(api(code).is_retryable());
        }
        for code in [400, 10002] {
            assert!(
                matches!(api(code).into(), GatewayError::Invalid(_)),
                "{code}"
            );
        }
        for code in [403, 404, 20116, 12345] {
            assert!(
                matches!(api(code).into(), GatewayError::Permanent(_)),
                "{code}"
            );
            assert!(!api(code).is_retryable());
        }
        assert!(matches!(
            Error::Transport("reset".into()).into(),
            GatewayError::Transient(_)
        ));
        assert!(matches!(
            Error::Config(vec!["a".into(), "b".into()]).into(),
            GatewayError::Invalid(m) if m.contains("a; b")
        ));
    }
}
