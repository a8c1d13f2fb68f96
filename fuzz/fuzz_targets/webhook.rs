//! An inbound webhook delivery: the signature / bearer check of each format, then the body →
//! message conversion (JSON, GitHub events, GitHub forms).
//!
//! Input is HTTP-shaped text: a first line `<format> <mode> [<now>]`, header lines, a blank
//! line, the body. `format` is standard | github | plain | slack | discord. In mode `verify` the
//! headers are checked as given (at `now`, Unix seconds); in mode `sign` the harness puts the
//! right signature or bearer secret in first, so that the body conversion is reached.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rumgate_webhook::{sign, verify_inbound, Format, LinkConfig};
use std::time::{Duration, UNIX_EPOCH};

/// The secrets the corpus was signed with (the fixtures' published test secrets).
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GITHUB_SECRET: &str = "rumgate-github-fixture-secret";
const PLAIN_SECRET: &str = "rumgate-plain-fixture-secret";

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = split_request(data) else {
        return;
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut words = first.split_whitespace();
    let (format, secret) = match words.next() {
        Some("standard") => (Format::Standard, STANDARD_SECRET),
        Some("github") => (Format::Github, GITHUB_SECRET),
        Some("plain") => (Format::Plain, PLAIN_SECRET),
        Some("slack") => (Format::Slack, PLAIN_SECRET),
        Some("discord") => (Format::Discord, PLAIN_SECRET),
        _ => return,
    };
    let signing = words.next() == Some("sign");
    let mut now = words.next().and_then(|n| n.parse::<u64>().ok());
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let signed = signing && sign_request(format, secret, &mut headers, body, &mut now);
    let cfg: LinkConfig = match serde_json::from_value(serde_json::json!({
        "format": format,
        "secret": secret,
    })) {
        Ok(c) => c,
        Err(e) => panic!("link config: {e}"),
    };
    // The harness's own clock line may be out of `SystemTime`'s range: not an input of the node.
    let Some(at) = UNIX_EPOCH.checked_add(Duration::from_secs(
        now.unwrap_or(rumgate_fuzz::NOW_MS / 1000),
    )) else {
        return;
    };
    let verdict = verify_inbound(&cfg, &headers, body, at);
    match verdict {
        Ok(inbound) => {
            assert!(
                !inbound.message_id.is_empty(),
                "an inbound hook without a dedup key"
            );
            if let Some(event) = &inbound.event {
                rumgate_fuzz::to_object(event);
            }
        }
        Err(e) => {
            let status = e.status();
            assert!((400..500).contains(&status), "{e} answers {status}");
            assert!(!e.code().is_empty());
            if signed {
                assert!(
                    !matches!(e.code(), "bad_signature" | "unauthorized"),
                    "a correctly signed delivery was refused: {e}"
                );
            }
        }
    }
});

/// The header block and the body, split at the first blank line.
fn split_request(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = data.windows(2).position(|w| w == b"\n\n")?;
    Some((&data[..at], &data[at + 2..]))
}

/// Puts the valid signature (or bearer secret) for `body` into `headers`; false when the
/// headers it would sign are missing or unusable.
fn sign_request(
    format: Format,
    secret: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    now: &mut Option<u64>,
) -> bool {
    let header = |h: &HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
    };
    match format {
        Format::Standard => {
            let (Some(id), Some(ts)) = (
                header(headers, "webhook-id"),
                header(headers, "webhook-timestamp"),
            ) else {
                return false;
            };
            // Sign what the verifier will read: the header as sent, digits only.
            let Some(when) = ts.parse::<u64>().ok().filter(|w| w.to_string() == ts) else {
                return false;
            };
            if id.is_empty() {
                return false;
            }
            now.get_or_insert(when);
            let sig = sign::standard_sign(secret, &id, when, body);
            set(headers, "webhook-signature", &sig)
        }
        Format::Github => set(
            headers,
            "x-hub-signature-256",
            &sign::github_sign(secret, body),
        ),
        Format::Plain => set(headers, "authorization", &format!("Bearer {secret}")),
        Format::Slack | Format::Discord => false,
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) -> bool {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
            true
        }
        Err(_) => false,
    }
}
