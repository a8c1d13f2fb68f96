//! Node configuration: TOML file, then `RUMGATE_*` environment, then command-line flags.

use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8002";
pub const DEFAULT_P2P_LISTEN: &str = "/ip4/0.0.0.0/tcp/7002";
/// Blocks a live-stream client may fall behind before it is told to resume from its cursor.
pub const DEFAULT_STREAM_BUFFER: usize = 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, keys and API token live.
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub keys: KeysConfig,
    pub chain: ChainConfig,
    pub p2p: P2pConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// libp2p multiaddrs to listen on (TCP). Empty: outbound connections only.
    pub listen: Vec<String>,
    /// Peers to connect to at start-up and to keep reconnecting to (an address book, not
    /// authorities). `/p2p/<peer id>` suffixes are optional.
    pub bootstrap: Vec<String>,
    /// Addresses to put in seeds instead of the listen addresses (NAT, containers).
    pub announce: Vec<String>,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_P2P_LISTEN.to_string()],
            bootstrap: Vec::new(),
            announce: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Admin token; by default generated on first run into `<data_dir>/api.token`.
    pub token: Option<SecretString>,
    /// Read the admin token from this file instead.
    pub token_file: Option<PathBuf>,
    /// Largest body of `POST /api/v1/groups/{id}/posts`, in bytes.
    pub max_body_bytes: usize,
    /// Largest body of `POST /hooks/{link_id}`, in bytes.
    pub max_hook_body_bytes: usize,
    /// Largest body of every other route, in bytes.
    pub max_other_body_bytes: usize,
    /// A request's headers must arrive within this long (also how long an idle keep-alive
    /// connection stays open).
    pub header_timeout_ms: u64,
    /// A request must be answered (its response head sent) within this long; streams only need
    /// to start. Keep it above `wait_ms` of `?wait=true` posts (at most 60000).
    pub request_timeout_ms: u64,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Largest WebSocket message a client may send (at most 1 MiB).
    pub ws_max_message_bytes: usize,
    /// A WebSocket client that sends nothing, not even a pong to the server's pings, for this
    /// long is disconnected.
    pub ws_idle_timeout_ms: u64,
    /// Byte budget of a page of posts or blocks and of a stream catch-up batch; a page stops
    /// there and its `next_cursor` / `next_from` says where to continue.
    pub page_bytes: usize,
    /// `/metrics` needs a token with the `read` scope (true), or is open to loopback clients
    /// only (false) for a local Prometheus without credentials.
    pub metrics_auth: bool,
    /// Blocks buffered per group for live stream clients; a client further behind is told to
    /// resume from its cursor instead of being buffered for.
    pub stream_buffer: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// File holding the keystore passphrase (first line). `RUMGATE_PASSPHRASE` takes precedence.
    pub passphrase_file: Option<PathBuf>,
    /// Refuse to start with a plaintext key file (production hardening).
    pub require_encrypted: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// How long the producer waits after the first pending trx to batch more into one block.
    pub batch_window_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. "info" or "rumgate=debug". `RUST_LOG` takes precedence.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            api: ApiConfig::default(),
            keys: KeysConfig::default(),
            chain: ChainConfig::default(),
            p2p: P2pConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_API_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8002))),
            token: None,
            token_file: None,
            max_body_bytes: 1024 * 1024,
            max_hook_body_bytes: 1024 * 1024,
            max_other_body_bytes: 64 * 1024,
            header_timeout_ms: 10_000,
            request_timeout_ms: 75_000,
            max_connections: 512,
            ws_max_message_bytes: 1024 * 1024,
            ws_idle_timeout_ms: 60_000,
            page_bytes: 4 * 1024 * 1024,
            metrics_auth: true,
            stream_buffer: DEFAULT_STREAM_BUFFER,
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self { batch_window_ms: 2 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads a TOML file (every key optional; unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Applies `RUMGATE_DATA_DIR`, `RUMGATE_API_LISTEN`, `RUMGATE_API_TOKEN`, `RUMGATE_LOG`,
    /// `RUMGATE_P2P_LISTEN` and `RUMGATE_BOOTSTRAP` (both comma-separated multiaddr lists).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(v) = get("RUMGATE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("RUMGATE_API_LISTEN") {
            match v.parse() {
                Ok(a) => self.api.listen = a,
                Err(_) => problems.push(format!(
                    "RUMGATE_API_LISTEN: {v:?} is not an address like 127.0.0.1:8002"
                )),
            }
        }
        if let Some(v) = get("RUMGATE_API_TOKEN") {
            self.api.token = Some(SecretString::from(v));
        }
        if let Some(v) = get("RUMGATE_LOG") {
            self.log.level = v;
        }
        if let Some(v) = get("RUMGATE_P2P_LISTEN") {
            self.p2p.listen = split_list(&v);
        }
        if let Some(v) = get("RUMGATE_BOOTSTRAP") {
            self.p2p.bootstrap = split_list(&v);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Returns every problem with its key name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".to_string());
        }
        if self.api.token.is_some() && self.api.token_file.is_some() {
            problems.push("api.token and api.token_file: set at most one".into());
        }
        if let Some(t) = &self.api.token {
            use secrecy::ExposeSecret;
            if t.expose_secret().len() < 16 {
                problems.push("api.token: must be at least 16 characters".into());
            }
        }
        for (key, value) in [
            ("api.max_body_bytes", self.api.max_body_bytes),
            ("api.max_hook_body_bytes", self.api.max_hook_body_bytes),
            ("api.max_other_body_bytes", self.api.max_other_body_bytes),
        ] {
            if value < 1024 {
                problems.push(format!("{key}: must be at least 1024"));
            }
        }
        for (key, value) in [
            ("api.header_timeout_ms", self.api.header_timeout_ms),
            ("api.request_timeout_ms", self.api.request_timeout_ms),
            ("api.ws_idle_timeout_ms", self.api.ws_idle_timeout_ms),
        ] {
            if value < 100 {
                problems.push(format!("{key}: must be at least 100"));
            }
        }
        if self.api.max_connections == 0 {
            problems.push("api.max_connections: must be at least 1".into());
        }
        if !(1024..=1024 * 1024).contains(&self.api.ws_max_message_bytes) {
            problems.push("api.ws_max_message_bytes: must be 1024 to 1048576".into());
        }
        if self.api.page_bytes < 64 * 1024 {
            problems.push("api.page_bytes: must be at least 65536".into());
        }
        if self.api.stream_buffer == 0 {
            problems.push("api.stream_buffer: must be at least 1".into());
        }
        if self.chain.batch_window_ms > 1000 {
            problems.push("chain.batch_window_ms: must be at most 1000".into());
        }
        for (key, list) in [
            ("p2p.listen", &self.p2p.listen),
            ("p2p.bootstrap", &self.p2p.bootstrap),
            ("p2p.announce", &self.p2p.announce),
        ] {
            for (i, addr) in list.iter().enumerate() {
                if let Err(e) = addr.parse::<libp2p::Multiaddr>() {
                    problems.push(format!(
                        "{key}[{i}]: {addr:?} is not a multiaddr like /ip4/0.0.0.0/tcp/7002 ({e})"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.chain.batch_window_ms)
    }
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("rumgate.db")
    }
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("api.token")
    }
}

/// Splits a comma-separated environment value into trimmed, non-empty items.
fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let cfg = Config::from_file(&path).unwrap();
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            toml::from_str::<Config>("[api]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem_with_key_names() {
        let mut cfg = Config::default();
        cfg.api.token = Some(SecretString::from("short".to_string()));
        cfg.chain.batch_window_ms = 5000;
        cfg.p2p.bootstrap = vec!["not-a-multiaddr".into()];
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("api.token")
                && msg.contains("chain.batch_window_ms")
                && msg.contains("p2p.bootstrap[0]"),
            "{msg}"
        );
    }

    #[test]
    fn env_overrides_apply() {
        let mut cfg = Config::default();
        cfg.apply_env(|k| match k {
            "RUMGATE_DATA_DIR" => Some("/tmp/x".into()),
            "RUMGATE_API_LISTEN" => Some("127.0.0.1:9".into()),
            "RUMGATE_P2P_LISTEN" => Some("/ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/tcp/1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.p2p.listen.len(), 2);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.api.listen.port(), 9);
        assert!(cfg.apply_env(|_| Some("nonsense".into())).is_err());
    }
}
