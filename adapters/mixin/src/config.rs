//! The account configuration: the bot keystore JSON (inline or from a file) and optional base
//! URLs, checked into an [`Account`] the client can use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use crate::b64::decode_base64_lenient;
use crate::error::Error;

/// Where the Mixin HTTP API lives.
pub const DEFAULT_API_URL: &str = "https://api.mixin.one";
/// Where the Blaze websocket lives.
pub const DEFAULT_BLAZE_URL: &str = "wss://blaze.mixin.one/";
/// The first pause after a rate limit.
pub const DEFAULT_RATE_LIMIT_BACKOFF_MS: u64 = 1000;
/// Inbound images larger than this become a placeholder text; the node stores images up to
/// 360 KiB inline, so larger ones could not be mirrored anyway.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 360 * 1024;

/// A Mixin gateway account, as `POST /api/v1/gateways` takes it:
/// `{"keystore": {...}}` or `{"keystore_file": "/path/keystore.json"}`, plus test-only URLs.
///
/// `Debug` never prints the private key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MixinConfig {
    /// The keystore JSON downloaded from the Mixin developer dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore: Option<Keystore>,
    /// A file holding that JSON instead (keeps the secret out of the node's database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore_file: Option<PathBuf>,
    /// HTTP API base URL (default `https://api.mixin.one`); for tests and regional mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Blaze websocket URL (default `wss://blaze.mixin.one/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blaze_url: Option<String>,
    /// Inbound images above this many bytes are not downloaded (default 360 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_image_bytes: Option<u64>,
    /// The pause after a first rate limit (429), doubling while they continue (default 1000 ms;
    /// Mixin sends no `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_backoff_ms: Option<u64>,
}

/// The bot keystore. Both published shapes are accepted: the current one (`app_id`,
/// `session_id`, `session_private_key` = hex Ed25519 seed, `server_public_key`, …) and the older
/// one (`client_id`, `session_id`, `private_key` = base64url 64-byte Ed25519 key, `pin_token`, …).
/// Keys this adapter does not need (spend keys, PIN material) are not kept.
#[derive(Clone, Deserialize, Serialize)]
pub struct Keystore {
    #[serde(alias = "client_id", alias = "user_id")]
    pub app_id: String,
    pub session_id: String,
    #[serde(alias = "private_key")]
    pub session_private_key: Secret,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("app_id", &self.app_id)
            .field("session_id", &self.session_id)
            .field("session_private_key", &self.session_private_key)
            .finish()
    }
}

/// A secret string: `Debug` and `Display` print `***`; wiped from memory on drop. It serializes
/// as itself, for the node's database; the node's API and CLI mask it.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    /// The secret itself; call sites are the places where it is used, never logged.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The session's Ed25519 key. `Debug` prints `***`.
#[derive(Clone)]
pub struct SessionKey(SigningKey);

impl SessionKey {
    /// Decodes either published encoding: the 32-byte seed as hex (current keystores) or a
    /// 64-byte seed‖public key as base64url (older keystores; standard base64 and padding are
    /// tolerated). A 64-byte key whose public half does not match its seed is refused.
    pub fn parse(encoded: &str) -> Result<Self, String> {
        let s = encoded.trim();
        if s.is_empty() {
            return Err("is empty".into());
        }
        let bytes = Zeroizing::new(
            if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(s).map_err(|_| "is not valid hex".to_string())?
            } else {
                decode_base64_lenient(s).ok_or("is neither hex nor base64")?
            },
        );
        match bytes.len() {
            32 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&bytes);
                Ok(Self(SigningKey::from_bytes(&seed)))
            }
            64 => {
                let mut keypair = Zeroizing::new([0u8; 64]);
                keypair.copy_from_slice(&bytes);
                SigningKey::from_keypair_bytes(&keypair)
                    .map(Self)
                    .map_err(|_| {
                        "is a 64-byte key whose public half does not match its seed".to_string()
                    })
            }
            n => Err(format!(
                "decodes to {n} bytes; expected a 32-byte Ed25519 seed or a 64-byte private key"
            )),
        }
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Account {
    /// The bot's user id (= app id for bots).
    pub user_id: String,
    pub session_id: String,
    pub key: SessionKey,
    pub api_url: Url,
    pub blaze_url: Url,
    pub max_image_bytes: u64,
    pub rate_limit_backoff: Duration,
}

impl MixinConfig {
    /// An inline keystore with default URLs.
    pub fn from_keystore(keystore: Keystore) -> Self {
        Self {
            keystore: Some(keystore),
            ..Self::default()
        }
    }

    /// Checks everything (reading `keystore_file` if given) and reports every problem, each with
    /// its key name.
    pub fn validate(&self) -> Result<Account, Error> {
        let mut problems = Vec::new();
        let keystore = match (&self.keystore, &self.keystore_file) {
            (Some(k), None) => Some(k.clone()),
            (None, Some(path)) => match read_keystore(path) {
                Ok(k) => Some(k),
                Err(e) => {
                    problems.push(format!("keystore_file: {e}"));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push("keystore, keystore_file: give one of them, not both".into());
                None
            }
            (None, None) => {
                problems.push(
                    "keystore: missing (the bot keystore JSON, or keystore_file with its path)"
                        .into(),
                );
                None
            }
        };
        let mut key = None;
        if let Some(k) = &keystore {
            if !is_uuid(&k.app_id) {
                problems.push("keystore.app_id: not a UUID".into());
            }
            if !is_uuid(&k.session_id) {
                problems.push("keystore.session_id: not a UUID".into());
            }
            match SessionKey::parse(k.session_private_key.expose()) {
                Ok(k) => key = Some(k),
                Err(e) => problems.push(format!("keystore.session_private_key: {e}")),
            }
        }
        let api_url = check_url(
            "api_url",
            self.api_url.as_deref().unwrap_or(DEFAULT_API_URL),
            &["https", "http"],
            &mut problems,
        );
        let blaze_url = check_url(
            "blaze_url",
            self.blaze_url.as_deref().unwrap_or(DEFAULT_BLAZE_URL),
            &["wss", "ws"],
            &mut problems,
        );
        let max_image_bytes = self.max_image_bytes.unwrap_or(DEFAULT_MAX_IMAGE_BYTES);
        if max_image_bytes == 0 {
            problems.push("max_image_bytes: must be positive".into());
        }
        let backoff_ms = self
            .rate_limit_backoff_ms
            .unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF_MS);
        if !(1..=60_000).contains(&backoff_ms) {
            problems.push("rate_limit_backoff_ms: must be 1 to 60000".into());
        }
        match (keystore, key, api_url, blaze_url) {
            (Some(k), Some(key), Some(api_url), Some(blaze_url)) if problems.is_empty() => {
                Ok(Account {
                    user_id: k.app_id.to_ascii_lowercase(),
                    session_id: k.session_id.to_ascii_lowercase(),
                    key,
                    api_url,
                    blaze_url,
                    max_image_bytes,
                    rate_limit_backoff: Duration::from_millis(backoff_ms),
                })
            }
            _ => Err(Error::Config(problems)),
        }
    }
}

fn read_keystore(path: &std::path::Path) -> Result<Keystore, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    // The serde message never quotes the secret (no value of a string field is echoed back).
    serde_json::from_str(&text).map_err(|e| format!("{} is not a keystore: {e}", path.display()))
}

fn check_url(key: &str, value: &str, schemes: &[&str], problems: &mut Vec<String>) -> Option<Url> {
    match Url::parse(value) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host().is_some() => Some(u),
        Ok(_) => {
            problems.push(format!("{key}: must be a {} URL", schemes.join(" or ")));
            None
        }
        Err(e) => {
            problems.push(format!("{key}: {e}"));
            None
        }
    }
}

/// A hyphenated UUID string (any version), as Mixin writes them.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    const SEED_HEX: &str = "b2454fee95412b4600462e083a72fd722021a30861ad59b1eac5b6875a2e742c";
    const PUBLIC_HEX: &str = "655222bf5791c8eb656b0a9c4bb63f655e5cc3673bc3827cd596db6ce8915be7";
    const UID: &str = "5e9c2f1a-3b7d-4c8e-9a6f-1d2e3f4a5b6c";
    const SID: &str = "b1f4e6c2-8d3a-4f5b-a7c9-0e1d2c3b4a59";

    fn keypair_bytes() -> Vec<u8> {
        let mut b = hex::decode(SEED_HEX).unwrap();
        b.extend(hex::decode(PUBLIC_HEX).unwrap());
        b
    }

    #[test]
    fn accepts_both_published_key_encodings() {
        let engines = [
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD,
        ];
        let mut encodings = vec![SEED_HEX.to_string(), SEED_HEX.to_uppercase()];
        encodings.extend(engines.iter().map(|e| e.encode(keypair_bytes())));
        for enc in encodings {
            let key = SessionKey::parse(&enc).unwrap_or_else(|e| panic!("{enc}: {e}"));
            assert_eq!(
                hex::encode(key.public_key().as_bytes()),
                PUBLIC_HEX,
                "{enc}"
            );
        }
    }

    #[test]
    fn refuses_keys_of_the_wrong_size_or_with_a_foreign_public_half() {
        let mut wrong = keypair_bytes();
        wrong[40] ^= 1;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wrong);
        assert!(SessionKey::parse(&enc).unwrap_err().contains("public half"));
        assert!(SessionKey::parse("abcd").unwrap_err().contains("2 bytes"));
        assert!(SessionKey::parse("  ").unwrap_err().contains("empty"));
        assert!(SessionKey::parse("not a key!").is_err());
    }

    #[test]
    fn reads_both_keystore_shapes_and_ignores_keys_it_does_not_need() {
        let current: MixinConfig = serde_json::from_value(json!({"keystore": {
            "app_id": UID, "session_id": SID, "server_public_key": "00",
            "session_private_key": SEED_HEX, "spend_private_key": "ffff"}}))
        .unwrap();
        let legacy: MixinConfig = serde_json::from_value(json!({"keystore": {
            "client_id": UID, "session_id": SID, "pin_token": "x", "pin": "123456",
            "private_key": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(keypair_bytes())}}))
        .unwrap();
        for cfg in [current, legacy] {
            let acct = cfg.validate().unwrap();
            assert_eq!(acct.user_id, UID);
            assert_eq!(acct.session_id, SID);
            assert_eq!(hex::encode(acct.key.public_key().as_bytes()), PUBLIC_HEX);
            assert_eq!(acct.api_url.as_str(), "https://api.mixin.one/");
            assert_eq!(acct.blaze_url.as_str(), "wss://blaze.mixin.one/");
        }
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let cfg: MixinConfig = serde_json::from_value(json!({"keystore": {
            "app_id": UID, "session_id": SID, "session_private_key": SEED_HEX}}))
        .unwrap();
        let acct = cfg.validate().unwrap();
        for dbg in [format!("{cfg:?}"), format!("{acct:?}")] {
            assert!(!dbg.contains(SEED_HEX), "{dbg}");
            assert!(!dbg.contains("b2454fee"), "{dbg}");
            assert!(dbg.contains("***"), "{dbg}");
        }
    }

    #[test]
    fn reads_the_keystore_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        std::fs::write(
            &path,
            json!({"app_id": UID, "session_id": SID, "session_private_key": SEED_HEX}).to_string(),
        )
        .unwrap();
        let cfg: MixinConfig =
            serde_json::from_value(json!({"keystore_file": path, "api_url": "http://127.0.0.1:1"}))
                .unwrap();
        let acct = cfg.validate().unwrap();
        assert_eq!(acct.user_id, UID);
        assert_eq!(acct.api_url.as_str(), "http://127.0.0.1:1/");

        let missing: MixinConfig =
            serde_json::from_value(json!({"keystore_file": dir.path().join("nope.json")})).unwrap();
        let Err(Error::Config(problems)) = missing.validate() else {
            panic!("a missing file must be refused");
        };
        assert!(
            problems[0].starts_with("keystore_file: cannot read"),
            "{problems:?}"
        );
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let cfg: MixinConfig = serde_json::from_value(json!({
            "keystore": {"app_id": "bot", "session_id": SID, "session_private_key": "zz"},
            "api_url": "ftp://x", "blaze_url": "https://blaze", "max_image_bytes": 0}))
        .unwrap();
        let Err(Error::Config(problems)) = cfg.validate() else {
            panic!("must be refused");
        };
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "keystore.app_id",
                "keystore.session_private_key",
                "api_url",
                "blaze_url",
                "max_image_bytes"
            ],
            "{problems:?}"
        );
        let Err(Error::Config(problems)) = MixinConfig::default().validate() else {
            panic!("an empty config must be refused");
        };
        assert!(problems[0].starts_with("keystore: missing"), "{problems:?}");
        assert!(serde_json::from_value::<MixinConfig>(json!({"token": "x"})).is_err());
    }
}
