//! Webhook mode: Telegram pushes updates to the node's `/hooks/{link}` route.

use super::*;

impl TelegramGateway {
    /// Webhook mode: handles one delivery to the node's `/hooks/{link}` route.
    ///
    /// Checks `secret` (the `X-Telegram-Bot-Api-Secret-Token` header) in constant time, turns the
    /// update into events and returns only after the node acknowledged them. An error means "not
    /// stored": answer with [`WebhookError::status`] so that Telegram delivers it again.
    pub async fn handle_webhook(
        &self,
        secret: Option<&str>,
        body: &[u8],
    ) -> std::result::Result<WebhookOutcome, WebhookError> {
        let Some(expected) = &self.inner.config.webhook_secret else {
            return Err(WebhookError::NotWebhookMode);
        };
        let given = secret.unwrap_or_default().as_bytes();
        if !bool::from(given.ct_eq(expected.expose().as_bytes())) {
            return Err(WebhookError::BadSecret);
        }
        let running = self
            .inner
            .ctx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some((ctx, token)) = running else {
            return Err(WebhookError::Unavailable(
                "the telegram gateway is not started".into(),
            ));
        };
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                // Telegram would deliver it again and again; it will never parse.
                warn!(error = %e, "unreadable webhook update dropped");
                return Ok(WebhookOutcome::Ignored);
            }
        };
        match self.inner.process_update(&ctx, &token, value).await {
            Step::Done => Ok(WebhookOutcome::Accepted),
            Step::Retry(e) => Err(WebhookError::Unavailable(e.to_string())),
            Step::Cancelled => Err(WebhookError::Unavailable("shutting down".into())),
        }
    }
}

/// A webhook delivery that was handled; answer 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Stored (or known, or deliberately ignored) by the node.
    Accepted,
    /// Unreadable; dropped so that Telegram stops re-sending it.
    Ignored,
}

/// A webhook delivery that was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("wrong or missing X-Telegram-Bot-Api-Secret-Token")]
    BadSecret,
    #[error("this telegram gateway is not in webhook mode")]
    NotWebhookMode,
    /// Not stored now; Telegram retries non-2xx answers.
    #[error("not stored, retry later: {0}")]
    Unavailable(String),
}

impl WebhookError {
    /// The HTTP status for the answer to Telegram.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadSecret => 401,
            Self::NotWebhookMode => 404,
            Self::Unavailable(_) => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_errors_map_to_statuses() {
        assert_eq!(WebhookError::BadSecret.status(), 401);
        assert_eq!(WebhookError::Unavailable("x".into()).status(), 503);
        assert_eq!(WebhookError::NotWebhookMode.status(), 404);
    }
}
