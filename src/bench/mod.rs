//! `rumgate bench ...`: load generators against a real node that print their figures.
//!
//! * `ingest`: posts signed 1 KiB Notes through the real HTTP API of an in-process node, first as
//!   fast as possible, then open-loop at a fixed rate; prints trx/s and post→included latency,
//!   plus machine baselines (raw ed25519 sign+verify/s, raw SQLite batched insert/s) and ratios.
//! * `idle`: starts the real binary with one group and reads its resident memory.
//! * `startup`: fills a store with N trx, then times the real binary from spawn to a healthy API.

mod gateway;
mod harness;
mod ingest;
mod mixin;
mod p2p;
mod stream;
mod telegram;

pub use harness::fill_store;

use anyhow::Context;
use clap::{Args, Subcommand};
use harness::*;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Post signed 1 KiB notes through the API; print throughput, latency and baselines.
    Ingest(ingest::IngestArgs),
    /// Resident memory of an idle `rumgate run` with one group.
    Idle,
    /// Start-up time of `rumgate run` over a store holding N trx.
    Startup(StartupArgs),
    /// Three nodes on loopback: sustained round-robin posting, post→visible-everywhere latency,
    /// catch-up rate of a fresh node, and a final exactly-once / same-chain check.
    P2p(p2p::P2pArgs),
    /// SSE fan-out: N clients on one group at a fixed post rate; RSS per idle client.
    Stream(stream::StreamArgs),
    /// Gateway delivery: one group → N outbound webhook links to local receivers.
    Gateway(gateway::GatewayArgs),
    /// Mixin adapter against the fake Mixin: outbound under 429s and drops, inbound latency.
    Mixin(mixin::MixinArgs),
    /// Telegram adapter against the fake Bot API: outbound under a 429 storm within the pacing
    /// limits, inbound update→trx latency.
    Telegram(telegram::TelegramArgs),
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// Trx to store before timing the start.
    #[arg(long, default_value_t = 1_000_000)]
    pub trx: usize,
    /// Reuse (or keep) this data dir instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest::run(a).await,
        BenchCommand::Idle => idle().await,
        BenchCommand::Startup(a) => startup(a).await,
        BenchCommand::P2p(a) => p2p::run(a).await,
        BenchCommand::Stream(a) => stream::run(a).await,
        BenchCommand::Gateway(a) => gateway::run(a).await,
        BenchCommand::Mixin(a) => mixin::run(a).await,
        BenchCommand::Telegram(a) => telegram::run(a).await,
    }
}

async fn idle() -> anyhow::Result<()> {
    let dir = tempfile_dir("rumgate-bench-idle")?;
    let (mut child, base, _) = spawn_node(&dir)?;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/groups"))
        .bearer_auth(BENCH_TOKEN)
        .json(&serde_json::json!({"name": "idle"}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "group create failed: {}",
        r.status()
    );
    let gid = r.json::<serde_json::Value>().await?["group_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for i in 0..10 {
        client
            .post(format!("{base}/api/v1/groups/{gid}/posts"))
            .bearer_auth(BENCH_TOKEN)
            .json(&serde_json::json!({"content": format!("post {i}")}))
            .send()
            .await?;
    }
    // Let it settle to idle, then sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(child.id()).context("cannot read /proc/<pid>/status")?;
    println!(
        "idle RSS with one group (10 posts): {:.1} MiB ({rss} KiB)",
        rss as f64 / 1024.0
    );
    child.kill()?;
    child.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn startup(a: StartupArgs) -> anyhow::Result<()> {
    let (dir, temp) = match a.data_dir {
        Some(d) => (d, false),
        None => (tempfile_dir("rumgate-bench-startup")?, true),
    };
    let db = dir.join("rumgate.db");
    if !db.exists() {
        fill_store(&dir, a.trx).await?;
    }
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let mut times = Vec::new();
    for _ in 0..3 {
        let (mut child, base, started) = spawn_node(&dir)?;
        let listening = started.elapsed();
        let client = reqwest::Client::new();
        let groups: serde_json::Value = client
            .get(format!("{base}/api/v1/groups"))
            .bearer_auth(BENCH_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let ready = started.elapsed();
        let height = groups["groups"][0]["height"].as_u64().unwrap_or(0);
        println!(
            "start-up: API listening after {}, first group list after {} (height {height})",
            ms(listening),
            ms(ready)
        );
        times.push(ready);
        child.kill()?;
        child.wait()?;
    }
    times.sort();
    println!(
        "start-up with {} stored trx ({:.0} MiB database): median {}",
        a.trx,
        size as f64 / 1048576.0,
        ms(times[times.len() / 2])
    );
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
