//! Command-line interface: `run` starts a node; the other commands talk to a running node's API.

mod client;
mod groups;
mod links;
mod tail;
mod tokens;

pub use client::{ApiArgs, ApiClient};
pub use groups::{progress_bar, GroupCommand};
pub use links::{GatewayCommand, LinkCommand};
pub use tail::render_item;
pub use tokens::TokenCommand;

use crate::config::{Config, DEFAULT_DATA_DIR};
use crate::node::{Node, TokenSource};
use clap::{Args, Parser, Subcommand};
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
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Load generators (not in this build: they need `--features bench`).
    #[cfg(not(feature = "bench"))]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
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

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let cfg = args.load_config()?;
            init_tracing(&cfg.log.level);
            let node = Node::start(cfg).await?;
            announce(&node);
            wait_for_signal().await;
            node.shutdown().await;
        }
        Command::Init(args) => {
            let mut cfg = args.load_config()?;
            init_tracing("warn");
            cfg.api.listen = "127.0.0.1:0".parse()?;
            cfg.p2p.listen.clear();
            cfg.p2p.bootstrap.clear();
            let node = Node::start(cfg).await?;
            announce(&node);
            node.shutdown().await;
        }
        Command::Key(KeyCommand::Encrypt { data_dir }) => {
            let pass = std::env::var("RUMGATE_PASSPHRASE")
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| anyhow::anyhow!("set RUMGATE_PASSPHRASE to the new passphrase"))?;
            let path = data_dir.join("node.key");
            let id = crate::crypto::keystore::encrypt_in_place(&path, &pass.into())?;
            println!(
                "encrypted {} (node {}); start the node with RUMGATE_PASSPHRASE set",
                path.display(),
                hex::encode(id.public())
            );
        }
        Command::Group(cmd) => groups::group_command(cmd).await?,
        Command::Post { api, group, text } => groups::post_command(api, group, text).await?,
        Command::Posts {
            api,
            group,
            after,
            limit,
            json,
        } => groups::posts_command(api, group, after, limit, json).await?,
        Command::Tail {
            api,
            group,
            after,
            json,
        } => tail::tail_command(api, group, after, json).await?,
        Command::Token(cmd) => tokens::token_command(cmd).await?,
        Command::Gateway(cmd) => links::gateway_command(cmd).await?,
        Command::Link(cmd) => links::link_command(cmd).await?,
        #[cfg(feature = "bench")]
        Command::Bench(cmd) => {
            init_tracing("warn");
            crate::bench::run(cmd).await?
        }
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this rumgate was built without the load generators; run them from a checkout with \
             `cargo run --release --features bench -- bench …`"
        ),
    }
    Ok(())
}

fn announce(node: &Node) {
    println!("rumgate node {}", hex::encode(node.engine().public_key()));
    println!("API listening on http://{}", node.api_addr());
    for addr in node.p2p().listen_addrs() {
        println!("p2p listening on {addr}");
    }
    println!(
        "Web page: http://{}/ (sign in with the API token; /#token=<token> also works)",
        node.api_addr()
    );
    match node.token_source() {
        TokenSource::Generated(p) => println!("API token created in {} (mode 0600)", p.display()),
        TokenSource::Existing(p) => println!("API token in {}", p.display()),
        TokenSource::File(p) => println!("API token from {}", p.display()),
        TokenSource::Config => println!("API token from the configuration"),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
