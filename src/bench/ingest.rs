//! `rumgate bench ingest`: signed 1 KiB Notes through the real HTTP API of an in-process node,
//! closed loop then open loop; throughput, post→included latency, and machine baselines.

use super::harness::{
    bench_config, closed_loop_with, ms, open_loop_with, percentile, record_inclusions,
    tempfile_dir, Phase, BENCH_TOKEN,
};
use crate::chain::GroupKind;
use crate::crypto::Identity;
use crate::node::Node;
use clap::Args;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

pub(super) async fn open_loop(
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

pub(super) async fn run(a: IngestArgs) -> anyhow::Result<()> {
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
