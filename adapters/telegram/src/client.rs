//! The Bot API wire protocol: teloxide's `Bot` behind a type that never prints the token, and every
//! failure classified as a [`GatewayError`].
//!
//! Sends and edits go through teloxide's typed requests. Reads whose answers we parse ourselves
//! (`getUpdates`, `getMe`, `getFile`) use small payloads of our own through the same `Bot`, so
//! that fields Telegram adds can never make an update unreadable. A success whose body teloxide
//! cannot parse is read leniently for the message id instead of being reported as a failure,
//! which would make the node send the message again.
//!
//! teloxide sleeps 10 s before reading any 5xx answer (`DELAY_ON_SERVER_ERROR`); that acts as
//! the first backoff step for server errors.

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use rumgate_gateway::{GatewayError, Result};
use serde::{Deserialize, Serialize};
use teloxide_core::net::Download;
use teloxide_core::payloads::{
    DeleteWebhookSetters, EditMessageCaptionSetters, EditMessageTextSetters, SendMessageSetters,
    SendPhotoSetters, SetWebhookSetters,
};
use teloxide_core::requests::{JsonRequest, Payload, Request, Requester};
use teloxide_core::types::{
    AllowedUpdate, ChatId, InputFile, LinkPreviewOptions, MessageId, ParseMode, ReplyParameters,
    ThreadId,
};
use teloxide_core::{ApiError, Bot, RequestError};

use crate::config::BotToken;
use crate::convert::ChatTarget;

/// The update kinds the gateway asks for.
pub const ALLOWED_UPDATES: [&str; 5] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
];

/// How long a request may take beyond a long poll's own timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A Bot API client for one bot.
#[derive(Clone)]
pub struct Client {
    /// For sends, edits and downloads.
    bot: Bot,
    /// For long polls, whose HTTP timeout must outlast the poll's.
    poll_bot: Bot,
    api_url: reqwest::Url,
}

// teloxide's `Bot` derives `Debug` and would print the token.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.api_url.as_str())
            .field("token", &"***")
            .finish()
    }
}

/// What `getMe` says about the bot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    pub id: i64,
    #[serde(default)]
    pub username: Option<String>,
    /// False while privacy mode is on: the bot then sees only commands, replies and mentions.
    #[serde(default)]
    pub can_read_all_group_messages: bool,
}

/// What `getFile` says about a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileInfo {
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub file_path: Option<String>,
}

/// A downloaded file, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downloaded {
    Bytes(Vec<u8>),
    TooLarge,
}

/// Why `getUpdates` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// 409: another poller took over.
    Conflict(String),
    /// 409: a webhook is set, so `getUpdates` is refused until `deleteWebhook`.
    WebhookActive(String),
    Other(GatewayError),
}

/// A photo to upload.
#[derive(Debug, Clone)]
pub struct Photo {
    pub bytes: Vec<u8>,
    pub file_name: String,
}

impl Client {
    /// A client for `token` at `api_url` (the Bot API base, e.g. `https://api.telegram.org`),
    /// whose long polls last up to `poll_timeout`.
    pub fn new(token: &BotToken, api_url: &str, poll_timeout: Duration) -> Result<Self> {
        let api_url = reqwest::Url::parse(api_url)
            .map_err(|e| GatewayError::Invalid(format!("api_url: {e}")))?;
        if api_url.cannot_be_a_base() {
            return Err(GatewayError::Invalid("api_url: not a base URL".into()));
        }
        let build = |timeout: Duration| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(timeout)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| GatewayError::Invalid(format!("HTTP client: {e}")))
        };
        let bot =
            Bot::with_client(token.expose(), build(REQUEST_TIMEOUT)?).set_api_url(api_url.clone());
        let poll_bot = Bot::with_client(token.expose(), build(poll_timeout + REQUEST_TIMEOUT)?)
            .set_api_url(api_url.clone());
        Ok(Self {
            bot,
            poll_bot,
            api_url,
        })
    }

    pub async fn get_me(&self) -> Result<BotInfo> {
        JsonRequest::new(self.bot.clone(), GetMe {})
            .send()
            .await
            .map_err(classify)
    }

    /// One long poll: updates from `offset` on (confirming every earlier one), as raw JSON so that
    /// one unreadable update cannot hide the others.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout: Duration,
    ) -> std::result::Result<Vec<serde_json::Value>, PollError> {
        let payload = GetUpdates {
            offset,
            limit: 100,
            timeout: u32::try_from(timeout.as_secs()).unwrap_or(50),
            allowed_updates: ALLOWED_UPDATES.iter().map(|s| (*s).to_owned()).collect(),
        };
        JsonRequest::new(self.poll_bot.clone(), payload)
            .send()
            .await
            .map_err(|e| match conflict(&e) {
                Some(d) if d.contains("webhook is active") => PollError::WebhookActive(d),
                Some(description) => PollError::Conflict(description),
                None => PollError::Other(classify(e)),
            })
    }

    /// `deleteWebhook` keeping the updates Telegram holds, so that polling can take over.
    pub async fn delete_webhook(&self) -> Result<()> {
        self.bot
            .delete_webhook()
            .drop_pending_updates(false)
            .send()
            .await
            .map(drop)
            .map_err(classify)
    }

    /// `sendMessage` with HTML; returns the new message id.
    pub async fn send_message(
        &self,
        to: ChatTarget,
        html: &str,
        reply_to: Option<i64>,
    ) -> Result<i64> {
        let mut req = self
            .bot
            .send_message(ChatId(to.chat), html)
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_preview());
        if let Some(thread) = thread_id(to)? {
            req = req.message_thread_id(thread);
        }
        if let Some(reply) = reply_to {
            req = req.reply_parameters(reply_parameters(reply)?);
        }
        match req.send().await {
            Ok(m) => Ok(i64::from(m.id.0)),
            Err(e) => sent_anyway(&e).ok_or_else(|| classify(e)),
        }
    }

    /// `sendPhoto` (multipart) with an HTML caption; returns the new message id.
    pub async fn send_photo(
        &self,
        to: ChatTarget,
        photo: Photo,
        caption_html: Option<&str>,
        reply_to: Option<i64>,
    ) -> Result<i64> {
        let file = InputFile::memory(photo.bytes).file_name(photo.file_name);
        let mut req = self.bot.send_photo(ChatId(to.chat), file);
        if let Some(caption) = caption_html.filter(|c| !c.is_empty()) {
            req = req.caption(caption).parse_mode(ParseMode::Html);
        }
        if let Some(thread) = thread_id(to)? {
            req = req.message_thread_id(thread);
        }
        if let Some(reply) = reply_to {
            req = req.reply_parameters(reply_parameters(reply)?);
        }
        match req.send().await {
            Ok(m) => Ok(i64::from(m.id.0)),
            Err(e) => sent_anyway(&e).ok_or_else(|| classify(e)),
        }
    }

    /// `editMessageText`; an edit to the same text is a success.
    pub async fn edit_message_text(
        &self,
        chat: i64,
        message_id: i64,
        html: &str,
    ) -> Result<Edited> {
        let req = self
            .bot
            .edit_message_text(ChatId(chat), message_id_of(message_id)?, html)
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_preview());
        edited(req.send().await.map(drop))
    }

    /// `editMessageCaption`, for messages that carry a photo.
    pub async fn edit_message_caption(
        &self,
        chat: i64,
        message_id: i64,
        html: &str,
    ) -> Result<Edited> {
        let req = self
            .bot
            .edit_message_caption(ChatId(chat), message_id_of(message_id)?)
            .caption(html)
            .parse_mode(ParseMode::Html);
        edited(req.send().await.map(drop))
    }

    /// `deleteMessage`; a message that is already gone is a success.
    pub async fn delete_message(&self, chat: i64, message_id: i64) -> Result<()> {
        match self
            .bot
            .delete_message(ChatId(chat), message_id_of(message_id)?)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if already_gone(&e) => Ok(()),
            Err(e) if sent_anyway(&e).is_some() || ok_anyway(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    pub async fn get_file(&self, file_id: &str) -> Result<FileInfo> {
        JsonRequest::new(
            self.bot.clone(),
            GetFile {
                file_id: file_id.to_owned(),
            },
        )
        .send()
        .await
        .map_err(classify)
    }

    /// Downloads `path` (from `getFile`), stopping as soon as it exceeds `max_bytes`.
    pub async fn download(&self, path: &str, max_bytes: usize) -> Result<Downloaded> {
        let mut stream = self.bot.download_file_stream(path);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let e = e.without_url();
                match e.status() {
                    Some(s) if s.is_client_error() => {
                        GatewayError::Permanent(format!("file download: {e}"))
                    }
                    _ => GatewayError::Transient(format!("file download: {e}")),
                }
            })?;
            if bytes.len() + chunk.len() > max_bytes {
                return Ok(Downloaded::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Downloaded::Bytes(bytes))
    }

    /// Registers a webhook (`setWebhook`) carrying `secret` in every delivery.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<()> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| GatewayError::Invalid(format!("webhook_url: {e}")))?;
        let allowed = [
            AllowedUpdate::Message,
            AllowedUpdate::EditedMessage,
            AllowedUpdate::ChannelPost,
            AllowedUpdate::EditedChannelPost,
            AllowedUpdate::MyChatMember,
        ];
        self.bot
            .set_webhook(url)
            .secret_token(secret.to_owned())
            .allowed_updates(allowed)
            .send()
            .await
            .map(drop)
            .map_err(classify)
    }
}

/// Whether an edit changed the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    Changed,
    /// Telegram said "message is not modified": it already shows this text.
    Unchanged,
    /// The message has no text to edit (a photo): edit its caption instead.
    NoText,
}

fn edited(result: std::result::Result<(), RequestError>) -> Result<Edited> {
    match result {
        Ok(()) => Ok(Edited::Changed),
        Err(e) => {
            let description = description(&e).unwrap_or_default();
            if description.starts_with("Bad Request: message is not modified") {
                Ok(Edited::Unchanged)
            } else if description.starts_with("Bad Request: there is no text in the message")
                || description.starts_with("Bad Request: message has no text")
            {
                Ok(Edited::NoText)
            } else if sent_anyway(&e).is_some() || ok_anyway(&e) {
                Ok(Edited::Changed)
            } else {
                Err(classify(e))
            }
        }
    }
}

fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

fn message_id_of(id: i64) -> Result<MessageId> {
    i32::try_from(id)
        .map(MessageId)
        .map_err(|_| GatewayError::Invalid(format!("message id {id} is out of range")))
}

fn thread_id(to: ChatTarget) -> Result<Option<ThreadId>> {
    to.thread
        .map(|t| message_id_of(t).map(ThreadId))
        .transpose()
}

fn reply_parameters(message_id: i64) -> Result<ReplyParameters> {
    // A reply to a message deleted meanwhile still goes out, without the reply.
    Ok(ReplyParameters {
        allow_sending_without_reply: Some(true),
        ..ReplyParameters::new(message_id_of(message_id)?)
    })
}

/// The description Telegram gave, for API errors.
fn description(e: &RequestError) -> Option<String> {
    match e {
        RequestError::Api(ApiError::Unknown(d)) => Some(d.clone()),
        RequestError::Api(ApiError::InvalidToken) => Some("Unauthorized".into()),
        RequestError::Api(api) => Some(api.to_string()),
        _ => None,
    }
}

fn conflict(e: &RequestError) -> Option<String> {
    match e {
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates | ApiError::CantGetUpdates) => {
            description(e).map(|d| format!("Conflict: {}", d.trim_start_matches("Conflict: ")))
        }
        _ => description(e).filter(|d| d.starts_with("Conflict")),
    }
}

fn already_gone(e: &RequestError) -> bool {
    matches!(e, RequestError::Api(ApiError::MessageToDeleteNotFound))
        || description(e).is_some_and(|d| d.starts_with("Bad Request: message to delete not found"))
}

#[derive(Deserialize)]
struct LenientEnvelope {
    ok: bool,
    #[serde(default)]
    result: Option<serde_json::Value>,
}

/// For a success whose body teloxide could not parse: the id of the message that was sent.
fn sent_anyway(e: &RequestError) -> Option<i64> {
    let RequestError::InvalidJson { raw, .. } = e else {
        return None;
    };
    let envelope: LenientEnvelope = serde_json::from_str(raw).ok()?;
    if !envelope.ok {
        return None;
    }
    envelope.result?.get("message_id")?.as_i64()
}

/// For a success whose body teloxide could not parse, when there is no id to read.
fn ok_anyway(e: &RequestError) -> bool {
    let RequestError::InvalidJson { raw, .. } = e else {
        return false;
    };
    serde_json::from_str::<LenientEnvelope>(raw).is_ok_and(|env| env.ok)
}

/// Maps a teloxide error to what the node should do about it.
pub fn classify(e: RequestError) -> GatewayError {
    match e {
        RequestError::RetryAfter(s) => GatewayError::RateLimited {
            retry_after: s.duration().max(Duration::from_secs(1)),
        },
        RequestError::MigrateToChatId(ChatId(id)) => GatewayError::ChatMigrated {
            new_chat: id.to_string(),
        },
        // teloxide strips the token from the URL in these errors.
        RequestError::Network(e) => GatewayError::Transient(format!("network: {e}")),
        RequestError::Io(e) => GatewayError::Transient(format!("I/O: {e}")),
        RequestError::InvalidJson { raw, .. } => GatewayError::Transient(format!(
            "unreadable answer from the Bot API: {:?}",
            raw.chars().take(200).collect::<String>()
        )),
        RequestError::Api(ref api) => {
            let d = description(&e).unwrap_or_else(|| api.to_string());
            classify_description(&d)
        }
    }
}

/// Telegram's descriptions start with the HTTP reason: "Bad Request: …", "Forbidden: …".
pub fn classify_description(d: &str) -> GatewayError {
    let lower = d.to_ascii_lowercase();
    if d == "Unauthorized" || lower.starts_with("unauthorized: invalid") {
        return GatewayError::Unauthorized(format!(
            "the Bot API rejected the token ({d}); check it with @BotFather"
        ));
    }
    let chat_gone = [
        "chat not found",
        "bot was kicked",
        "bot was blocked",
        "bot is not a member",
        "user is deactivated",
        "group chat was deactivated",
        "group is deactivated",
        "have no rights to send",
        "not enough rights to send",
        "need administrator rights",
        "chat_write_forbidden",
        "can't initiate conversation",
        "bot can't send messages to bots",
        "topic_closed",
        "topic_deleted",
        "message thread not found",
    ];
    if lower.starts_with("forbidden") || chat_gone.iter().any(|p| lower.contains(p)) {
        return GatewayError::Permanent(d.to_owned());
    }
    if lower.starts_with("unauthorized") {
        // Old servers said "Unauthorized: bot was kicked …" for what is now 403.
        return GatewayError::Permanent(d.to_owned());
    }
    if lower.starts_with("too many requests") {
        let secs = lower
            .rsplit("retry after ")
            .next()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(5);
        return GatewayError::RateLimited {
            retry_after: Duration::from_secs(secs.max(1)),
        };
    }
    if lower.starts_with("bad request") || lower.starts_with("not found") {
        return GatewayError::Invalid(d.to_owned());
    }
    // Conflicts, 5xx ("Internal Server Error", "Bad Gateway") and anything unexpected: retry.
    GatewayError::Transient(d.to_owned())
}

#[derive(Debug, Clone, Serialize)]
struct GetMe {}

impl Payload for GetMe {
    type Output = BotInfo;
    const NAME: &'static str = "getMe";
}

#[derive(Debug, Clone, Serialize)]
struct GetUpdates {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    limit: u8,
    timeout: u32,
    allowed_updates: Vec<String>,
}

impl Payload for GetUpdates {
    type Output = Vec<serde_json::Value>;
    const NAME: &'static str = "getUpdates";
}

#[derive(Debug, Clone, Serialize)]
struct GetFile {
    file_id: String,
}

impl Payload for GetFile {
    type Output = FileInfo;
    const NAME: &'static str = "getFile";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(description: &str) -> RequestError {
        serde_json::from_str::<ApiError>(&serde_json::to_string(description).expect("json"))
            .map(RequestError::Api)
            .expect("api error")
    }

    #[test]
    fn classifies_the_fixture_errors() {
        assert!(matches!(
            classify(api("Bad Request: chat not found")),
            GatewayError::Permanent(_)
        ));
        assert!(matches!(
            classify(api("Forbidden: bot was kicked from the supergroup chat")),
            GatewayError::Permanent(_)
        ));
        assert!(matches!(
            classify(api("Forbidden: bot was kicked from the group chat")),
            GatewayError::Permanent(_)
        ));
        assert!(matches!(
            classify(api("Unauthorized")),
            GatewayError::Unauthorized(_)
        ));
        assert!(matches!(
            classify(api("Not Found: method not found")),
            GatewayError::Invalid(_)
        ));
        assert!(matches!(
            classify(api("Internal Server Error")),
            GatewayError::Transient(_)
        ));
        assert!(matches!(
            classify(api("Bad Request: can't parse entities: unclosed tag")),
            GatewayError::Invalid(_)
        ));
        assert_eq!(
            classify(RequestError::RetryAfter(
                teloxide_core::types::Seconds::from_seconds(17)
            )),
            GatewayError::RateLimited {
                retry_after: Duration::from_secs(17)
            }
        );
        assert_eq!(
            classify(RequestError::MigrateToChatId(ChatId(-1005678901234))),
            GatewayError::ChatMigrated {
                new_chat: "-1005678901234".into()
            }
        );
        assert_eq!(
            classify_description("Too Many Requests: retry after 3"),
            GatewayError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn recognises_both_conflicts() {
        let polled = api("Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
        assert!(conflict(&polled).is_some_and(|d| d.contains("terminated by other getUpdates")));
        let webhook = api("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
        assert!(conflict(&webhook).is_some_and(|d| d.contains("webhook is active")));
        assert_eq!(conflict(&api("Bad Request: chat not found")), None);
    }

    #[test]
    fn reads_a_success_that_teloxide_could_not_parse() {
        let e = RequestError::InvalidJson {
            source: std::sync::Arc::new(
                serde_json::from_str::<u8>("x").expect_err("a parse error"),
            ),
            raw: r#"{"ok":true,"result":{"message_id":77,"future":{"shape":1}}}"#.into(),
        };
        assert_eq!(sent_anyway(&e), Some(77));
        assert!(ok_anyway(&e));
        let e = RequestError::InvalidJson {
            source: std::sync::Arc::new(
                serde_json::from_str::<u8>("x").expect_err("a parse error"),
            ),
            raw: "<html>502 Bad Gateway</html>".into(),
        };
        assert_eq!(sent_anyway(&e), None);
        assert!(matches!(classify(e), GatewayError::Transient(_)));
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let token = BotToken::new("7412345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0");
        let client =
            Client::new(&token, "http://127.0.0.1:9", Duration::from_secs(30)).expect("client");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("AAHdq"), "{dbg}");
        assert!(!dbg.contains("7412345678"), "{dbg}");
    }
}
