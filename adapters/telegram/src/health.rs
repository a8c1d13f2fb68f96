//! What answers say about the bot and its chats: unauthorized, removed, migrated.

use super::*;

impl Inner {
    /// Records what an answer says about the bot as a whole.
    pub(crate) fn note<T>(&self, chat: i64, result: &Result<T>) {
        match result {
            Ok(_) => {
                let mut status = self.status();
                status.unauthorized = None;
                if pacing::is_group(chat) {
                    status.in_groups = true;
                }
            }
            Err(GatewayError::RateLimited { retry_after }) => {
                warn!(chat, ?retry_after, "Telegram asked the bot to slow down");
                self.pacer.pause_for(*retry_after);
            }
            Err(GatewayError::Unauthorized(m)) => {
                self.status().unauthorized = Some(m.clone());
            }
            Err(GatewayError::Permanent(m)) if is_removal(m) => {
                self.status().removed.insert(chat.to_string(), m.clone());
            }
            Err(GatewayError::ChatMigrated { new_chat }) => {
                self.status()
                    .migrated
                    .insert(chat.to_string(), new_chat.clone());
            }
            Err(_) => {}
        }
    }

    /// The account's health, or — with `chat` — its health for that chat: being removed from
    /// one chat fails that chat's links only.
    pub(crate) fn health(&self, chat: Option<&str>) -> Health {
        let status = self.status();
        if let Some(m) = &status.unauthorized {
            return Health::failing(m.clone());
        }
        match chat {
            Some(chat) => {
                let id = chat.split('/').next().unwrap_or(chat);
                if let Some(reason) = status.removed.get(id) {
                    return Health::failing(reason.clone());
                }
            }
            None if !status.removed.is_empty() => {
                let reasons: Vec<String> = status
                    .removed
                    .iter()
                    .map(|(c, r)| format!("{c}: {r}"))
                    .collect();
                return Health::degraded(format!(
                    "removed from {} chat(s): {}",
                    reasons.len(),
                    reasons.join("; ")
                ));
            }
            None => {}
        }
        if let Some(c) = &status.conflict {
            return Health::degraded(format!(
                "getUpdates answered 409 ({c}). Another process is polling updates for this bot \
                 (a second rumgate or another bot framework with the same token), or a webhook is \
                 set and deleteWebhook failed: stop the other poller, or delete the webhook, or run \
                 this gateway in webhook mode. Retrying with backoff."
            ));
        }
        if status.poll_failures >= 3 {
            return Health::degraded(format!(
                "getUpdates failed {} times in a row; last error: {}",
                status.poll_failures,
                status.last_poll_error.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(left) = self.pacer.paused_for() {
            return Health::degraded(format!(
                "rate limited by Telegram (429) for {} more seconds",
                left.as_secs().max(1)
            ));
        }
        let privacy_on = status
            .me
            .as_ref()
            .is_some_and(|me| !me.can_read_all_group_messages);
        if privacy_on {
            let hint = "privacy mode looks on (getMe: can_read_all_group_messages is false): in \
                        groups the bot sees only commands, replies to it and mentions. To mirror \
                        a group, send /setprivacy to @BotFather and choose Disable (then remove \
                        and re-add the bot), or make the bot an admin of the group";
            if status.in_groups && status.group_messages_seen == 0 {
                return Health::degraded(format!("no group messages received yet; {hint}"));
            }
            return Health {
                detail: Some(hint.into()),
                ..Health::ok()
            };
        }
        Health::ok()
    }
}

/// Whether a permanent error says the bot can no longer use the chat at all.
pub(crate) fn is_removal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["kicked", "blocked", "not a member", "deactivated"]
        .iter()
        .any(|w| m.contains(w))
}

pub(crate) fn human(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}
