//! Per-request Ed25519 JWTs as Mixin bots sign them, and their verification (for the fake).
//!
//! Header `{"alg":"EdDSA","typ":"JWT"}`; claims `uid`, `sid`, `iat`, `exp`, `jti` (a fresh UUID),
//! `sig` = lowercase hex of SHA-256(METHOD + URI + BODY) where URI is path plus query and BODY
//! the exact bytes sent, and `scp` = `"FULL"`. Every request gets its own token: Mixin refuses
//! replayed tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SessionKey;

/// How long a token stays valid (the Node SDK's choice; each token is used once anyway).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

const HEADER_JSON: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

/// The claims of a request token. Fields are in alphabetical order so that the serialized JSON
/// matches what the Go SDK produces (and the fixtures' vectors) byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub scp: String,
    pub sid: String,
    pub sig: String,
    pub uid: String,
}

/// Signs request tokens for one bot session.
#[derive(Debug, Clone)]
pub struct Signer {
    uid: String,
    sid: String,
    key: SessionKey,
}

/// Lowercase hex of SHA-256(METHOD + URI + BODY).
pub fn request_digest(method: &str, uri: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(uri.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    pub fn new(uid: impl Into<String>, sid: impl Into<String>, key: SessionKey) -> Self {
        Self {
            uid: uid.into(),
            sid: sid.into(),
            key,
        }
    }

    /// A fresh token for one request: now, a new `jti`, valid for [`TOKEN_LIFETIME`].
    pub fn sign_request(&self, method: &str, uri: &str, body: &[u8]) -> String {
        let iat = now_secs();
        self.token(
            method,
            uri,
            body,
            iat,
            iat + TOKEN_LIFETIME.as_secs(),
            &uuid::Uuid::new_v4().to_string(),
        )
    }

    /// A token with the given times and `jti` (deterministic: Ed25519 signatures are).
    pub fn token(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        iat: u64,
        exp: u64,
        jti: &str,
    ) -> String {
        let claims = Claims {
            exp,
            iat,
            jti: jti.into(),
            scp: "FULL".into(),
            sid: self.sid.clone(),
            sig: request_digest(method, uri, body),
            uid: self.uid.clone(),
        };
        // Serializing a struct of strings and integers cannot fail.
        let claims_json = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER_JSON),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signature = self.key.signing_key().sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the header is not EdDSA")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token signs another request")]
    WrongRequest,
}

/// Checks a token as the Mixin server would: the header, the Ed25519 signature with `public`,
/// the expiry against `now`, and that `sig` covers this very request. Returns the claims for
/// the caller to check `uid`, `sid` and `jti` reuse.
pub fn verify(
    token: &str,
    public: &VerifyingKey,
    method: &str,
    uri: &str,
    body: &[u8],
    now: u64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed("not base64url"))
    };
    let header: serde_json::Value = serde_json::from_slice(&decode(header)?)
        .map_err(|_| TokenError::Malformed("header is not JSON"))?;
    if header["alg"] != "EdDSA" {
        return Err(TokenError::Algorithm);
    }
    let signature = Signature::from_slice(&decode(signature)?)
        .map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    public
        .verify(&token.as_bytes()[..signed_len], &signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(claims)?)
        .map_err(|_| TokenError::Malformed("claims are incomplete"))?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.sig != request_digest(method, uri, body) {
        return Err(TokenError::WrongRequest);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let seed: [u8; 32] = [7; 32];
        Signer::new("u", "s", SessionKey::from_seed(&seed))
    }

    #[test]
    fn verifies_its_own_tokens_and_rejects_tampering() {
        let s = signer();
        let public = s.key.public_key();
        let t = s.sign_request("POST", "/messages", b"[]");
        let claims = verify(&t, &public, "POST", "/messages", b"[]", now_secs()).unwrap();
        assert_eq!((claims.uid.as_str(), claims.sid.as_str()), ("u", "s"));
        assert_eq!(claims.scp, "FULL");
        assert!(uuid::Uuid::try_parse(&claims.jti).is_ok());

        assert_eq!(
            verify(&t, &public, "POST", "/messages", b"[{}]", now_secs()),
            Err(TokenError::WrongRequest)
        );
        assert_eq!(
            verify(&t, &public, "GET", "/messages", b"[]", now_secs()),
            Err(TokenError::WrongRequest)
        );
        assert_eq!(
            verify(&t, &public, "POST", "/messages", b"[]", claims.exp),
            Err(TokenError::Expired)
        );
        let other = SessionKey::from_seed(&[8; 32]).public_key();
        assert_eq!(
            verify(&t, &other, "POST", "/messages", b"[]", now_secs()),
            Err(TokenError::Signature)
        );
        let mut forged: Vec<&str> = t.split('.').collect();
        let fake_claims = URL_SAFE_NO_PAD.encode(r#"{"uid":"x"}"#);
        forged[1] = &fake_claims;
        assert_eq!(
            verify(&forged.join("."), &public, "POST", "/messages", b"[]", 0),
            Err(TokenError::Signature)
        );
        assert!(matches!(
            verify("a.b", &public, "GET", "/", b"", 0),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn each_request_gets_a_fresh_jti() {
        let s = signer();
        assert_ne!(
            s.sign_request("GET", "/me", b""),
            s.sign_request("GET", "/me", b"")
        );
    }
}
