//! The `rumgate` binary: parse the command line, then hand over to the library.

use clap::Parser;
use rumgate::cli::{self, Cli, Command, KeyCommand};
use rumgate::node::{Node, TokenSource};

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            let id = rumgate::crypto::keystore::encrypt_in_place(&path, &pass.into())?;
            println!(
                "encrypted {} (node {}); start the node with RUMGATE_PASSPHRASE set",
                path.display(),
                hex::encode(id.public())
            );
        }
        Command::Group(cmd) => cli::group_command(cmd).await?,
        Command::Post { api, group, text } => cli::post_command(api, group, text).await?,
        Command::Posts {
            api,
            group,
            after,
            limit,
            json,
        } => cli::posts_command(api, group, after, limit, json).await?,
        Command::Tail {
            api,
            group,
            after,
            json,
        } => cli::tail_command(api, group, after, json).await?,
        Command::Token(cmd) => cli::token_command(cmd).await?,
        Command::Gateway(cmd) => cli::gateway_command(cmd).await?,
        Command::Link(cmd) => cli::link_command(cmd).await?,
        Command::Bench(cmd) => {
            init_tracing("warn");
            rumgate::bench::run(cmd).await?
        }
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
