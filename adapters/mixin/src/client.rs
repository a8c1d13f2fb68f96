//! The Mixin HTTP API: signed requests, business errors read from every body (Mixin answers
//! most errors with HTTP 202), batching of `POST /messages`, attachments and acknowledgements.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::auth::Signer;
use crate::convert::null_as_default;
use crate::error::Error;
use crate::health::HealthBoard;

/// At most this many messages per `POST /messages` (docs/api/messages/send.md).
pub const MAX_BATCH_MESSAGES: usize = 100;
/// At most this many body bytes per `POST /messages` ("128 KB", read as the smaller 128,000).
pub const MAX_BATCH_BYTES: usize = 128_000;
/// At most this many ids per `POST /acknowledgements`.
pub const MAX_ACKS: usize = 100;
/// API answers larger than this are refused rather than buffered.
const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// One message of a `POST /messages` body, in the key order of the Go SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRequest {
    pub conversation_id: String,
    /// Set for 1:1 conversations; omitted for groups.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recipient_id: String,
    pub message_id: String,
    pub category: String,
    /// The payload, URL-safe base64 without padding.
    pub data_base64: String,
    #[serde(default)]
    pub representative_id: String,
    #[serde(default)]
    pub quote_message_id: String,
    #[serde(default)]
    pub silent: bool,
}

/// One entry of a `POST /acknowledgements` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    pub message_id: String,
    pub status: String,
}

/// The `error` object of an API answer or a Blaze frame. Only `code` is relied on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub code: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// A user as `GET /me` and `GET /users/:id` describe it (other keys are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub user_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub identity_number: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub full_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub session_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub app_id: String,
}

/// An attachment as `POST /attachments` and `GET /attachments/:id` describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub attachment_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub upload_url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub view_url: String,
}

/// A conversation as `GET /conversations/:id` describes it (other keys are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub conversation_id: String,
    /// `CONTACT` (1:1) or `GROUP`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub category: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub participants: Vec<ParticipantView>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub role: String,
}

/// How the client paces itself after rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// The wait after the first 429 in a row; it doubles with each further one.
    pub base: Duration,
    pub max: Duration,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// The HTTP API client of one bot session; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Always ends with `/`, so that joining keeps any path prefix.
    api: Url,
    signer: Signer,
    rate: RateLimitPolicy,
    /// 429s in a row, for the exponential backoff Mixin leaves to clients (it sends no
    /// `Retry-After`).
    limited_in_a_row: AtomicU32,
    health: Arc<HealthBoard>,
}

fn transport(e: reqwest::Error) -> Error {
    // Without the URL: presigned attachment URLs are credentials.
    let e = e.without_url();
    if e.is_timeout() {
        Error::Transport(format!("timed out: {e}"))
    } else {
        Error::Transport(e.to_string())
    }
}

impl Client {
    pub fn new(
        api: &Url,
        signer: Signer,
        rate: RateLimitPolicy,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Self::with_health(api, signer, rate, timeout, Arc::default())
    }

    pub(crate) fn with_health(
        api: &Url,
        signer: Signer,
        rate: RateLimitPolicy,
        timeout: Duration,
        health: Arc<HealthBoard>,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rumgate-mixin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(vec![format!("http client: {e}")]))?;
        let mut api = api.clone();
        if !api.path().ends_with('/') {
            let path = format!("{}/", api.path());
            api.set_path(&path);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api,
                signer,
                rate,
                limited_in_a_row: AtomicU32::new(0),
                health,
            }),
        })
    }

    /// One signed API call; returns the body's `data` (or the whole body if it has none).
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, Error> {
        let result = self.call_once(method, path_and_query, body).await;
        match &result {
            Ok(_) => {
                self.inner.limited_in_a_row.store(0, Ordering::Relaxed);
                self.inner.health.rest_ok();
            }
            Err(e) => self.inner.health.rest_failed(e),
        }
        result
    }

    async fn call_once(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, Error> {
        let url = self
            .inner
            .api
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| Error::Protocol(format!("bad path {path_and_query:?}: {e}")))?;
        let uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let body = body.unwrap_or_default();
        let token = self.inner.signer.sign_request(method.as_str(), &uri, &body);
        let mut request = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("X-Request-Id", uuid::Uuid::new_v4().to_string());
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = read_limited(response, MAX_RESPONSE_BYTES)
            .await?
            .ok_or_else(|| Error::Protocol("answer larger than 8 MiB".into()))?;
        self.interpret(status, retry_after, &bytes)
    }

    /// Reads an answer: an `error` object wins whatever the status (Mixin sends business errors
    /// with 202, and a 2xx is never success without looking at the body).
    fn interpret(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        bytes: &[u8],
    ) -> Result<Value, Error> {
        let json: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            Some(Value::Null)
        } else {
            serde_json::from_slice(bytes).ok()
        };
        let error = json
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.is_object())
            .and_then(|e| serde_json::from_value::<ErrorBody>(e.clone()).ok());
        if let Some(e) = error {
            let code = if e.code != 0 {
                e.code
            } else {
                i64::from(status.as_u16())
            };
            if code == 10002 && names_message_id(e.extra.as_ref()) {
                return Err(Error::KnownMessageId(e.description));
            }
            return Err(self.classify(status, code, e.description, retry_after));
        }
        if status.is_success() {
            return match json {
                Some(mut v) => Ok(match v.get_mut("data") {
                    Some(data) => data.take(),
                    None => v,
                }),
                None => Err(Error::Protocol(format!(
                    "HTTP {status} with a body that is not JSON"
                ))),
            };
        }
        let description = status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_string();
        Err(self.classify(status, i64::from(status.as_u16()), description, retry_after))
    }

    fn classify(
        &self,
        status: StatusCode,
        code: i64,
        description: String,
        retry_after: Option<Duration>,
    ) -> Error {
        match code {
            429 => Error::RateLimited {
                retry_after: retry_after.unwrap_or_else(|| self.next_backoff()),
            },
            401 => Error::Unauthorized(description),
            _ if status.is_server_error() && code == i64::from(status.as_u16()) => {
                Error::Transport(format!("HTTP {status}: {description}"))
            }
            _ => Error::Api {
                status: status.as_u16(),
                code,
                description,
            },
        }
    }

    /// base × 2^(n-1) for the n-th rate limit in a row, capped, with ±25 % jitter so that
    /// several workers do not come back in step.
    fn next_backoff(&self) -> Duration {
        let n = self.inner.limited_in_a_row.fetch_add(1, Ordering::Relaxed);
        let RateLimitPolicy { base, max } = self.inner.rate;
        let nominal = base.saturating_mul(1 << n.min(16)).min(max);
        let factor = rand::thread_rng().gen_range(0.75..=1.25);
        nominal.mul_f64(factor).min(max)
    }

    /// `GET /me`: the bot itself; checks the credentials.
    pub async fn me(&self) -> Result<UserView, Error> {
        parse(self.call(Method::GET, "/me", None).await?)
    }

    /// `GET /users/:id`.
    pub async fn user(&self, user_id: &str) -> Result<UserView, Error> {
        if !crate::config::is_uuid(user_id) {
            return Err(Error::Invalid(format!("{user_id:?} is not a user id")));
        }
        parse(
            self.call(Method::GET, &format!("/users/{user_id}"), None)
                .await?,
        )
    }

    /// `GET /conversations/:id`: its category and participants.
    pub async fn conversation(&self, conversation_id: &str) -> Result<ConversationView, Error> {
        if !crate::config::is_uuid(conversation_id) {
            return Err(Error::Invalid(format!(
                "{conversation_id:?} is not a conversation id"
            )));
        }
        parse(
            self.call(
                Method::GET,
                &format!("/conversations/{conversation_id}"),
                None,
            )
            .await?,
        )
    }

    /// Sends `messages` in order, in as few `POST /messages` requests as the limits allow.
    /// Repeating this after a failure is safe: Mixin ignores a message whose `message_id` it
    /// already has, or refuses the request naming `message_id` ([`Error::KnownMessageId`]). A
    /// refused request is then sent again one message at a time, and a message refused alone
    /// for its id is one Mixin has: delivered, not failed.
    pub async fn post_messages(&self, messages: &[MessageRequest]) -> Result<(), Error> {
        for (body, batch) in packed(messages)? {
            match self.call(Method::POST, "/messages", Some(body)).await {
                Ok(_) => {}
                Err(Error::KnownMessageId(_)) if batch.len() > 1 => {
                    for m in batch {
                        let (body, _) = packed(std::slice::from_ref(m))?
                            .pop()
                            .ok_or_else(|| Error::Invalid("an empty request".into()))?;
                        match self.call(Method::POST, "/messages", Some(body)).await {
                            Ok(_) => {}
                            Err(Error::KnownMessageId(_)) => already_delivered(m),
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(Error::KnownMessageId(_)) => batch.iter().for_each(already_delivered),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `POST /attachments`: a new attachment with its upload URL.
    pub async fn create_attachment(&self) -> Result<AttachmentView, Error> {
        parse(
            self.call(Method::POST, "/attachments", Some(b"{}".to_vec()))
                .await?,
        )
    }

    /// `GET /attachments/:id`: where to download an attachment.
    pub async fn attachment(&self, attachment_id: &str) -> Result<AttachmentView, Error> {
        if !crate::config::is_uuid(attachment_id) {
            return Err(Error::Invalid(format!(
                "{attachment_id:?} is not an attachment id"
            )));
        }
        parse(
            self.call(Method::GET, &format!("/attachments/{attachment_id}"), None)
                .await?,
        )
    }

    /// Uploads the bytes of an attachment to its presigned URL (no token: the URL is one).
    pub async fn upload(&self, upload_url: &str, data: Vec<u8>) -> Result<(), Error> {
        let response = self
            .inner
            .http
            .put(upload_url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("x-amz-acl", "public-read")
            .body(data)
            .send()
            .await
            .map_err(transport)?;
        plain_status(response.status(), "upload")
    }

    /// Downloads from a presigned URL; `None` when the file is larger than `limit` bytes.
    pub async fn download(&self, view_url: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let response = self
            .inner
            .http
            .get(view_url)
            .send()
            .await
            .map_err(transport)?;
        plain_status(response.status(), "download")?;
        read_limited(response, limit).await
    }

    /// `POST /acknowledgements` with status READ, at most [`MAX_ACKS`] per request.
    pub async fn acknowledge(&self, message_ids: &[String]) -> Result<(), Error> {
        for chunk in message_ids.chunks(MAX_ACKS) {
            let acks: Vec<AckRequest> = chunk
                .iter()
                .map(|id| AckRequest {
                    message_id: id.clone(),
                    status: "READ".into(),
                })
                .collect();
            let body = serde_json::to_vec(&acks).map_err(|e| Error::Protocol(e.to_string()))?;
            self.call(Method::POST, "/acknowledgements", Some(body))
                .await?;
        }
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Protocol(format!("unexpected answer: {e}")))
}

/// Storage hosts answer with plain HTTP statuses.
fn plain_status(status: StatusCode, what: &str) -> Result<(), Error> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(Error::Transport(format!("{what}: HTTP {status}")))
    } else {
        Err(Error::Api {
            status: status.as_u16(),
            code: i64::from(status.as_u16()),
            description: format!("{what} refused"),
        })
    }
}

/// The body, unless it is larger than `limit` bytes (then `None`, without reading the rest).
async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, Error> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Whether the `extra` of a 10002 names the `message_id` field (`{"field":"message_id"}`, or
/// the name anywhere in it: Mixin documents only that details are in `extra`).
fn names_message_id(extra: Option<&Value>) -> bool {
    match extra {
        Some(Value::String(s)) => s.contains("message_id"),
        Some(Value::Array(a)) => a.iter().any(|v| names_message_id(Some(v))),
        Some(Value::Object(o)) => o
            .iter()
            .any(|(k, v)| k == "message_id" || names_message_id(Some(v))),
        _ => false,
    }
}

fn already_delivered(m: &MessageRequest) {
    tracing::info!(message = %m.message_id, "Mixin already has this message; counted as delivered");
}

/// Packs messages, in order, into JSON array bodies of at most [`MAX_BATCH_MESSAGES`] messages
/// and [`MAX_BATCH_BYTES`] bytes.
pub fn batches(messages: &[MessageRequest]) -> Result<Vec<Vec<u8>>, Error> {
    Ok(packed(messages)?
        .into_iter()
        .map(|(body, _)| body)
        .collect())
}

/// One request body and the messages it holds.
type Packed<'a> = (Vec<u8>, &'a [MessageRequest]);

/// [`batches`], each body with the messages it holds.
fn packed(messages: &[MessageRequest]) -> Result<Vec<Packed<'_>>, Error> {
    let mut bodies = Vec::new();
    let mut body = Vec::new();
    let mut count = 0;
    let mut first = 0;
    for (i, m) in messages.iter().enumerate() {
        let json = serde_json::to_vec(m).map_err(|e| Error::Protocol(e.to_string()))?;
        if json.len() + 2 > MAX_BATCH_BYTES {
            return Err(Error::Invalid(format!(
                "message {} is {} bytes, over the {MAX_BATCH_BYTES}-byte request limit",
                m.message_id,
                json.len()
            )));
        }
        // `[`, the messages, `,` between them, `]`.
        if count == MAX_BATCH_MESSAGES || body.len() + json.len() + 2 > MAX_BATCH_BYTES {
            body.push(b']');
            bodies.push((std::mem::take(&mut body), &messages[first..i]));
            count = 0;
            first = i;
        }
        body.push(if count == 0 { b'[' } else { b',' });
        body.extend_from_slice(&json);
        count += 1;
    }
    if count > 0 {
        body.push(b']');
        bodies.push((body, &messages[first..]));
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize, data_len: usize) -> MessageRequest {
        MessageRequest {
            conversation_id: "c".into(),
            recipient_id: String::new(),
            message_id: format!("m{i}"),
            category: "PLAIN_TEXT".into(),
            data_base64: "x".repeat(data_len),
            representative_id: String::new(),
            quote_message_id: String::new(),
            silent: false,
        }
    }

    fn ids(body: &[u8]) -> Vec<String> {
        let v: Vec<MessageRequest> = serde_json::from_slice(body).unwrap();
        v.into_iter().map(|m| m.message_id).collect()
    }

    #[test]
    fn batches_respect_both_limits_and_keep_order() {
        let many: Vec<_> = (0..250).map(|i| msg(i, 10)).collect();
        let bodies = batches(&many).unwrap();
        assert_eq!(bodies.len(), 3);
        assert_eq!(ids(&bodies[0]).len(), 100);
        assert_eq!(ids(&bodies[2]).len(), 50);
        let all: Vec<String> = bodies.iter().flat_map(|b| ids(b)).collect();
        assert_eq!(
            all,
            many.iter()
                .map(|m| m.message_id.clone())
                .collect::<Vec<_>>()
        );

        let big: Vec<_> = (0..7).map(|i| msg(i, 30_000)).collect();
        let bodies = batches(&big).unwrap();
        assert!(bodies.iter().all(|b| b.len() <= MAX_BATCH_BYTES));
        assert_eq!(bodies.iter().map(|b| ids(b).len()).sum::<usize>(), 7);
        assert_eq!(bodies.len(), 2);

        assert!(matches!(
            batches(&[msg(0, MAX_BATCH_BYTES)]),
            Err(Error::Invalid(_))
        ));
        assert!(batches(&[]).unwrap().is_empty());
    }
}
