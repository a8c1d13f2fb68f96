//! Webhook gateway: inbound hooks verified by Standard Webhooks, GitHub signatures or a bearer
//! secret; outbound deliveries as Standard-Webhooks-signed JSON, or Slack/Discord-shaped bodies.
//!
//! Webhook options are per link, so the node makes one [`WebhookGateway`] per outbound link; the
//! `chat` of a link is the target URL.

mod discord;
mod inbound;
mod outbound;
pub mod sign;
mod ssrf;

#[cfg(feature = "fake")]
pub mod fake;

pub use inbound::{verify_inbound, Inbound, InboundError};
pub use outbound::{message_id, WebhookGateway};
pub use ssrf::check_target;

use serde::Deserialize;

/// Timestamps of Standard Webhooks must be within this many seconds of now.
pub const TOLERANCE_SECS: u64 = 300;

/// The wire format of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Standard Webhooks: `webhook-id`/`-timestamp`/`-signature` (HMAC-SHA256 `v1`).
    #[default]
    Standard,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    Github,
    /// Plain JSON; `Authorization: Bearer <secret>`.
    Plain,
    /// Slack incoming webhook (`{"text"}`), outbound only. Such webhooks cannot change a posted
    /// message: an edit posts "(edited) …" as a new message, a delete does nothing.
    Slack,
    /// Discord execute-webhook (`{"content"}`, 2,000 characters, no mentions), outbound only.
    /// Posted with `wait=true`, so parts carry Discord message ids; edits `PATCH` and deletes
    /// `DELETE` those messages in place (see the `outbound` module).
    Discord,
}

/// Per-link webhook options. `Debug` never prints the secret.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub secret: Option<secrecy::SecretString>,
    /// Allow loopback/private/link-local targets (tests, receivers on the LAN).
    #[serde(default)]
    pub allow_private_target: bool,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("allow_private_target", &self.allow_private_target)
            .finish()
    }
}
