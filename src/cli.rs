//! Command-line interface: `run` starts a node; the other commands talk to a running node's API.

use crate::api::dto::{Accepted, GroupInfo, GroupList, PostList};
use crate::config::{Config, DEFAULT_DATA_DIR};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rumgate",
    version,
    about = "Personal gateway and full node of a RUM-style group network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node (creates data dir, key and API token on first run).
    Run(RunArgs),
    /// Create the data dir, node key and API token without starting the node.
    Init(RunArgs),
    /// Manage the node key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create, list, join and leave groups (talks to the running node).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Post a text note into a group.
    Post {
        #[command(flatten)]
        api: ApiArgs,
        /// Group id (64 hex digits) or a unique group name.
        group: String,
        /// The text to post.
        text: String,
    },
    /// List posts of a group in chain order.
    Posts {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
        /// Show posts after this cursor.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load generators that print their figures.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML config file (see config/example.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// API listen address [default: 127.0.0.1:8002].
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Peer-to-peer listen multiaddr [default: /ip4/0.0.0.0/tcp/7002]; repeat for several.
    #[arg(long, value_name = "MULTIADDR")]
    pub p2p_listen: Vec<String>,
    /// A peer to connect to (multiaddr, e.g. /ip4/203.0.113.7/tcp/7002/p2p/12D3KooW...);
    /// repeat for several. Added to `p2p.bootstrap`.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
}

impl RunArgs {
    /// Defaults < config file < RUMGATE_* environment < flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(a) = self.api_listen {
            cfg.api.listen = a;
        }
        if !self.p2p_listen.is_empty() {
            cfg.p2p.listen = self.p2p_listen.clone();
        }
        for b in &self.bootstrap {
            if !cfg.p2p.bootstrap.contains(b) {
                cfg.p2p.bootstrap.push(b.clone());
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Encrypt a plaintext node key with RUMGATE_PASSPHRASE (stop the node first).
    Encrypt {
        #[arg(long, env = "RUMGATE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group owned by this node.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        /// Private group: the key stays with the owner instead of travelling in the seed.
        #[arg(long)]
        private: bool,
    },
    /// List joined groups (a syncing group shows a progress bar).
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
        /// Refresh every second until no group is syncing.
        #[arg(long)]
        watch: bool,
    },
    /// Join a group from its seed URL.
    Join {
        #[command(flatten)]
        api: ApiArgs,
        seed: String,
    },
    /// Leave a group (`--purge` also deletes its data).
    Leave {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
        #[arg(long)]
        purge: bool,
    },
    /// Print a group's seed URL.
    Seed {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the node's API.
    #[arg(long, env = "RUMGATE_API", default_value = "http://127.0.0.1:8002")]
    pub api: String,
    /// API token [default: read from <data-dir>/api.token].
    #[arg(long, env = "RUMGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir holding api.token.
    #[arg(long, env = "RUMGATE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// A small typed client of the node's REST API.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(base: &str, token: String) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn from_args(a: &ApiArgs) -> anyhow::Result<Self> {
        let token = match &a.token {
            Some(t) => t.clone(),
            None => {
                let path = a.data_dir.join("api.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: set RUMGATE_TOKEN or --token, or point --data-dir at the node's data dir ({} is not readable)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Self::new(&a.api, token)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the node at {} (is `rumgate run` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    Some(format!(
                        "{} ({})",
                        e.get("message")?.as_str()?,
                        e.get("code")?.as_str()?
                    ))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{status}: {msg}");
        }
        serde_json::from_slice(&body).context("unexpected response from the node")
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Accepts a group id or a unique group name.
    pub async fn resolve_group(&self, group: &str) -> anyhow::Result<String> {
        if group.len() == 64 && group.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(group.to_ascii_lowercase());
        }
        let list: GroupList = self.get("/api/v1/groups").await?;
        let matches: Vec<_> = list.groups.iter().filter(|g| g.name == group).collect();
        match matches.as_slice() {
            [one] => Ok(one.group_id.clone()),
            [] => bail!("no joined group is named {group:?} (use `rumgate group list`)"),
            _ => bail!("several groups are named {group:?}; use the group id"),
        }
    }
}

fn print_group(g: &GroupInfo) {
    let sync = if g.sync.state == "syncing" {
        format!(
            "syncing {} {}/{}",
            progress_bar(g.sync.progress, 20),
            g.sync.local_height,
            g.sync.remote_height
        )
    } else {
        g.sync.state.clone()
    };
    println!(
        "{}  {:<24} {:<8} {:<10} height {:<8} {}",
        g.group_id, g.name, g.kind, g.role, g.height, sync
    );
}

/// `[#########-----------]  45%`: a fixed-width text bar (no terminal control codes, so it
/// also reads well in logs and pipes).
pub fn progress_bar(fraction: f64, width: usize) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((f * width as f64).floor() as usize).min(width);
    format!(
        "[{}{}] {:>3}%",
        "#".repeat(filled),
        "-".repeat(width - filled),
        (f * 100.0).floor() as u32
    )
}

pub async fn group_command(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Create { api, name, private } => {
            let c = ApiClient::from_args(&api)?;
            let kind = if private { "private" } else { "public" };
            let g: GroupInfo = c
                .post(
                    "/api/v1/groups",
                    &serde_json::json!({"name": name, "kind": kind}),
                )
                .await?;
            println!("created group {} ({kind})", g.group_id);
            println!("seed: {}", g.seed);
        }
        GroupCommand::List { api, json, watch } => {
            let c = ApiClient::from_args(&api)?;
            loop {
                let list: serde_json::Value = c.get("/api/v1/groups").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    break;
                }
                let list: GroupList = serde_json::from_value(list)?;
                if list.groups.is_empty() {
                    println!(
                        "no groups yet: `rumgate group create NAME` or `rumgate group join SEED`"
                    );
                }
                for g in &list.groups {
                    print_group(g);
                }
                let syncing = list.groups.iter().any(|g| g.sync.state == "syncing");
                if !watch || !syncing {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                println!();
            }
        }
        GroupCommand::Join { api, seed } => {
            let c = ApiClient::from_args(&api)?;
            let g: GroupInfo = c
                .post("/api/v1/groups/join", &serde_json::json!({"seed": seed}))
                .await?;
            println!("joined {} ({}) as {}", g.group_id, g.name, g.role);
        }
        GroupCommand::Leave { api, group, purge } => {
            let c = ApiClient::from_args(&api)?;
            let id = c.resolve_group(&group).await?;
            let _: serde_json::Value = c
                .delete(&format!("/api/v1/groups/{id}?purge={purge}"))
                .await?;
            println!(
                "left {id}{}",
                if purge { " and deleted its data" } else { "" }
            );
        }
        GroupCommand::Seed { api, group } => {
            let c = ApiClient::from_args(&api)?;
            let id = c.resolve_group(&group).await?;
            let v: serde_json::Value = c.get(&format!("/api/v1/groups/{id}/seed")).await?;
            println!("{}", v["seed"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub async fn post_command(api: ApiArgs, group: String, text: String) -> anyhow::Result<()> {
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let a: Accepted = c
        .post(
            &format!("/api/v1/groups/{id}/posts"),
            &serde_json::json!({"content": text}),
        )
        .await?;
    println!("{} {}", a.trx_id, a.status);
    Ok(())
}

pub async fn posts_command(
    api: ApiArgs,
    group: String,
    after: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let mut path = format!("/api/v1/groups/{id}/posts?limit={limit}");
    if let Some(a) = after {
        path.push_str(&format!("&after={a}"));
    }
    let list: serde_json::Value = c.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let list: PostList = serde_json::from_value(list)?;
    for item in &list.items {
        let text = item
            .object
            .as_ref()
            .and_then(|o| o.get("content"))
            .and_then(|c| c.as_str())
            .unwrap_or("<encrypted>");
        println!(
            "[{}] #{} {}: {}",
            item.cursor,
            item.height,
            &item.sender[..8],
            text
        );
    }
    eprintln!("next cursor: {}", list.next_cursor);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_bar_is_fixed_width_and_clamped() {
        assert_eq!(super::progress_bar(0.0, 10), "[----------]   0%");
        assert_eq!(super::progress_bar(0.456, 10), "[####------]  45%");
        assert_eq!(super::progress_bar(1.0, 10), "[##########] 100%");
        assert_eq!(super::progress_bar(7.0, 4), "[####] 100%");
        assert_eq!(super::progress_bar(f64::NAN, 4), "[----]   0%");
    }
}
