//! `rumgate bench p2p`: three real nodes in one process on loopback.
//!
//! 1. History: node A's store is filled with `--history` signed trx (1000 per block, the
//!    `startup` bench's fast path); B and C start from copies of that database (own keys).
//! 2. Sustained: open-loop posting at `--rate` trx/s for `--secs` s, round-robin on A, B and C
//!    through `Engine::post` (the code path behind `POST /posts`, without HTTP); latency is
//!    post → included on *every* node. Then a closed-loop phase (`--concurrency` posters) for
//!    the highest rate the three nodes keep up with.
//! 3. Catch-up: a fresh node D joins from A alone and syncs the whole chain; trx/s.
//! 4. Check: every acknowledged trx is on every node exactly once, same order, same block hashes.

use super::harness::{closed_loop_with, fill_store, ms, open_loop_with, percentile, tempfile_dir};
use crate::chain::{GroupId, TrxId};
use crate::config::Config;
use crate::engine::ChainEvent;
use crate::node::Node;
use anyhow::{ensure, Context};
use clap::Args;
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789abcdef";

#[derive(Debug, Args)]
pub struct P2pArgs {
    /// Trx of history in the group before the network phases (catch-up size).
    #[arg(long, default_value_t = 200_000)]
    pub history: usize,
    /// Open-loop posting rate (trx/s, over all three nodes).
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Duration of the open-loop phase in seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Trx in the closed-loop phase (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub posts: usize,
    /// Concurrent posters in the closed-loop phase.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Note size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Producer batching window in ms.
    #[arg(long, default_value_t = 2)]
    pub batch_window_ms: u64,
}

fn config(dir: &Path, bootstrap: Vec<String>, window: u64) -> anyhow::Result<Config> {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.api.listen = "127.0.0.1:0".parse()?;
    cfg.api.token = Some(SecretString::from(TOKEN.to_string()));
    cfg.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    cfg.p2p.bootstrap = bootstrap;
    cfg.chain.batch_window_ms = window;
    Ok(cfg)
}

fn addrs(node: &Node) -> Vec<String> {
    node.p2p()
        .listen_addrs()
        .iter()
        .map(ToString::to_string)
        .collect()
}

type Seen = Arc<Mutex<HashMap<TrxId, Instant>>>;

/// Records when each trx became included on a node.
fn record(node: &Node, lagged: Arc<AtomicUsize>) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::new(Mutex::new(HashMap::new()));
    let mut rx = node.engine().subscribe();
    let sink = seen.clone();
    let h = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ChainEvent::Included(c)) => {
                    let now = Instant::now();
                    let mut m = sink.lock().unwrap_or_else(|p| p.into_inner());
                    for (id, _) in &c.trx {
                        m.entry(*id).or_insert(now);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    lagged.fetch_add(n as usize, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
    });
    (seen, h)
}

type Phase = super::harness::Phase<TrxId>;

async fn post_one(node: &Node, gid: GroupId, body: &serde_json::Value) -> Option<(TrxId, Instant)> {
    let start = Instant::now();
    node.engine()
        .post(&gid, body.clone(), Default::default())
        .await
        .ok()
        .map(|p| (p.trx_id, start))
}

async fn open_loop(
    nodes: &[Arc<Node>],
    gid: GroupId,
    body: &serde_json::Value,
    rate: u64,
    secs: u64,
) -> Phase {
    open_loop_with((rate * secs) as usize, rate, |i| {
        let node = nodes[i % nodes.len()].clone();
        let body = body.clone();
        async move { post_one(&node, gid, &body).await }
    })
    .await
}

async fn closed_loop(
    nodes: &[Arc<Node>],
    gid: GroupId,
    body: &serde_json::Value,
    n: usize,
    conc: usize,
) -> Phase {
    let (nodes, body) = (nodes.to_vec(), body.clone());
    closed_loop_with(n, conc, move |i| {
        let node = nodes[i % nodes.len()].clone();
        let body = body.clone();
        async move { post_one(&node, gid, &body).await }
    })
    .await
}

/// Waits until every sent trx is seen on every node; returns sorted post→visible-everywhere
/// latencies and the instant the last one became visible.
async fn visible_everywhere(phase: &Phase, seen: &[Seen]) -> (Vec<Duration>, Option<Instant>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let maps: Vec<_> = seen
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        let all = phase
            .sent
            .iter()
            .all(|(id, _)| maps.iter().all(|m| m.contains_key(id)));
        if all || Instant::now() > deadline {
            let mut last = None;
            let mut lat: Vec<Duration> = phase
                .sent
                .iter()
                .filter_map(|(id, t)| {
                    let at = maps
                        .iter()
                        .map(|m| m.get(id).copied())
                        .collect::<Option<Vec<_>>>()?
                        .into_iter()
                        .max()?;
                    last = last.max(Some(at));
                    Some(at.saturating_duration_since(*t))
                })
                .collect();
            lat.sort();
            return (lat, last);
        }
        drop(maps);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(name: &str, phase: &Phase, lat: &[Duration], last: Option<Instant>, start: Instant) {
    let ok = phase.sent.len();
    let everywhere = last.map_or(phase.elapsed, |l| l.saturating_duration_since(start));
    println!(
        "{name}: {ok} acknowledged ({} errors) in {:.1} s = {:.0} trx/s posted; visible on all 3 nodes after {:.1} s = {:.0} trx/s end to end",
        phase.errors,
        phase.elapsed.as_secs_f64(),
        ok as f64 / phase.elapsed.as_secs_f64(),
        everywhere.as_secs_f64(),
        lat.len() as f64 / everywhere.as_secs_f64().max(1e-9),
    );
    println!(
        "{name}: post→visible on every node p50 {}  p90 {}  p99 {}  max {}  ({} / {ok} measured)",
        ms(percentile(lat, 0.50)),
        ms(percentile(lat, 0.90)),
        ms(percentile(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len()
    );
}

/// Every acknowledged trx exactly once on every node; same order and blocks everywhere.
async fn check(nodes: &[Arc<Node>], gid: GroupId, acked: &HashSet<TrxId>) -> anyhow::Result<()> {
    let mut reference: Option<(Vec<TrxId>, Vec<String>)> = None;
    for (i, node) in nodes.iter().enumerate() {
        let store = node.engine().store();
        let chain: Vec<TrxId> = store
            .list_trx(gid, 0, usize::MAX >> 1)
            .await?
            .into_iter()
            .map(|t| t.trx.trx_id())
            .collect();
        let blocks: Vec<String> = store
            .list_blocks(gid, 1, usize::MAX >> 1)
            .await?
            .into_iter()
            .map(|b| b.hash.to_hex())
            .collect();
        let mut counts: HashMap<TrxId, usize> = HashMap::with_capacity(chain.len());
        for id in &chain {
            *counts.entry(*id).or_default() += 1;
        }
        let missing = acked.iter().filter(|id| !counts.contains_key(id)).count();
        let doubled = counts.values().filter(|c| **c > 1).count();
        ensure!(
            missing == 0 && doubled == 0,
            "node {i}: {missing} acknowledged trx missing, {doubled} trx stored twice"
        );
        match &reference {
            None => reference = Some((chain, blocks)),
            Some((c, b)) => {
                ensure!(*c == chain, "node {i}: trx order differs from node 0");
                ensure!(*b == blocks, "node {i}: block hashes differ from node 0");
            }
        }
    }
    if let Some((c, b)) = reference {
        println!(
            "check: {} acknowledged trx present exactly once on each of {} nodes; {} trx in {} blocks with identical hashes everywhere: OK",
            acked.len(),
            nodes.len(),
            c.len(),
            b.len()
        );
    }
    Ok(())
}

pub async fn run(a: P2pArgs) -> anyhow::Result<()> {
    let root = tempfile_dir("rumgate-bench-p2p")?;
    let dirs: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| root.join(n)).collect();
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    println!(
        "rumgate bench p2p: 3 nodes on loopback, {} cores, {} B notes, data in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        a.size,
        root.display()
    );
    fill_store(&dirs[0], a.history).await?;
    for d in &dirs[1..3] {
        std::fs::copy(dirs[0].join("rumgate.db"), d.join("rumgate.db"))
            .context("copying the history to B and C")?;
    }

    let node_a = Arc::new(Node::start(config(&dirs[0], vec![], a.batch_window_ms)?).await?);
    let gid = node_a
        .engine()
        .groups()
        .first()
        .map(|g| g.id())
        .context("no group in the filled store")?;
    let node_b = Arc::new(Node::start(config(&dirs[1], addrs(&node_a), a.batch_window_ms)?).await?);
    let mut c_boot = addrs(&node_a);
    c_boot.extend(addrs(&node_b));
    let node_c = Arc::new(Node::start(config(&dirs[2], c_boot, a.batch_window_ms)?).await?);
    let nodes = vec![node_a.clone(), node_b.clone(), node_c.clone()];
    // Wait until the mesh is up: each node connected to the other two.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes.iter().any(|n| n.p2p().peer_count() < 2) {
        ensure!(Instant::now() < deadline, "nodes did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lagged = Arc::new(AtomicUsize::new(0));
    let recorders: Vec<_> = nodes.iter().map(|n| record(n, lagged.clone())).collect();
    let seen: Vec<Seen> = recorders.iter().map(|(s, _)| s.clone()).collect();
    let body = serde_json::json!({"type": "Note", "content": "x".repeat(a.size)});
    let mut acked: HashSet<TrxId> = HashSet::new();

    // Warm-up (connections, mesh, caches); not measured.
    let warm = closed_loop(&nodes, gid, &body, 300, 30).await;
    visible_everywhere(&warm, &seen).await;
    acked.extend(warm.sent.iter().map(|(id, _)| *id));

    let start = Instant::now();
    let phase = open_loop(&nodes, gid, &body, a.rate, a.secs).await;
    let (lat, last) = visible_everywhere(&phase, &seen).await;
    report(
        &format!("open loop at {} trx/s", a.rate),
        &phase,
        &lat,
        last,
        start,
    );
    acked.extend(phase.sent.iter().map(|(id, _)| *id));

    if a.posts > 0 {
        let start = Instant::now();
        let phase = closed_loop(&nodes, gid, &body, a.posts, a.concurrency).await;
        let (lat, last) = visible_everywhere(&phase, &seen).await;
        report(
            &format!("closed loop, {} posters", a.concurrency),
            &phase,
            &lat,
            last,
            start,
        );
        acked.extend(phase.sent.iter().map(|(id, _)| *id));
    }
    let n_lagged = lagged.load(Ordering::Relaxed);
    if n_lagged > 0 {
        println!("note: event recorders lagged by {n_lagged} events (those trx are not in the latency figures)");
    }

    // Catch-up: a fresh node syncs the whole chain from A alone.
    let head = node_a.engine().group(&gid)?.head();
    let total: usize = node_a
        .engine()
        .store()
        .list_blocks(gid, 1, usize::MAX >> 1)
        .await?
        .iter()
        .map(|b| b.trx_ids.len())
        .sum();
    let node_d = Arc::new(Node::start(config(&dirs[3], addrs(&node_a), a.batch_window_ms)?).await?);
    let seed = {
        let entry = node_a.engine().group(&gid)?;
        let mut s = node_a.engine().seed(&entry);
        s.bootstrap = addrs(&node_a);
        s.to_url()
    };
    let started = Instant::now();
    node_d.engine().join(&seed).await?;
    let d_entry = node_d.engine().group(&gid)?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while d_entry.head().height < head.height {
        ensure!(Instant::now() < deadline, "catch-up did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    println!(
        "catch-up: fresh node synced {total} trx ({} blocks) from one peer in {:.2} s = {:.0} trx/s",
        head.height,
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );

    let mut all = nodes.clone();
    all.push(node_d.clone());
    check(&all, gid, &acked).await?;

    for (_, h) in recorders {
        h.abort();
    }
    drop(all);
    drop(nodes);
    for n in [node_d, node_c, node_b, node_a] {
        match Arc::try_unwrap(n) {
            Ok(n) => n.shutdown().await,
            Err(_) => eprintln!("warning: a node handle is still shared; not shut down cleanly"),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
