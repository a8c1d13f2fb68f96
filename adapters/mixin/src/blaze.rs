//! The Blaze websocket: gzip-compressed JSON in binary frames (subprotocol `Mixin-Blaze-1`),
//! `LIST_PENDING_MESSAGES` on connect, keep-alive pings, reconnection with backoff and jitter.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::auth::Signer;
use crate::client::ErrorBody;
use crate::convert::null_as_default;
use crate::error::Error;
use crate::health::HealthBoard;

/// The websocket subprotocol Mixin speaks (the Kotlin SDK's `MixinBot-Blaze-1` is wrong).
pub const SUBPROTOCOL: &str = "Mixin-Blaze-1";
/// Decompressed frames larger than this are refused (a gzip bomb guard).
pub const MAX_FRAME_BYTES: u64 = 16 * 1024 * 1024;

pub const LIST_PENDING_MESSAGES: &str = "LIST_PENDING_MESSAGES";
pub const CREATE_MESSAGE: &str = "CREATE_MESSAGE";
pub const ACKNOWLEDGE_MESSAGE_RECEIPT: &str = "ACKNOWLEDGE_MESSAGE_RECEIPT";
pub const ERROR_ACTION: &str = "ERROR";

/// One Blaze frame: a client request (`params`), a server push (`data`) or a failure (`error`).
/// Unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlazeMessage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The `data` of a `CREATE_MESSAGE` frame (also of receipts). Unknown keys are ignored, absent
/// ones default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageView {
    #[serde(rename = "type")]
    #[serde(deserialize_with = "null_as_default")]
    pub kind: String,
    #[serde(deserialize_with = "null_as_default")]
    pub representative_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub quote_message_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub conversation_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub user_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub session_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub message_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub category: String,
    /// The payload in standard base64 (older servers, still sent).
    #[serde(deserialize_with = "null_as_default")]
    pub data: String,
    /// The payload in URL-safe base64 without padding (preferred).
    #[serde(deserialize_with = "null_as_default")]
    pub data_base64: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: String,
    /// `CREATE_MESSAGE` live, `LIST_PENDING_MESSAGES` for backlog, `ACKNOWLEDGE_MESSAGE_RECEIPT`
    /// for receipts of our own messages.
    #[serde(deserialize_with = "null_as_default")]
    pub source: String,
    #[serde(deserialize_with = "null_as_default")]
    pub silent: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub expire_in: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub created_at: String,
    #[serde(deserialize_with = "null_as_default")]
    pub updated_at: String,
}

impl BlazeMessage {
    pub fn request(action: &str, params: Option<Value>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            action: action.into(),
            params,
            ..Self::default()
        }
    }
}

/// gzip(JSON): what travels in one binary websocket message.
pub fn encode_frame(msg: &BlazeMessage) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 2 + 32), Compression::fast());
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Protocol(format!("gzip: {e}")))
}

/// Reads one binary websocket message: gunzip (at most [`MAX_FRAME_BYTES`]) and parse.
pub fn decode_frame(bytes: &[u8]) -> Result<BlazeMessage, Error> {
    let mut json = Vec::new();
    GzDecoder::new(bytes)
        .take(MAX_FRAME_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| Error::Protocol(format!("frame is not gzip: {e}")))?;
    if json.len() as u64 > MAX_FRAME_BYTES {
        return Err(Error::Protocol("frame larger than 16 MiB".into()));
    }
    serde_json::from_slice(&json).map_err(|e| Error::Protocol(format!("frame is not JSON: {e}")))
}

/// Timings of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlazeTuning {
    /// How often to ping (the Go SDK pings every 9 s).
    pub ping_interval: Duration,
    /// Reconnect when nothing (frame or pong) came for this long.
    pub dead_after: Duration,
    pub connect_timeout: Duration,
    /// First and largest pause between reconnection attempts (doubling, with jitter).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// The least pause after Mixin refused the credentials: retrying fast cannot help.
    pub unauthorized_wait: Duration,
}

impl Default for BlazeTuning {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            // A connection that was up is retried almost at once (messages pile up meanwhile);
            // failures in a row back off from there.
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            unauthorized_wait: Duration::from_secs(60),
        }
    }
}

/// How a connection ended.
enum Ended {
    Cancelled,
    /// Dropped or failed; `listed` says whether it had come up (reply to the pending list).
    Dropped {
        error: String,
        listed: bool,
    },
    Unauthorized(String),
}

/// Keeps one Blaze connection up and forwards every received message to `out`.
pub(crate) struct Connection {
    pub url: Url,
    pub signer: Signer,
    pub tuning: BlazeTuning,
    pub health: Arc<HealthBoard>,
}

impl Connection {
    /// Runs until `cancel`: connect, list pending messages, read; on any failure reconnect after
    /// an exponential backoff with jitter (reset once a connection came up).
    ///
    /// `acks` carries the ids of messages the node has stored; each is acknowledged with an
    /// `ACKNOWLEDGE_MESSAGE_RECEIPT` on the live connection. An ack lost with a dropped
    /// connection is harmless: Mixin lists the message again and the gateway acknowledges the
    /// repeat without storing it twice.
    pub(crate) async fn run(
        self,
        out: mpsc::Sender<MessageView>,
        mut acks: mpsc::UnboundedReceiver<String>,
        cancel: CancellationToken,
    ) {
        let t = self.tuning;
        let mut backoff = t.reconnect_min;
        self.health.blaze_connecting();
        loop {
            let wait = match self.session(&out, &mut acks, &cancel).await {
                Ended::Cancelled => break,
                Ended::Dropped { error, listed } => {
                    tracing::warn!(%error, "Blaze connection lost; reconnecting");
                    self.health.blaze_down(error);
                    if listed {
                        backoff = t.reconnect_min;
                    }
                    jitter(backoff)
                }
                Ended::Unauthorized(reason) => {
                    tracing::error!(%reason, "Blaze refused the credentials");
                    self.health.blaze_unauthorized(format!(
                        "Mixin refused the Blaze connection (401: {reason}); check session_id and \
                         session_private_key in the keystore"
                    ));
                    jitter(backoff).max(t.unauthorized_wait)
                }
            };
            backoff = (backoff * 2).min(t.reconnect_max);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.health.blaze_stopped();
    }

    async fn session(
        &self,
        out: &mpsc::Sender<MessageView>,
        acks: &mut mpsc::UnboundedReceiver<String>,
        cancel: &CancellationToken,
    ) -> Ended {
        let dropped = |error: String| Ended::Dropped {
            error,
            listed: false,
        };
        let mut request = match self.url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => return dropped(format!("bad Blaze URL: {e}")),
        };
        // Mixin signs the handshake over "GET" + "/" + "", whatever the URL's path.
        let token = self.signer.sign_request("GET", "/", b"");
        let headers = request.headers_mut();
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(v) => headers.insert("Authorization", v),
            Err(e) => return dropped(e.to_string()),
        };
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let connect = tokio::time::timeout(
            self.tuning.connect_timeout,
            // Nagle off: acks and pings are small and should not wait for the server's ACK.
            tokio_tungstenite::connect_async_with_config(request, None, true),
        );
        let ws = tokio::select! {
            () = cancel.cancelled() => return Ended::Cancelled,
            r = connect => match r {
                Err(_) => return dropped("connect timed out".into()),
                Ok(Err(tungstenite::Error::Http(resp))) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Ended::Unauthorized("handshake answered 401".into());
                }
                Ok(Err(e)) => return dropped(format!("connect: {e}")),
                Ok(Ok((ws, _))) => ws,
            },
        };
        let (mut sink, mut stream) = ws.split();

        let list = BlazeMessage::request(LIST_PENDING_MESSAGES, None);
        let frame = match encode_frame(&list) {
            Ok(f) => f,
            Err(e) => return dropped(e.to_string()),
        };
        if let Err(e) = sink.send(Message::Binary(frame.into())).await {
            return dropped(format!("send: {e}"));
        }

        let mut listed = false;
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.tuning.ping_interval,
            self.tuning.ping_interval,
        );
        let end = |error: String, listed: bool| Ended::Dropped { error, listed };
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ended::Cancelled;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.tuning.dead_after {
                        return end(format!(
                            "nothing heard for {}s", last_heard.elapsed().as_secs()), listed);
                    }
                    if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                        return end(format!("ping: {e}"), listed);
                    }
                    continue;
                }
                ack = acks.recv() => {
                    let Some(message_id) = ack else { return Ended::Cancelled };
                    if let Err(e) = self.acknowledge(&mut sink, &message_id).await {
                        return end(e, listed);
                    }
                    continue;
                }
                frame = stream.next() => frame,
            };
            let bytes = match frame {
                None => return end("closed by the server".into(), listed),
                Some(Err(e)) => return end(e.to_string(), listed),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Close(reason))) => {
                    let reason = reason.map(|r| r.reason.to_string()).unwrap_or_default();
                    return end(format!("closed by the server: {reason}"), listed);
                }
                Some(Ok(Message::Text(_))) => {
                    // Blaze frames are always gzip in binary messages.
                    tracing::warn!("ignoring a text frame from Blaze");
                    last_heard = Instant::now();
                    continue;
                }
                Some(Ok(_)) => {
                    last_heard = Instant::now();
                    continue;
                }
            };
            last_heard = Instant::now();
            let msg = match decode_frame(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable Blaze frame");
                    continue;
                }
            };
            if let Some(error) = &msg.error {
                if error.code == 401 {
                    return Ended::Unauthorized(error.description.clone());
                }
                tracing::warn!(action = %msg.action, code = error.code, description = %error.description,
                    "Blaze reported an error");
                continue;
            }
            match msg.action.as_str() {
                LIST_PENDING_MESSAGES if msg.id == list.id => {
                    listed = true;
                    self.health.blaze_up();
                    tracing::debug!("Blaze connected, pending messages listed");
                }
                CREATE_MESSAGE => {
                    // Messages flowing prove the connection is up, even if the reply to the
                    // pending list never came (its shape is inferred, not documented).
                    if !listed {
                        listed = true;
                        self.health.blaze_up();
                    }
                    let data = msg.data.unwrap_or_default();
                    let view = match serde_json::from_value::<MessageView>(data.clone()) {
                        Ok(view) => view,
                        Err(e) => {
                            // Unreadable now is unreadable on every re-delivery: acknowledge it
                            // (when it has an id) so Mixin does not repeat it for a week.
                            let Some(id) = data.get("message_id").and_then(Value::as_str) else {
                                tracing::warn!(error = %e, "ignoring a CREATE_MESSAGE frame without a message");
                                continue;
                            };
                            tracing::warn!(message = %id, error = %e,
                                "an unreadable Mixin message acknowledged without bridging it");
                            if let Err(e) = self.acknowledge(&mut sink, id).await {
                                return end(e, listed);
                            }
                            continue;
                        }
                    };
                    if view.source == ACKNOWLEDGE_MESSAGE_RECEIPT || view.message_id.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return Ended::Cancelled,
                        sent = out.send(view) => if sent.is_err() {
                            return Ended::Cancelled;
                        },
                    }
                    // Waiting for the node is not the server being silent.
                    last_heard = Instant::now();
                }
                // Receipts for what we sent, replies to acknowledgements, anything newer.
                _ => {}
            }
        }
    }
}

impl Connection {
    /// Sends an `ACKNOWLEDGE_MESSAGE_RECEIPT` (status READ) for `message_id`.
    async fn acknowledge<S>(&self, sink: &mut S, message_id: &str) -> Result<(), String>
    where
        S: futures::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let ack = BlazeMessage::request(
            ACKNOWLEDGE_MESSAGE_RECEIPT,
            Some(serde_json::json!({"message_id": message_id, "status": "READ"})),
        );
        let frame = encode_frame(&ack).map_err(|e| e.to_string())?;
        sink.send(Message::Binary(frame.into()))
            .await
            .map_err(|e| format!("acknowledge: {e}"))
    }
}

/// 50–100 % of `d`, so that many clients do not reconnect in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_gzip() {
        let msg = BlazeMessage::request(
            ACKNOWLEDGE_MESSAGE_RECEIPT,
            Some(serde_json::json!({"message_id": "m", "status": "READ"})),
        );
        let bytes = encode_frame(&msg).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(decode_frame(&bytes).unwrap(), msg);
        assert!(
            decode_frame(b"{\"id\":\"x\"}").is_err(),
            "plain JSON is refused"
        );
    }

    #[test]
    fn refuses_gzip_bombs() {
        let huge = vec![b' '; (MAX_FRAME_BYTES + 10) as usize];
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&huge).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert!(matches!(decode_frame(&bomb), Err(Error::Protocol(m)) if m.contains("16 MiB")));
    }
}
