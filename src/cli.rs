//! Command-line interface: `run` starts a node; the other commands talk to a running node's API.

use crate::api::dto::{Accepted, GroupInfo, GroupList, PostList, TokenInfo, TokenList};
use crate::config::{Config, DEFAULT_DATA_DIR};
use crate::node::feed::ItemView;
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
    /// Follow a group's live stream; resumes after reconnects without gaps or repeats.
    Tail {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
        /// Start after this cursor [default: only new items].
        #[arg(long)]
        after: Option<String>,
        /// Print each item as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create, list and revoke scoped API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Gateway accounts: a Telegram bot, a Mixin bot, or webhooks.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Links between a group and a chat of a gateway.
    #[command(subcommand)]
    Link(LinkCommand),
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

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        /// admin | read | post | post:<group_id> (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Add an account: `webhook NAME`, `telegram NAME --token-file F`, `mixin NAME --keystore-file F`.
    Add {
        #[command(flatten)]
        api: ApiArgs,
        /// telegram | mixin | webhook
        kind: String,
        name: String,
        /// Telegram bot token (prefer --token-file: command lines are visible to other users).
        #[arg(long)]
        token: Option<String>,
        /// File with the Telegram bot token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Mixin bot keystore JSON file.
        #[arg(long)]
        keystore_file: Option<PathBuf>,
        /// Bot API base URL (self-hosted Telegram Bot API server, or Mixin API host).
        #[arg(long)]
        api_url: Option<String>,
        /// Mixin Blaze websocket URL (default wss://blaze.mixin.one/).
        #[arg(long)]
        blaze_url: Option<String>,
    },
    /// List accounts (secrets are never shown).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove an account no link uses.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        gateway: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Link a group with a chat: `--group G --gateway GW --chat C --direction both`.
    Add {
        #[command(flatten)]
        api: ApiArgs,
        /// Group id or unique name.
        #[arg(long)]
        group: String,
        /// Gateway id or name.
        #[arg(long)]
        gateway: String,
        /// Telegram chat id, Mixin conversation id, or the outbound webhook URL.
        #[arg(long, default_value = "")]
        chat: String,
        /// in | out | both
        #[arg(long, default_value = "both")]
        direction: String,
        /// Deliver the last N posts first.
        #[arg(long, default_value_t = 0)]
        backfill: u64,
        /// Prefix per message ({name}, {id}).
        #[arg(long)]
        nick_format: Option<String>,
        /// Webhook links: standard | github | plain | slack | discord.
        #[arg(long)]
        webhook_format: Option<String>,
        /// Webhook links: the signing/verification secret (whsec_… for standard).
        #[arg(long)]
        webhook_secret: Option<String>,
        /// Webhook links: allow loopback/private targets (tests, LAN receivers).
        #[arg(long)]
        allow_private_target: bool,
    },
    /// List links with their health.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// One link's full status.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
    /// Remove a link.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
    /// Deliver a link's dead letters again.
    Retry {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
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
    pub(crate) base: String,
    pub(crate) token: String,
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
    for post in &list.items {
        let mut line = render_item(&post.item);
        if post.deleted {
            line.push_str(" (deleted)");
        } else if post.edits > 0 {
            line.push_str(" (edited)");
        }
        println!("{line}");
    }
    eprintln!("next cursor: {}", list.next_cursor);
    Ok(())
}

/// One line per item: `[cursor] #height sender: text`.
pub fn render_item(item: &ItemView) -> String {
    let text = match &item.object {
        None => "<encrypted>".to_string(),
        Some(o) => match o.get("type").and_then(|t| t.as_str()) {
            Some("Note") => o["content"].as_str().unwrap_or_default().to_string(),
            Some("Image") => format!("[image] {}", o["content"].as_str().unwrap_or_default()),
            Some("Like") => format!("likes {}", o["object"].as_str().unwrap_or_default()),
            Some("Delete") => format!("deleted {}", o["object"].as_str().unwrap_or_default()),
            Some("Update") => format!(
                "edited {}: {}",
                o["object"]["id"].as_str().unwrap_or_default(),
                o["object"]["content"].as_str().unwrap_or_default()
            ),
            _ => o.to_string(),
        },
    };
    let sender = item.sender.get(..8).unwrap_or(&item.sender);
    format!("[{}] #{} {}: {}", item.cursor, item.height, sender, text)
}

pub async fn token_command(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { api, name, scopes } => {
            let c = ApiClient::from_args(&api)?;
            let t: TokenInfo = c
                .post(
                    "/api/v1/tokens",
                    &serde_json::json!({"name": name, "scopes": scopes}),
                )
                .await?;
            println!("{}", t.token.unwrap_or_default());
            eprintln!(
                "token {} ({}) with scopes {}: store it now, it is not shown again",
                t.id,
                t.name,
                t.scopes.join(", ")
            );
        }
        TokenCommand::List { api } => {
            let c = ApiClient::from_args(&api)?;
            let list: TokenList = c.get("/api/v1/tokens").await?;
            for t in list.tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}  {:<20} {:<8} {}",
                    t.id,
                    t.name,
                    state,
                    t.scopes.join(",")
                );
            }
        }
        TokenCommand::Revoke { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let t: TokenInfo = c.delete(&format!("/api/v1/tokens/{id}")).await?;
            println!("revoked {}", t.id);
        }
    }
    Ok(())
}

/// Follows the SSE stream, reconnecting with `Last-Event-ID` so nothing is missed or repeated.
pub async fn tail_command(
    api: ApiArgs,
    group: String,
    after: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let mut cursor = match after {
        Some(a) => a,
        // Only new items: start at the group's current end.
        None => {
            c.get::<GroupInfo>(&format!("/api/v1/groups/{id}"))
                .await?
                .cursor
        }
    };
    let http = reqwest::Client::builder().build()?;
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        let mut req = http
            .get(format!("{}/api/v1/groups/{id}/stream", c.base))
            .bearer_auth(&c.token);
        if !cursor.is_empty() {
            req = req.header("Last-Event-ID", &cursor);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                backoff = std::time::Duration::from_millis(500);
                let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
                while let Some(ev) = events.next().await {
                    let Ok(ev) = ev else { break };
                    match ev.event.as_str() {
                        "resume" => {
                            let v: serde_json::Value =
                                serde_json::from_str(&ev.data).unwrap_or_default();
                            if let Some(a) = v["after"].as_str() {
                                cursor = a.to_string();
                            }
                            eprintln!("(server asked to resume from {cursor}; reconnecting)");
                            break;
                        }
                        "error" => eprintln!("stream error: {}", ev.data),
                        _ => {
                            if json {
                                println!("{}", ev.data);
                            } else if let Ok(item) = serde_json::from_str::<ItemView>(&ev.data) {
                                println!("{}", render_item(&item));
                            }
                            if !ev.id.is_empty() {
                                cursor = ev.id;
                            }
                        }
                    }
                }
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if status.is_client_error() {
                    bail!("{status}: {body}");
                }
                eprintln!("(stream answered {status}; retrying)");
            }
            Err(e) => eprintln!("(cannot reach the node: {e}; retrying)"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}

pub async fn gateway_command(cmd: GatewayCommand) -> anyhow::Result<()> {
    match cmd {
        GatewayCommand::Add {
            api,
            kind,
            name,
            token,
            token_file,
            keystore_file,
            api_url,
            blaze_url,
        } => {
            let c = ApiClient::from_args(&api)?;
            let mut body = serde_json::json!({"kind": kind, "name": name});
            if let Some(t) = token {
                body["token"] = t.into();
            }
            if let Some(f) = token_file {
                body["token_file"] = f.display().to_string().into();
            }
            if let Some(f) = keystore_file {
                body["keystore_file"] = f.display().to_string().into();
            }
            if let Some(u) = api_url {
                body["api_url"] = u.into();
            }
            if let Some(u) = blaze_url {
                body["blaze_url"] = u.into();
            }
            let v: serde_json::Value = c.post("/api/v1/gateways", &body).await?;
            println!(
                "added {} gateway {} ({})",
                v["kind"].as_str().unwrap_or_default(),
                v["name"].as_str().unwrap_or_default(),
                v["id"].as_str().unwrap_or_default()
            );
        }
        GatewayCommand::List { api } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get("/api/v1/gateways").await?;
            for g in v["gateways"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{}  {:<10} {}",
                    g["id"].as_str().unwrap_or_default(),
                    g["kind"].as_str().unwrap_or_default(),
                    g["name"].as_str().unwrap_or_default()
                );
            }
        }
        GatewayCommand::Remove { api, gateway } => {
            let c = ApiClient::from_args(&api)?;
            let _: serde_json::Value = c.delete(&format!("/api/v1/gateways/{gateway}")).await?;
            println!("removed {gateway}");
        }
    }
    Ok(())
}

fn print_link(l: &serde_json::Value) {
    let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
    println!(
        "{}  {:<8} {:<4} {:<9} depth {:<6} delivered {:<8} {}{}",
        s("id"),
        s("kind"),
        s("direction"),
        s("health"),
        l["outbox_depth"],
        s("delivered_cursor"),
        s("chat"),
        l["last_error"]
            .as_str()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default()
    );
}

pub async fn link_command(cmd: LinkCommand) -> anyhow::Result<()> {
    match cmd {
        LinkCommand::Add {
            api,
            group,
            gateway,
            chat,
            direction,
            backfill,
            nick_format,
            webhook_format,
            webhook_secret,
            allow_private_target,
        } => {
            let c = ApiClient::from_args(&api)?;
            let gid = c.resolve_group(&group).await?;
            let mut body = serde_json::json!({
                "group_id": gid, "gateway_id": gateway, "chat": chat,
                "direction": direction, "backfill": backfill,
            });
            if let Some(n) = nick_format {
                body["nick_format"] = n.into();
            }
            if webhook_format.is_some() || webhook_secret.is_some() || allow_private_target {
                let mut w = serde_json::json!({"format": webhook_format.unwrap_or_else(|| "standard".into())});
                if let Some(sec) = webhook_secret {
                    w["secret"] = sec.into();
                }
                if allow_private_target {
                    w["allow_private_target"] = true.into();
                }
                body["webhook"] = w;
            }
            let l: serde_json::Value = c.post("/api/v1/links", &body).await?;
            println!("added link {}", l["id"].as_str().unwrap_or_default());
            if let Some(url) = l["inbound_url"].as_str() {
                println!("inbound webhook URL: {}{url}", c.base);
            }
        }
        LinkCommand::List { api, json } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get("/api/v1/links").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for l in v["links"].as_array().cloned().unwrap_or_default() {
                    print_link(&l);
                }
            }
        }
        LinkCommand::Show { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get(&format!("/api/v1/links/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        LinkCommand::Remove { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let _: serde_json::Value = c.delete(&format!("/api/v1/links/{id}")).await?;
            println!("removed link {id}");
        }
        LinkCommand::Retry { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c
                .post(&format!("/api/v1/links/{id}/retry"), &serde_json::json!({}))
                .await?;
            println!("retrying {} dead letter(s)", v["retrying"]);
        }
    }
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
