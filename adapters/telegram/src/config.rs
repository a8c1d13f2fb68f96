//! The configuration of one Telegram bot account, with the token kept secret.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where the Bot API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// The long-poll timeout asked of `getUpdates`, in seconds.
pub const DEFAULT_POLL_TIMEOUT_SECS: u32 = 30;
/// The server caps long polls at 50 s.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 50;
/// The largest inbound file mirrored inline: the trx limit is 512 KiB, and the post around the
/// bytes needs room too.
pub const DEFAULT_MAX_FILE_BYTES: usize = 400 * 1024;
/// `getFile` serves at most 20 MB.
pub const MAX_DOWNLOAD_BYTES: usize = 20 << 20;

/// A bot token. `Debug` and `Display` print `***`; the value is only reachable through
/// [`BotToken::expose`].
#[derive(Clone)]
pub struct BotToken(SecretString);

impl BotToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token itself, for building the client; never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The bot's user id: the digits before the colon.
    pub fn bot_id(&self) -> Option<i64> {
        self.expose().split_once(':')?.0.parse().ok()
    }

    /// Checks the `<digits>:<secret>` shape without saying what the token is.
    fn problem(&self) -> Option<&'static str> {
        let token = self.expose();
        let Some((id, secret)) = token.split_once(':') else {
            return Some("must look like <bot id>:<secret>, as @BotFather prints it");
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Some("the part before ':' must be the bot's numeric id");
        }
        if secret.is_empty()
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Some("the part after ':' must be letters, digits, '_' or '-'");
        }
        None
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for BotToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// A webhook secret (`X-Telegram-Bot-Api-Secret-Token`); printed as `***`.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// One bot account.
///
/// ```toml
/// token_file = "/run/secrets/tg_token"   # or token = "123456:ABC…"
/// api_url = "http://127.0.0.1:8081"      # optional: a self-hosted Bot API server
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The token from @BotFather. Exactly one of `token` and `token_file` is set.
    #[serde(default)]
    pub token: Option<BotToken>,
    /// A file holding the token (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The Bot API base URL; defaults to [`DEFAULT_API_URL`].
    #[serde(default)]
    pub api_url: Option<String>,
    /// The long-poll timeout, 1–50 s.
    #[serde(default = "default_poll_timeout")]
    pub poll_timeout_secs: u32,
    /// Inbound files larger than this become a placeholder text naming the file.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: usize,
    /// Webhook mode: updates arrive through [`crate::TelegramGateway::handle_webhook`] with this
    /// secret in `X-Telegram-Bot-Api-Secret-Token`, and no `getUpdates` loop runs.
    #[serde(default)]
    pub webhook_secret: Option<WebhookSecret>,
    /// In webhook mode, the public URL of the node's `/hooks/{link}` route; when set, `start`
    /// registers it with `setWebhook`. Left unset, the operator registers the webhook.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Multiplies the windows of Telegram's flood limits (1 msg/s per chat, 20/min per group,
    /// 30/s overall). Only for a fake or test Bot API server: real Telegram needs 1.0 (default),
    /// and values below 1.0 are refused unless `api_url` is set.
    #[serde(default = "default_pacing_scale")]
    pub pacing_scale: f64,
}

fn default_pacing_scale() -> f64 {
    1.0
}

fn default_poll_timeout() -> u32 {
    DEFAULT_POLL_TIMEOUT_SECS
}

fn default_max_file_bytes() -> usize {
    DEFAULT_MAX_FILE_BYTES
}

/// One thing wrong with a configuration, and the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigProblem {
    pub key: &'static str,
    pub problem: String,
}

/// Every problem [`TelegramConfig::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid telegram config: {}", join(.0))]
pub struct ConfigError(pub Vec<ConfigProblem>);

fn join(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl TelegramConfig {
    /// A config with `token` and every default.
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            token: Some(BotToken::new(token)),
            token_file: None,
            api_url: None,
            poll_timeout_secs: DEFAULT_POLL_TIMEOUT_SECS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            webhook_secret: None,
            webhook_url: None,
            pacing_scale: 1.0,
        }
    }

    /// Points the client at another Bot API server (self-hosted, or a fake in tests).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// Checks every key and returns all problems at once. Does not read `token_file`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key, text: &str| {
            problems.push(ConfigProblem {
                key,
                problem: text.to_owned(),
            })
        };
        match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => problem("token", "set either token or token_file, not both"),
            (None, None) => problem("token", "missing: set token or token_file"),
            (Some(token), None) => {
                if let Some(p) = token.problem() {
                    problem("token", p);
                }
            }
            (None, Some(path)) => {
                if path.as_os_str().is_empty() {
                    problem("token_file", "is empty");
                }
            }
        }
        if let Some(url) = &self.api_url {
            if let Err(p) = check_http_url(url) {
                problem("api_url", &p);
            }
        }
        if !(1..=MAX_POLL_TIMEOUT_SECS).contains(&self.poll_timeout_secs) {
            problem(
                "poll_timeout_secs",
                &format!("must be 1–{MAX_POLL_TIMEOUT_SECS} (the server caps long polls at 50 s)"),
            );
        }
        if self.max_file_bytes == 0 || self.max_file_bytes > MAX_DOWNLOAD_BYTES {
            problem(
                "max_file_bytes",
                &format!("must be 1–{MAX_DOWNLOAD_BYTES} (getFile serves at most 20 MB)"),
            );
        }
        if let Some(secret) = &self.webhook_secret {
            let s = secret.expose();
            let ok = (1..=256).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                problem(
                    "webhook_secret",
                    "must be 1–256 characters of A-Z, a-z, 0-9, '_' and '-'",
                );
            }
        }
        if !(self.pacing_scale > 0.0 && self.pacing_scale <= 1.0) {
            problem("pacing_scale", "must be in (0, 1]");
        } else if self.pacing_scale < 1.0 && self.api_url.is_none() {
            problem(
                "pacing_scale",
                "below 1.0 only with api_url (a test Bot API server): api.telegram.org enforces the real limits",
            );
        }
        if let Some(url) = &self.webhook_url {
            if self.webhook_secret.is_none() {
                problem("webhook_url", "needs webhook_secret");
            }
            if let Err(p) = check_http_url(url) {
                problem("webhook_url", &p);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The token, from `token` or read from `token_file`.
    pub fn resolve_token(&self) -> Result<BotToken, ConfigError> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(vec![ConfigProblem {
                        key: "token_file",
                        problem: format!("cannot read {}: {e}", path.display()),
                    }])
                })?;
                BotToken::new(text.trim())
            }
            (None, None) => {
                return Err(ConfigError(vec![ConfigProblem {
                    key: "token",
                    problem: "missing: set token or token_file".into(),
                }]))
            }
        };
        match token.problem() {
            Some(p) => Err(ConfigError(vec![ConfigProblem {
                key: if self.token.is_some() {
                    "token"
                } else {
                    "token_file"
                },
                problem: p.into(),
            }])),
            None => Ok(token),
        }
    }

    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(self.poll_timeout_secs.into())
    }

    pub fn api_base(&self) -> &str {
        self.api_url.as_deref().unwrap_or(DEFAULT_API_URL)
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not {}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none() {
        return Err("has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "7412345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";

    #[test]
    fn debug_and_display_never_print_the_token() {
        let mut config = TelegramConfig::with_token(TOKEN);
        config.webhook_secret = Some(WebhookSecret::new("s3cret-value"));
        let dbg = format!("{config:?}");
        assert!(!dbg.contains("AAHdq"), "{dbg}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
        let token = config.token.as_ref().expect("token");
        assert_eq!(format!("{token}"), "***");
        assert_eq!(token.bot_id(), Some(7412345678));
    }

    #[test]
    fn parses_toml_with_defaults_and_rejects_unknown_keys() {
        let config: TelegramConfig = toml_like(&format!(
            r#"{{"token":"{TOKEN}","api_url":"http://127.0.0.1:8081"}}"#
        ));
        assert_eq!(config.poll_timeout_secs, DEFAULT_POLL_TIMEOUT_SECS);
        assert_eq!(config.max_file_bytes, DEFAULT_MAX_FILE_BYTES);
        assert_eq!(config.api_base(), "http://127.0.0.1:8081");
        assert!(config.validate().is_ok());
        let err = serde_json::from_str::<TelegramConfig>(r#"{"token":"1:a","tokn":"x"}"#)
            .expect_err("unknown key");
        assert!(err.to_string().contains("tokn"), "{err}");
    }

    fn toml_like(json: &str) -> TelegramConfig {
        serde_json::from_str(json).expect("config")
    }

    #[test]
    fn validate_reports_every_problem_with_its_key() {
        let config = TelegramConfig {
            token: Some(BotToken::new("not a token")),
            token_file: Some(PathBuf::from("/x")),
            api_url: Some("ftp://example.org".into()),
            poll_timeout_secs: 99,
            max_file_bytes: 0,
            webhook_secret: Some(WebhookSecret::new("bad secret!")),
            webhook_url: Some("nope".into()),
            pacing_scale: 2.0,
        };
        let err = config.validate().expect_err("invalid");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "token",
                "api_url",
                "poll_timeout_secs",
                "max_file_bytes",
                "webhook_secret",
                "pacing_scale",
                "webhook_url"
            ]
        );
        assert!(!err.to_string().contains("not a token"), "{err}");

        let bad_token = TelegramConfig::with_token("12ab:xyz");
        let err = bad_token.validate().expect_err("bad token");
        assert_eq!(err.0[0].key, "token");
        assert!(TelegramConfig {
            token: None,
            ..TelegramConfig::with_token(TOKEN)
        }
        .validate()
        .is_err());
    }

    #[test]
    fn reads_the_token_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).expect("write");
        let config = TelegramConfig {
            token: None,
            token_file: Some(path),
            ..TelegramConfig::with_token(TOKEN)
        };
        config.validate().expect("valid");
        assert_eq!(config.resolve_token().expect("token").expose(), TOKEN);

        let missing = TelegramConfig {
            token: None,
            token_file: Some(dir.path().join("missing")),
            ..TelegramConfig::with_token(TOKEN)
        };
        let err = missing.resolve_token().expect_err("missing file");
        assert_eq!(err.0[0].key, "token_file");
    }
}
