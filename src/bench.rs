//! `rumgate bench ...`: load generators against a real node that print their figures.
//!
//! * `ingest`: posts signed 1 KiB Notes through the real HTTP API of an in-process node, first as
//!   fast as possible, then open-loop at a fixed rate; prints trx/s and post→included latency,
//!   plus machine baselines (raw ed25519 sign+verify/s, raw SQLite batched insert/s) and ratios.
//! * `idle`: starts the real binary with one group and reads its resident memory.
//! * `startup`: fills a store with N trx, then times the real binary from spawn to a healthy API.

use crate::chain::verify::{produce_block, verify_genesis, verify_trx, GroupRules};
use crate::chain::{Consensus, Genesis, GenesisBody, GroupKind, Head, Trx, PROTOCOL_VERSION};
use crate::config::Config;
use crate::crypto::{random_bytes, GroupKey, Identity};
use crate::node::{ChainEvent, Node};
use crate::store::Store;
use crate::util::now_ms;
use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BENCH_TOKEN: &str = "bench-token-0123456789abcdef";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Post signed 1 KiB notes through the API; print throughput, latency and baselines.
    Ingest(IngestArgs),
    /// Resident memory of an idle `rumgate run` with one group.
    Idle,
    /// Start-up time of `rumgate run` over a store holding N trx.
    Startup(StartupArgs),
    /// Three nodes on loopback: sustained round-robin posting, post→visible-everywhere latency,
    /// catch-up rate of a fresh node, and a final exactly-once / same-chain check.
    P2p(crate::bench_p2p::P2pArgs),
    /// SSE fan-out: N clients on one group at a fixed post rate; RSS per idle client.
    Stream(StreamArgs),
    /// Gateway delivery: one group → N outbound webhook links to local receivers.
    Gateway(GatewayArgs),
    /// Mixin adapter against the fake Mixin: outbound under 429s and drops, inbound latency.
    Mixin(crate::bench_mixin::MixinArgs),
    /// Telegram adapter against the fake Bot API: outbound under a 429 storm within the pacing
    /// limits, inbound update→trx latency.
    Telegram(crate::bench_telegram::TelegramArgs),
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Outbound webhook links (each to its own receiver path).
    #[arg(long, default_value_t = 10)]
    pub links: usize,
    /// Posts per phase.
    #[arg(long, default_value_t = 1000)]
    pub posts: usize,
    /// Posts per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Seconds one receiver answers 500 in the outage phase (0 skips it).
    #[arg(long, default_value_t = 30)]
    pub outage_secs: u64,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Concurrent SSE clients.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Posts per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Note size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Posts in the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    pub posts: usize,
    /// Concurrent HTTP clients in the throughput phase.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Note size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Rate (posts/s) of the latency phase.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Duration of the latency phase in seconds (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub rate_secs: u64,
    /// Producer batching window in ms.
    #[arg(long, default_value_t = 2)]
    pub batch_window_ms: u64,
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
        BenchCommand::Ingest(a) => ingest(a).await,
        BenchCommand::Idle => idle().await,
        BenchCommand::Startup(a) => startup(a).await,
        BenchCommand::P2p(a) => crate::bench_p2p::run(a).await,
        BenchCommand::Stream(a) => stream(a).await,
        BenchCommand::Gateway(a) => gateway(a).await,
        BenchCommand::Mixin(a) => crate::bench_mixin::run(a).await,
        BenchCommand::Telegram(a) => crate::bench_telegram::run(a).await,
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Records when each trx was included, from the node's chain events, under `key(trx, cursor)`.
pub(crate) fn record_inclusions<K: std::hash::Hash + Eq + Send + 'static>(
    node: &Node,
    key: fn(&crate::chain::TrxId, i64) -> K,
) -> Arc<Mutex<HashMap<K, Instant>>> {
    let included = Arc::new(Mutex::new(HashMap::new()));
    let mut rx = node.engine().subscribe();
    let sink = included.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ChainEvent::Included(c)) => {
                    let now = Instant::now();
                    let mut m = sink.lock().unwrap_or_else(|p| p.into_inner());
                    for (id, seq) in &c.trx {
                        m.insert(key(id, *seq), now);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("warning: inclusion recorder lagged by {n} events");
                }
                Err(_) => break,
            }
        }
    });
    included
}

/// What one load phase sent: (id, when it was posted) per acknowledged post, and failures.
pub(crate) struct Phase<K = String> {
    pub(crate) sent: Vec<(K, Instant)>,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
}

/// Open loop: post `i` (by `post(i)`) is due at start + i/rate whatever happened to earlier ones.
pub(crate) async fn open_loop_with<K, F, Fut>(n: usize, rate: u64, mut post: F) -> Phase<K>
where
    K: Send + 'static,
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Option<(K, Instant)>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        tasks.spawn(post(i));
    }
    let mut sent = Vec::with_capacity(n);
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Some(s)) => sent.push(s),
            _ => errors += 1,
        }
    }
    Phase {
        sent,
        errors,
        elapsed: start.elapsed(),
    }
}

/// Closed loop: `conc` posters share `n` posts, each posting (by `post(i)`) as soon as its
/// previous post was acknowledged.
pub(crate) async fn closed_loop_with<K, F, Fut>(n: usize, conc: usize, post: F) -> Phase<K>
where
    K: Send + 'static,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<(K, Instant)>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..conc {
        let (next, post) = (next.clone(), post.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                match post(i).await {
                    Some(s) => out.push(s),
                    None => errors += 1,
                }
            }
            (out, errors)
        });
    }
    let mut sent = Vec::with_capacity(n);
    let mut errors = 0;
    while let Some(Ok((s, e))) = tasks.join_next().await {
        sent.extend(s);
        errors += e;
    }
    Phase {
        sent,
        errors,
        elapsed: start.elapsed(),
    }
}

async fn post_one(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Option<(String, Instant)> {
    let start = Instant::now();
    let resp = client
        .post(url)
        .bearer_auth(BENCH_TOKEN)
        .json(body)
        .send()
        .await
        .ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    let v: serde_json::Value = resp.json().await.ok()?;
    Some((v["trx_id"].as_str()?.to_string(), start))
}

async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    n: usize,
    conc: usize,
) -> Phase {
    let (client, url, body) = (client.clone(), url.to_string(), body.clone());
    closed_loop_with(n, conc, move |_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move { post_one(&client, &url, &body).await }
    })
    .await
}

async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    rate: u64,
    secs: u64,
) -> Phase {
    open_loop_with((rate * secs) as usize, rate, |_| {
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        async move { post_one(&client, &url, &body).await }
    })
    .await
}

/// Waits until every sent trx is included and returns the sorted post→included latencies.
async fn latencies(phase: &Phase, included: &Mutex<HashMap<String, Instant>>) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let m = included.lock().unwrap_or_else(|p| p.into_inner());
            if phase.sent.iter().all(|(id, _)| m.contains_key(id)) || Instant::now() > deadline {
                let mut v: Vec<Duration> = phase
                    .sent
                    .iter()
                    .filter_map(|(id, t)| m.get(id).map(|inc| inc.saturating_duration_since(*t)))
                    .collect();
                v.sort();
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_phase(name: &str, phase: &Phase, lat: &[Duration]) {
    let ok = phase.sent.len();
    println!(
        "{name}: {ok} acknowledged, {} errors, {:.1} s, {:.0} trx/s; included {} / {ok}",
        phase.errors,
        phase.elapsed.as_secs_f64(),
        ok as f64 / phase.elapsed.as_secs_f64(),
        lat.len()
    );
    println!(
        "{name}: post→included p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(lat, 0.50)),
        ms(percentile(lat, 0.90)),
        ms(percentile(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

async fn ingest(a: IngestArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir("rumgate-bench-ingest")?;
    let mut cfg = bench_config(&dir)?;
    cfg.chain.batch_window_ms = a.batch_window_ms;
    let node = Node::start(cfg).await?;
    let group = node
        .engine()
        .create_group("bench", GroupKind::Public)
        .await?;
    let url = format!(
        "http://{}/api/v1/groups/{}/posts",
        node.api_addr(),
        group.id()
    );
    let body = serde_json::json!({"type": "Note", "content": "x".repeat(a.size)});
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency.max(256))
        .build()?;
    let included = record_inclusions(&node, |id, _| id.to_hex());

    println!(
        "rumgate bench ingest: {} B notes, {} cores, data dir {}",
        a.size,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.display()
    );
    // Warm up connections and the store.
    closed_loop(&client, &url, &body, 500, a.concurrency.min(500)).await;

    let phase = closed_loop(&client, &url, &body, a.posts, a.concurrency).await;
    let lat = latencies(&phase, &included).await;
    let tput = phase.sent.len() as f64 / phase.elapsed.as_secs_f64();
    print_phase(
        &format!("throughput ({} clients)", a.concurrency),
        &phase,
        &lat,
    );

    if a.rate_secs > 0 {
        let phase = open_loop(&client, &url, &body, a.rate, a.rate_secs).await;
        let lat = latencies(&phase, &included).await;
        print_phase(&format!("at {} trx/s", a.rate), &phase, &lat);
    }
    let blocks = group.head().height;
    node.shutdown().await;
    println!("blocks produced: {blocks}");

    let (sv, sign_only) = sign_verify_rate(a.size);
    let sqlite = sqlite_insert_rate(&dir.join("baseline.db"), a.size)?;
    println!("baseline: ed25519 sign {sign_only:.0}/s, sign+verify {sv:.0}/s (one core)");
    println!("baseline: SQLite WAL synchronous=FULL, 1000-row transactions: {sqlite:.0} inserts/s");
    println!(
        "ratio: ingest / sign+verify = {:.2}, ingest / SQLite inserts = {:.2}",
        tput / sv,
        tput / sqlite
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Raw ed25519 over 32-byte ids (what rumgate signs), one core.
fn sign_verify_rate(size: usize) -> (f64, f64) {
    let id = Identity::generate();
    let n = 5000;
    let msg = vec![7u8; size.max(32)];
    let start = Instant::now();
    for i in 0..n {
        let digest = crate::chain::encoding::tagged_hash(
            b"bench",
            &[&msg[..], &(i as u64).to_le_bytes()].concat(),
        );
        std::hint::black_box(id.sign(&digest));
    }
    let sign = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..n {
        let digest = crate::chain::encoding::tagged_hash(
            b"bench",
            &[&msg[..], &(i as u64).to_le_bytes()].concat(),
        );
        let sig = id.sign(&digest);
        std::hint::black_box(crate::crypto::verify_strict(&id.public(), &digest, &sig));
    }
    (n as f64 / start.elapsed().as_secs_f64(), sign)
}

/// Raw SQLite: 1 KiB rows in 1000-row transactions, WAL, synchronous=FULL.
fn sqlite_insert_rate(path: &std::path::Path, size: usize) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE t (id BLOB PRIMARY KEY, data BLOB NOT NULL);",
    )?;
    let data = vec![1u8; size];
    let n = 50_000;
    let start = Instant::now();
    for chunk in 0..n / 1000 {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (id, data) VALUES (?1, ?2)")?;
            for i in 0..1000 {
                let id = crate::chain::encoding::tagged_hash(
                    b"k",
                    &((chunk * 1000 + i) as u64).to_le_bytes(),
                );
                st.execute(rusqlite::params![&id[..], &data])?;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// An in-process node's config: `dir`, API on 127.0.0.1:0, the bench token.
pub(crate) fn bench_config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.api.listen = "127.0.0.1:0".parse()?;
    cfg.api.token = Some(SecretString::from(BENCH_TOKEN.to_string()));
    Ok(cfg)
}

pub(crate) fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Spawns `rumgate run` on `dir` with port 0; returns the child and its API base URL.
fn spawn_node(dir: &std::path::Path) -> anyhow::Result<(std::process::Child, String, Instant)> {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args([
            "run",
            "--api-listen",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUMGATE_API_TOKEN", BENCH_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().context("node exited before listening")??;
        if let Some(url) = line.strip_prefix("API listening on ") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, base, started))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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

/// Writes `n` small signed trx in full blocks straight through the store (the fast path), in a
/// public group owned by the node key of `dir`. Also used by the web page tests.
pub async fn fill_store(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    // Create the node key the binary will load, so the group is owned by that node.
    let (owner, _) = crate::crypto::keystore::load_or_create(&dir.join("node.key"), None)?;
    let store = Store::open(&dir.join("rumgate.db"))?;
    let body = GenesisBody {
        version: PROTOCOL_VERSION,
        name: "startup-bench".into(),
        app: "timeline".into(),
        kind: GroupKind::Public,
        owner: owner.public(),
        consensus: Consensus::Poa,
        created_at: now_ms(),
        salt: random_bytes(),
    };
    let genesis = verify_genesis(Genesis::sign(body, &owner))?;
    let key = GroupKey::generate();
    store
        .join_group(&genesis, Some(key.clone()), vec![], now_ms())
        .await?;
    let rules = GroupRules::from_genesis(&genesis);
    let mut head = Head::genesis(genesis.group_id(), genesis.body.created_at);
    let per_block = 1000;
    let mut done = 0;
    while done < n {
        let now = now_ms();
        let count = per_block.min(n - done);
        let trxs = (0..count)
            .map(|i| {
                let text = format!(
                    r#"{{"object":{{"type":"Note","content":"trx {}"}}}}"#,
                    done + i
                );
                let t = Trx::new_post(
                    &owner,
                    rules.group_id,
                    &key,
                    text.as_bytes(),
                    now,
                    random_bytes(),
                );
                verify_trx(t, &rules, now)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let block = produce_block(&owner, &rules, &head, trxs, now)?;
        store.commit_block(&block).await?;
        head = Head {
            height: block.body.height,
            hash: block.hash(),
            timestamp: block.body.timestamp,
        };
        done += count;
        if done % 100_000 == 0 {
            eprintln!(
                "filled {done} / {n} trx ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    store.close().await;
    println!("filled {n} trx in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn stream(a: StreamArgs) -> anyhow::Result<()> {
    use futures::StreamExt;
    let dir = tempfile_dir("rumgate-bench-stream")?;
    let cfg = bench_config(&dir)?;
    let node = Node::start(cfg).await?;
    let group = node
        .engine()
        .create_group("stream", GroupKind::Public)
        .await?;
    let gid = group.id();
    let base = format!("http://{}", node.api_addr());

    let included = record_inclusions(&node, |_, seq| seq);

    let total = (a.rate * a.secs) as usize;
    println!(
        "rumgate bench stream: {} SSE clients, {} posts at {}/s, {} B notes",
        a.clients, total, a.rate, a.size
    );
    let mut clients = tokio::task::JoinSet::new();
    let connected = Arc::new(AtomicUsize::new(0));
    for _ in 0..a.clients {
        let url = format!("{base}/api/v1/groups/{gid}/stream?after=0");
        let connected = connected.clone();
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let resp = http.get(url).bearer_auth(BENCH_TOKEN).send().await?;
            connected.fetch_add(1, Ordering::SeqCst);
            let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
            let mut got: Vec<(i64, Instant)> = Vec::with_capacity(total);
            while got.len() < total {
                match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
                    Ok(Some(Ok(ev))) if ev.event == "message" => {
                        got.push((ev.id.parse().unwrap_or(-1), Instant::now()));
                    }
                    Ok(Some(Ok(ev))) => anyhow::bail!("unexpected event {}: {}", ev.event, ev.data),
                    Ok(Some(Err(e))) => anyhow::bail!("stream error: {e}"),
                    Ok(None) => anyhow::bail!("stream ended after {} items", got.len()),
                    Err(_) => anyhow::bail!("stalled after {} items", got.len()),
                }
            }
            Ok::<_, anyhow::Error>(got)
        });
    }
    while connected.load(Ordering::SeqCst) < a.clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/groups/{gid}/posts");
    let body = serde_json::json!({"content": "s".repeat(a.size)});
    let phase = open_loop(&http, &url, &body, a.rate, a.secs).await;
    println!(
        "posting: {} acknowledged, {} errors, {:.0} trx/s",
        phase.sent.len(),
        phase.errors,
        phase.sent.len() as f64 / phase.elapsed.as_secs_f64()
    );
    let mut lat = Vec::with_capacity(total * a.clients);
    let mut complete = 0;
    let mut ordered = true;
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    while let Some(r) = clients.join_next().await {
        match r {
            Ok(Ok(got)) => {
                complete += 1;
                ordered &= got.windows(2).all(|w| w[0].0 < w[1].0);
                let distinct: std::collections::HashSet<_> = got.iter().map(|g| g.0).collect();
                ordered &= distinct.len() == got.len();
                for (cursor, at) in got {
                    if let Some(i) = inc.get(&cursor) {
                        lat.push(at.saturating_duration_since(*i));
                    }
                }
            }
            Ok(Err(e)) => eprintln!("client failed: {e}"),
            Err(e) => eprintln!("client task failed: {e}"),
        }
    }
    lat.sort();
    println!(
        "delivery: {complete}/{} clients received all {total} items; in order without duplicates: {ordered}",
        a.clients
    );
    println!(
        "include→client: p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len()
    );
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    idle_clients(a.clients).await
}

/// RSS of the real binary before and after `n` idle SSE clients connect.
async fn idle_clients(n: usize) -> anyhow::Result<()> {
    let dir = tempfile_dir("rumgate-bench-idle-clients")?;
    let (mut child, base, _) = spawn_node(&dir)?;
    let http = reqwest::Client::new();
    let g: serde_json::Value = http
        .post(format!("{base}/api/v1/groups"))
        .bearer_auth(BENCH_TOKEN)
        .json(&serde_json::json!({"name": "idle"}))
        .send()
        .await?
        .json()
        .await?;
    let gid = g["group_id"].as_str().unwrap_or_default().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(child.id()).context("rss")?;
    let mut streams = Vec::new();
    for _ in 0..n {
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v1/groups/{gid}/stream"))
            .bearer_auth(BENCH_TOKEN)
            .send()
            .await?;
        streams.push(resp);
    }
    // Wait until the node counts them all, then let allocations settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = http
            .get(format!("{base}/metrics"))
            .bearer_auth(BENCH_TOKEN)
            .send()
            .await?
            .text()
            .await?;
        let count = m
            .lines()
            .find(|l| l.starts_with("rumgate_stream_clients{kind=\"sse\"}"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if count >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(child.id()).context("rss")?;
    println!(
        "idle SSE clients: RSS {before} KiB → {after} KiB with {n} clients: {:.1} KiB per client",
        after.saturating_sub(before) as f64 / n as f64
    );
    drop(streams);
    child.kill()?;
    child.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Posts `n` notes through the engine at `rate`/s with texts `{prefix}{i}`.
async fn post_paced(
    node: &Node,
    gid: crate::chain::GroupId,
    n: usize,
    rate: u64,
    prefix: &str,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        node.engine()
            .post(
                &gid,
                serde_json::json!({"content": format!("{prefix}{i:05}")}),
                Default::default(),
            )
            .await?;
    }
    Ok(())
}

async fn gateway(a: GatewayArgs) -> anyhow::Result<()> {
    use rumgate_webhook::fake::{Fault, Receiver};
    let dir = tempfile_dir("rumgate-bench-gateway")?;
    let cfg = bench_config(&dir)?;
    let node = Node::start(cfg).await?;
    let group = node
        .engine()
        .create_group("gateway-bench", GroupKind::Public)
        .await?;
    let gid = group.id();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(Some(secret)).await?;
    let gws = node.gateways();
    gws.create_account("webhook", "bench", serde_json::json!({}))
        .await?;
    let mut links = Vec::new();
    for i in 0..a.links {
        let status = gws
            .create_link(crate::gateways::NewLink {
                group_id: gid,
                gateway: "bench".into(),
                chat: receiver.url(&format!("r{i}")),
                direction: "out".into(),
                backfill: 0,
                nick_format: Some(String::new()),
                options: serde_json::json!({"format": "standard", "secret": secret, "allow_private_target": true}),
            })
            .await?;
        links.push(status.id);
    }
    let included = record_inclusions(&node, |id, _| id.to_hex());
    println!(
        "rumgate bench gateway: 1 group → {} webhook links, {} posts at {}/s",
        a.links, a.posts, a.rate
    );

    let check = |phase: &str, prefix: &str, n: usize| -> bool {
        let expected: Vec<String> = (0..n).map(|i| format!("{prefix}{i:05}")).collect();
        let mut ok = true;
        for i in 0..a.links {
            let got: Vec<String> = receiver
                .texts(&format!("r{i}"))
                .into_iter()
                .filter(|t| t.starts_with(prefix))
                .collect();
            if got != expected {
                ok = false;
                eprintln!(
                    "{phase}: receiver r{i} got {} of {n} (in order: {})",
                    got.len(),
                    got.iter().zip(&expected).all(|(x, y)| x == y)
                );
            }
        }
        ok
    };
    let wait_all = |prefix: &'static str, n: usize, limit: Duration| {
        let receiver = receiver.clone();
        let links = a.links;
        async move {
            let deadline = Instant::now() + limit;
            loop {
                let done = (0..links).all(|i| {
                    receiver
                        .texts(&format!("r{i}"))
                        .iter()
                        .filter(|t| t.starts_with(prefix))
                        .count()
                        >= n
                });
                if done || Instant::now() > deadline {
                    return done;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Phase 1: healthy receivers.
    let start = Instant::now();
    post_paced(&node, gid, a.posts, a.rate, "h").await?;
    let all = wait_all("h", a.posts, Duration::from_secs(120)).await;
    let elapsed = start.elapsed();
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat: Vec<Duration> = receiver
        .deliveries()
        .iter()
        .filter(|d| {
            !d.repeat
                && d.body["data"]["object"]["content"]
                    .as_str()
                    .is_some_and(|t| t.starts_with('h'))
        })
        .filter_map(|d| {
            let id = d.body["data"]["trx_id"].as_str()?;
            Some(d.at.saturating_duration_since(*inc.get(id)?))
        })
        .collect();
    lat.sort();
    let exact = check("healthy", "h", a.posts);
    let repeats = receiver.deliveries().iter().filter(|d| d.repeat).count();
    println!(
        "healthy: {} deliveries in {:.1} s; all delivered: {all}; exactly once and in order on every link: {exact}; repeats: {repeats}",
        lat.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "healthy: included→delivered p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );

    // Phase 2: receiver r0 answers 500 for a while, then recovers.
    if a.outage_secs > 0 {
        let outage = Duration::from_secs(a.outage_secs);
        receiver.fail_path_for("r0", outage, Fault::Status(500));
        let t0 = Instant::now();
        post_paced(&node, gid, a.posts, a.rate, "o").await?;
        let all = wait_all("o", a.posts, outage + Duration::from_secs(300)).await;
        let exact = check("outage", "o", a.posts);
        let refused = receiver.refused().len();
        let after = t0.elapsed().saturating_sub(outage);
        println!(
            "outage: r0 answered 500 for {} s ({refused} refused attempts); all delivered: {all}; exactly once and in order on every link: {exact}; r0 caught up {:.1} s after recovery",
            a.outage_secs,
            after.as_secs_f64()
        );
    }
    node.shutdown().await;
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
