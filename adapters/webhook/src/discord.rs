//! Discord execute-webhook details: the URLs of a webhook's messages, message ids, and how
//! Discord's answers map to gateway errors.
//!
//! A webhook URL (`https://discord.com/api/webhooks/{id}/{token}`) is the webhook's credential, so
//! nothing here puts it (or its token) into an error message.

use rumgate_gateway::GatewayError;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// Discord's JSON error code for a message that does not exist (or no longer does).
pub const UNKNOWN_MESSAGE: i64 = 10008;

/// Waits longer than this (a day) are clamped.
const MAX_RETRY_SECS: f64 = 86_400.0;

/// The execute URL with `wait=true`, so that Discord answers with the message it created (and
/// its id). Every other query parameter (`thread_id` …) is kept; an existing `wait` is replaced.
pub fn execute_url(base: &Url) -> Url {
    let kept: Vec<(String, String)> = base
        .query_pairs()
        .filter(|(k, _)| k != "wait")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = base.clone();
    url.set_fragment(None);
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("wait", "true");
    url
}

/// `{webhook}/messages/{message_id}`, with the link's `thread_id` if it has one (a message in a
/// thread is only found with it). `message_id` must be a snowflake (checked, since it becomes a
/// path segment).
pub fn message_url(base: &Url, message_id: &str) -> Result<Url, GatewayError> {
    if !is_snowflake(message_id) {
        return Err(GatewayError::Invalid(format!(
            "{message_id:?} is not a Discord message id"
        )));
    }
    let thread = base
        .query_pairs()
        .find(|(k, _)| k == "thread_id")
        .map(|(_, v)| v.into_owned());
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| GatewayError::Permanent("the Discord webhook URL has no path".into()))?
        .pop_if_empty()
        .extend(["messages", message_id]);
    if let Some(t) = thread {
        url.query_pairs_mut().append_pair("thread_id", &t);
    }
    Ok(url)
}

/// Whether `id` looks like a Discord snowflake (a decimal u64). Parts delivered before in-place
/// edits existed carry the delivery's `webhook-id` (`msg_…`) instead.
pub fn is_snowflake(id: &str) -> bool {
    (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// The `id` of the message object Discord answers a `wait=true` execute with.
pub fn answered_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = match v.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    is_snowflake(&id).then_some(id)
}

/// Whether an answer is Discord's 404 "Unknown Message" (code 10008).
pub fn is_unknown_message(status: u16, answer: Option<&Value>) -> bool {
    status == 404
        && answer.and_then(|v| v.get("code")).and_then(Value::as_i64) == Some(UNKNOWN_MESSAGE)
}

/// How long a 429 asks us to wait: the body's `retry_after` (seconds, fractional) and/or the
/// `Retry-After` header (seconds). With both, the body's finer value is used unless it disagrees
/// with the header by more than a second — unversioned (v6) webhook URLs still answer
/// `retry_after` in milliseconds, and the header is seconds in every version.
pub fn retry_after(answer: Option<&Value>, header: Option<Duration>) -> Option<Duration> {
    let body = answer
        .and_then(|v| v.get("retry_after"))
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_SECS)));
    match (body, header) {
        (Some(b), Some(h)) if b > h + Duration::from_secs(1) => Some(h),
        (Some(b), _) => Some(b),
        (None, h) => h,
    }
}

/// Maps a non-2xx answer (other than an expected "Unknown Message") to a gateway error.
/// `secrets` are the parts of the URL that must not appear in the message.
pub fn error(
    status: reqwest::StatusCode,
    answer: Option<&Value>,
    retry: Option<Duration>,
    default_retry: Duration,
    url: &Url,
) -> GatewayError {
    let detail = detail(answer, url);
    match status.as_u16() {
        429 => GatewayError::RateLimited {
            retry_after: retry.unwrap_or(default_retry),
        },
        401 | 403 | 404 => GatewayError::Permanent(format!(
            "Discord refused the webhook ({status}{detail}): it was deleted, or the link's \
             webhook URL is wrong; create a new webhook and update the link"
        )),
        s if s >= 500 => GatewayError::Transient(format!("Discord answered {status}{detail}")),
        _ => GatewayError::Permanent(format!("Discord refused the request ({status}{detail})")),
    }
}

/// `: <message> (code N)` from Discord's JSON error, without any credential part of `url`.
fn detail(answer: Option<&Value>, url: &Url) -> String {
    let Some(v) = answer else {
        return String::new();
    };
    let mut out = String::new();
    if let Some(m) = v.get("message").and_then(Value::as_str) {
        out.push_str(": ");
        out.extend(m.chars().take(200));
    }
    if let Some(c) = v.get("code").and_then(Value::as_i64) {
        out.push_str(&format!(" (code {c})"));
    }
    scrub(out, url)
}

/// Removes the URL, its long path segments (the token) and its query values from `s`.
fn scrub(mut s: String, url: &Url) -> String {
    let mut secrets: Vec<String> = vec![url.as_str().to_string()];
    secrets.extend(
        url.path_segments()
            .into_iter()
            .flatten()
            .filter(|seg| seg.len() >= 16)
            .map(str::to_string),
    );
    secrets.extend(
        url.query_pairs()
            .filter(|(_, v)| v.len() >= 8)
            .map(|(_, v)| v.into_owned()),
    );
    for secret in secrets {
        s = s.replace(&secret, "***");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn execute_url_adds_wait_and_keeps_the_thread() {
        let base = url("https://discord.com/api/webhooks/1/tok");
        assert_eq!(
            execute_url(&base).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true"
        );
        let threaded = url("https://discord.com/api/webhooks/1/tok?thread_id=42&wait=false");
        assert_eq!(
            execute_url(&threaded).as_str(),
            "https://discord.com/api/webhooks/1/tok?thread_id=42&wait=true"
        );
    }

    #[test]
    fn message_urls_keep_only_the_thread() {
        let base = url("https://discord.com/api/webhooks/1/tok/?thread_id=42&wait=true");
        assert_eq!(
            message_url(&base, "123").expect("url").as_str(),
            "https://discord.com/api/webhooks/1/tok/messages/123?thread_id=42"
        );
        assert_eq!(
            message_url(&url("https://discord.com/api/webhooks/1/tok"), "9")
                .expect("url")
                .as_str(),
            "https://discord.com/api/webhooks/1/tok/messages/9"
        );
        // Legacy ids and anything that could walk the path are refused.
        for bad in ["msg_0123", "../x", "", "1/2", "123456789012345678901"] {
            assert!(message_url(&base, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answered_ids_must_be_snowflakes() {
        assert_eq!(
            answered_id(br#"{"id":"1150000000000000001","content":"x"}"#),
            Some("1150000000000000001".into())
        );
        assert_eq!(answered_id(br#"{"id":17}"#), Some("17".into()));
        assert_eq!(answered_id(br#"{"id":"../x"}"#), None);
        assert_eq!(answered_id(b""), None);
    }

    #[test]
    fn retry_after_prefers_the_body_unless_it_is_milliseconds() {
        let secs = json!({"retry_after": 0.25});
        assert_eq!(
            retry_after(Some(&secs), None),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(Some(&secs), Some(Duration::from_secs(1))),
            Some(Duration::from_millis(250))
        );
        let millis = json!({"retry_after": 1500});
        assert_eq!(
            retry_after(Some(&millis), Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(None, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(Some(&json!({"retry_after": -1})), None), None);
    }

    #[test]
    fn errors_never_carry_the_token() {
        let u =
            url("https://discord.com/api/webhooks/1/very-secret-token-value?thread_id=123456789");
        let echo = json!({
            "message": format!("bad url {u} token very-secret-token-value thread 123456789"),
            "code": 50027,
        });
        for status in [400, 401, 403, 404, 500] {
            let e = error(
                reqwest::StatusCode::from_u16(status).expect("status"),
                Some(&echo),
                None,
                Duration::from_secs(5),
                &u,
            );
            let m = e.to_string();
            assert!(!m.contains("very-secret"), "{m}");
            assert!(!m.contains("123456789"), "{m}");
            assert!(m.contains("code 50027"), "{m}");
        }
        assert!(matches!(
            error(reqwest::StatusCode::UNAUTHORIZED, None, None, Duration::ZERO, &u),
            GatewayError::Permanent(m) if m.contains("create a new webhook")
        ));
        assert!(matches!(
            error(
                reqwest::StatusCode::BAD_GATEWAY,
                None,
                None,
                Duration::ZERO,
                &u
            ),
            GatewayError::Transient(_)
        ));
        assert_eq!(
            error(
                reqwest::StatusCode::TOO_MANY_REQUESTS,
                None,
                None,
                Duration::from_secs(5),
                &u
            ),
            GatewayError::RateLimited {
                retry_after: Duration::from_secs(5)
            }
        );
    }
}
