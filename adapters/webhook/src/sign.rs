//! Signatures: Standard Webhooks (HMAC-SHA256 over `id.timestamp.body`) and GitHub
//! (`sha256=` HMAC over the body). Comparisons are constant-time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a Standard Webhooks secret cannot be used, or `None`: a `whsec_…` secret must be base64
/// after the prefix (as the reference libraries require). Links are refused with this at
/// creation; GitHub and plain secrets are any shared string and need no check.
pub fn standard_secret_problem(secret: &str) -> Option<&'static str> {
    let rest = secret.strip_prefix("whsec_")?;
    match B64.decode(rest) {
        Ok(key) if !key.is_empty() => None,
        Ok(_) => Some("a whsec_ secret needs a base64 key after the prefix; this one is empty"),
        Err(_) => Some("a whsec_ secret must be base64 after the prefix; this one is not"),
    }
}

/// The HMAC key of a `whsec_…` secret (base64 after the prefix). A secret without the prefix
/// that is not valid base64 is used as raw bytes, as the reference libraries' lenient mode does;
/// a prefixed one that is not base64 is refused when the link is made
/// ([`standard_secret_problem`]), so only links stored before that check reach the fallback.
pub fn standard_key(secret: &str) -> Vec<u8> {
    let s = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec())
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).unwrap_or_else(|_| {
        HmacSha256::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable!("fixed key"))
    });
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `v1,<base64>` for a Standard Webhooks delivery.
pub fn standard_sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let sig = mac(
        &standard_key(secret),
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", B64.encode(sig))
}

/// True if any `v1,` entry of a space-separated signature header matches (key rotation);
/// unknown versions are skipped.
pub fn standard_verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let expected = mac(
        &standard_key(secret),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|sig| bool::from(sig.ct_eq(&expected)))
}

/// `sha256=<hex>` for a GitHub delivery.
pub fn github_sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret.as_bytes(), &[body])))
}

pub fn github_verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    bool::from(sig.ct_eq(&mac(secret.as_bytes(), &[body])))
}

/// Constant-time equality of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
