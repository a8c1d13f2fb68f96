//! Inbound: the getUpdates loop and turning one update into events the node acknowledges.

use super::*;
use crate::health::human;

/// What became of an update.
pub(crate) enum Step {
    /// Handled (stored, duplicate, ignored, nothing to store): the offset may move past it.
    Done,
    /// Not stored; read it again later.
    Retry(GatewayError),
    Cancelled,
}

impl Inner {
    /// Reads one update, fetches its file, hands the event to the node and waits for the answer.
    pub(crate) async fn process_update(
        &self,
        ctx: &GatewayContext,
        token: &CancellationToken,
        value: serde_json::Value,
    ) -> Step {
        let update = match convert::parse_update(value) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "unreadable update skipped");
                return Step::Done;
            }
        };
        let in_group = [&update.message, &update.edited_message]
            .into_iter()
            .flatten()
            .any(|m| m.chat.is_group());
        if in_group {
            let mut status = self.status();
            status.group_messages_seen += 1;
            status.in_groups = true;
        }
        let converted = convert::convert_update(&update, self.bot_id(), self.config.max_file_bytes);
        let (mut event, file) = match converted {
            Converted::Nothing { why } => {
                debug!(update_id = update.update_id, why, "nothing to mirror");
                return Step::Done;
            }
            Converted::Removed { chat, reason } => {
                warn!(%chat, %reason, "the bot lost access to a chat");
                self.status().removed.insert(chat, reason);
                return Step::Done;
            }
            Converted::Added { chat } => {
                info!(%chat, "the bot was added to a chat");
                let mut status = self.status();
                status.removed.remove(&chat);
                status.in_groups |= chat.starts_with('-');
                return Step::Done;
            }
            Converted::Event { event, file } => (event, file),
        };
        match &event {
            InboundEvent::Message(m) if m.from_self => return Step::Done,
            InboundEvent::ChatMigrated { chat, new_chat } => {
                info!(%chat, %new_chat, "group migrated to a supergroup");
                self.status()
                    .migrated
                    .insert(chat.clone(), new_chat.clone());
            }
            _ => {}
        }
        if let (Some(file), InboundEvent::Message(m)) = (file, &mut event) {
            let fetched = tokio::select! {
                _ = token.cancelled() => return Step::Cancelled,
                f = self.fetch(&file) => f,
            };
            match fetched {
                Ok(Ok(attachment)) => m.attachments.push(attachment),
                Ok(Err(placeholder)) => {
                    let mut note = FormattedText::plain(placeholder);
                    if !m.text.is_empty() {
                        note.text.insert(0, '\n');
                    }
                    m.text.append(&note);
                }
                Err(e) => return Step::Retry(e),
            }
        }
        let answer = tokio::select! {
            _ = token.cancelled() => return Step::Cancelled,
            a = ctx.inbound().submit(event) => a,
        };
        match answer {
            Ok(Ack::Stored { trx_id } | Ack::Duplicate { trx_id }) => {
                debug!(update_id = update.update_id, %trx_id, "stored");
                Step::Done
            }
            Ok(Ack::Ignored { reason }) => {
                debug!(update_id = update.update_id, %reason, "ignored by the node");
                Step::Done
            }
            Err(e) if e.is_retryable() => Step::Retry(e),
            Err(e) => {
                warn!(update_id = update.update_id, error = %e, "the node refused an update for good");
                Step::Done
            }
        }
    }

    /// The file as an attachment, or a placeholder text when it cannot be mirrored; `Err` when
    /// it is worth trying again later.
    pub(crate) async fn fetch(
        &self,
        file: &FileToFetch,
    ) -> Result<std::result::Result<Attachment, String>> {
        let max = self.config.max_file_bytes;
        let too_large =
            || convert::file_placeholder(file, &format!("larger than the {} limit", human(max)));
        if file.size.is_some_and(|s| s > max as u64) {
            return Ok(Err(too_large()));
        }
        self.pacer.wait_unpaused().await;
        let info = match self.client.get_file(&file.file_id).await {
            Ok(info) => info,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => return Ok(Err(convert::file_placeholder(file, &e.to_string()))),
        };
        if info.file_size.is_some_and(|s| s > max as u64) {
            return Ok(Err(too_large()));
        }
        let Some(path) = info.file_path else {
            return Ok(Err(convert::file_placeholder(
                file,
                "Telegram gave no download path",
            )));
        };
        match self.client.download(&path, max).await {
            Ok(Downloaded::Bytes(data)) => Ok(Ok(Attachment {
                kind: if file.is_image {
                    AttachmentKind::Image
                } else {
                    AttachmentKind::File
                },
                mime: file.mime.clone(),
                name: Some(file.name.clone()),
                data,
                width: file.width,
                height: file.height,
            })),
            Ok(Downloaded::TooLarge) => Ok(Err(too_large())),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => Ok(Err(convert::file_placeholder(file, &e.to_string()))),
        }
    }
}

/// Doubling waits from 1 s up to [`MAX_BACKOFF`].
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            next: Duration::from_secs(1),
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}

/// Sleeps `d` unless `token` is cancelled first; false when cancelled.
pub(crate) async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// The getUpdates loop: the offset sent to Telegram moves past an update only after the node
/// acknowledged it, so Telegram keeps (and re-sends after a crash) everything not yet stored.
pub(crate) async fn poll_loop(inner: Arc<Inner>, ctx: GatewayContext, token: CancellationToken) {
    let mut backoff = Backoff::new();
    // Our own id tells our own messages apart; the token's prefix stands in until getMe answers.
    while inner.status().me.is_none() {
        let me = tokio::select! {
            _ = token.cancelled() => return,
            me = inner.client.get_me() => me,
        };
        match me {
            Ok(me) => {
                let mut status = inner.status();
                status.me = Some(me);
                status.unauthorized = None;
            }
            Err(e) => {
                warn!(error = %e, "getMe failed");
                if let GatewayError::Unauthorized(m) = &e {
                    inner.status().unauthorized = Some(m.clone());
                }
                if !pause(&token, e.retry_after().unwrap_or_else(|| backoff.next())).await {
                    return;
                }
            }
        }
    }
    backoff.reset();

    let timeout = inner.config.poll_timeout();
    let mut offset: Option<i64> = None;
    'poll: loop {
        let polled = tokio::select! {
            _ = token.cancelled() => break 'poll,
            r = inner.client.get_updates(offset, timeout) => r,
        };
        let updates = match polled {
            Ok(updates) => {
                let mut status = inner.status();
                status.conflict = None;
                status.poll_failures = 0;
                status.last_poll_error = None;
                status.unauthorized = None;
                backoff.reset();
                updates
            }
            Err(PollError::WebhookActive(description)) => {
                // A webhook left behind (by an earlier webhook-mode run or another tool) blocks
                // polling; this gateway polls, so it takes the updates back, keeping those queued.
                warn!(%description, "getUpdates refused while a webhook is set; deleting it");
                let deleted = tokio::select! {
                    _ = token.cancelled() => break 'poll,
                    d = inner.client.delete_webhook() => d,
                };
                match deleted {
                    Ok(()) => {
                        info!("webhook deleted (pending updates kept); polling resumes");
                        inner.status().conflict = None;
                    }
                    Err(e) => {
                        warn!(error = %e, "deleteWebhook failed");
                        inner.status().conflict = Some(description);
                        if !pause(&token, e.retry_after().unwrap_or_else(|| backoff.next())).await {
                            break 'poll;
                        }
                    }
                }
                continue;
            }
            Err(PollError::Conflict(description)) => {
                warn!(%description, "getUpdates conflict: another poller or a webhook");
                inner.status().conflict = Some(description);
                if !pause(&token, backoff.next()).await {
                    break 'poll;
                }
                continue;
            }
            Err(PollError::Other(e)) => {
                warn!(error = %e, "getUpdates failed");
                let wait = match &e {
                    GatewayError::RateLimited { retry_after } => *retry_after,
                    _ => backoff.next(),
                };
                {
                    let mut status = inner.status();
                    if let GatewayError::Unauthorized(m) = &e {
                        status.unauthorized = Some(m.clone());
                    }
                    status.poll_failures += 1;
                    status.last_poll_error = Some(e.to_string());
                }
                if !pause(&token, wait).await {
                    break 'poll;
                }
                continue;
            }
        };
        for value in updates {
            let Some(id) = value.get("update_id").and_then(serde_json::Value::as_i64) else {
                warn!("an update without update_id skipped");
                continue;
            };
            // No skipping by id: Telegram restarts its ids (lower) after a week without
            // updates, and an update it sends again is recognised by the node's dedup.
            let step = inner
                .process_update(&ctx, &token, value)
                .instrument(info_span!("update", update_id = id))
                .await;
            match step {
                Step::Done => offset = Some(id + 1),
                Step::Retry(e) => {
                    warn!(update_id = id, error = %e, "update not stored; reading it again later");
                    if !pause(&token, backoff.next()).await {
                        break 'poll;
                    }
                    continue 'poll;
                }
                Step::Cancelled => break 'poll,
            }
        }
    }
    // Confirms what the node stored, so that the next start does not read it again (which would
    // be harmless: the node deduplicates).
    if let Some(offset) = offset {
        let confirm = inner.client.get_updates(Some(offset), Duration::ZERO);
        if tokio::time::timeout(Duration::from_secs(2), confirm)
            .await
            .is_err()
        {
            debug!("could not confirm the update offset at shutdown");
        }
    }
}
