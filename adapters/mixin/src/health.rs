//! What the REST client and the Blaze connection last saw, summed up as the gateway's health.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rumgate_gateway::Health;

use crate::error::Error;

/// A Blaze connection that stays down this long makes the gateway `failing`.
pub const BLAZE_DOWN_FAILING_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct HealthBoard {
    state: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    /// Mixin refused the credentials (REST or Blaze); cleared by the next accepted request.
    unauthorized: Option<String>,
    rate_limited_until: Option<Instant>,
    /// The last REST failure that was neither a rate limit nor a refusal of this one request.
    rest_error: Option<String>,
    blaze: Blaze,
}

#[derive(Debug, Default)]
enum Blaze {
    #[default]
    NotRunning,
    Connecting,
    Up,
    Down {
        since: Instant,
        error: String,
    },
}

impl HealthBoard {
    fn board(&self) -> MutexGuard<'_, Board> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn rest_ok(&self) {
        let mut b = self.board();
        b.unauthorized = None;
        b.rest_error = None;
        b.rate_limited_until = None;
    }

    pub(crate) fn rest_failed(&self, e: &Error) {
        let mut b = self.board();
        match e {
            Error::RateLimited { retry_after } => {
                b.rate_limited_until = Some(Instant::now() + *retry_after);
            }
            Error::Unauthorized(_) => b.unauthorized = Some(e.to_string()),
            e if e.is_retryable() => b.rest_error = Some(e.to_string()),
            // A refusal of one request (bad message, not a participant) says nothing about the
            // account; the node dead-letters that message and shows why.
            _ => {}
        }
    }

    pub(crate) fn blaze_connecting(&self) {
        let mut b = self.board();
        if matches!(b.blaze, Blaze::NotRunning) {
            b.blaze = Blaze::Connecting;
        }
    }

    pub(crate) fn blaze_up(&self) {
        let mut b = self.board();
        b.blaze = Blaze::Up;
        b.unauthorized = None;
    }

    pub(crate) fn blaze_down(&self, error: String) {
        Self::mark_down(&mut self.board(), error);
    }

    pub(crate) fn blaze_unauthorized(&self, reason: String) {
        let mut b = self.board();
        b.unauthorized = Some(reason.clone());
        Self::mark_down(&mut b, reason);
    }

    fn mark_down(b: &mut Board, error: String) {
        let since = match b.blaze {
            Blaze::Down { since, .. } => since,
            _ => Instant::now(),
        };
        b.blaze = Blaze::Down { since, error };
    }

    pub(crate) fn blaze_is_up(&self) -> bool {
        matches!(self.board().blaze, Blaze::Up)
    }

    pub(crate) fn blaze_stopped(&self) {
        self.board().blaze = Blaze::NotRunning;
    }

    pub(crate) fn health(&self) -> Health {
        let b = self.board();
        if let Some(reason) = &b.unauthorized {
            return Health::failing(reason.clone());
        }
        let mut degraded = Vec::new();
        if let Blaze::Down { since, error } = &b.blaze {
            let down = since.elapsed();
            if down >= BLAZE_DOWN_FAILING_AFTER {
                return Health::failing(format!(
                    "Blaze websocket down for {}s, inbound messages wait on Mixin: {error}",
                    down.as_secs()
                ));
            }
            degraded.push(format!(
                "Blaze websocket disconnected, reconnecting: {error}"
            ));
        }
        if let Some(until) = b.rate_limited_until {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                degraded.push(format!(
                    "rate limited by Mixin (429), sending again in {}ms",
                    left.as_millis()
                ));
            }
        }
        if let Some(e) = &b.rest_error {
            degraded.push(format!("last API call failed, retrying: {e}"));
        }
        if degraded.is_empty() {
            Health::ok()
        } else {
            Health::degraded(degraded.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumgate_gateway::HealthState;

    #[test]
    fn credentials_refused_means_failing_until_a_request_is_accepted() {
        let h = HealthBoard::default();
        assert_eq!(h.health(), Health::ok());
        h.rest_failed(&Error::Unauthorized("bad token".into()));
        let health = h.health();
        assert_eq!(health.state, HealthState::Failing);
        assert!(health.detail.unwrap_or_default().contains("401"));
        h.rest_ok();
        assert_eq!(h.health(), Health::ok());

        h.blaze_unauthorized("Blaze said 401".into());
        assert_eq!(h.health().state, HealthState::Failing);
        h.blaze_up();
        assert_eq!(h.health(), Health::ok());
    }

    #[test]
    fn rate_limits_disconnects_and_transient_errors_degrade() {
        let h = HealthBoard::default();
        h.rest_failed(&Error::RateLimited {
            retry_after: Duration::from_secs(60),
        });
        let health = h.health();
        assert_eq!(health.state, HealthState::Degraded);
        assert!(health.detail.unwrap_or_default().contains("429"));
        h.rest_ok();
        h.blaze_down("connection reset".into());
        h.rest_failed(&Error::Transport("timeout".into()));
        let detail = h.health().detail.unwrap_or_default();
        assert!(
            detail.contains("connection reset") && detail.contains("timeout"),
            "{detail}"
        );
        // One bad message is not the account's problem.
        h.rest_ok();
        h.blaze_up();
        h.rest_failed(&Error::Api {
            status: 202,
            code: 403,
            description: "Forbidden".into(),
        });
        assert_eq!(h.health(), Health::ok());
    }
}
