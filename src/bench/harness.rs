//! What every bench shares: a node config, temp dirs, open/closed-loop posting, inclusion
//! records, percentiles, a spawned `rumgate run`, and a fast store fill.

use crate::chain::verify::{produce_block, verify_genesis, verify_trx, GroupRules};
use crate::chain::{Consensus, Genesis, GenesisBody, GroupKind, Head, Trx, PROTOCOL_VERSION};
use crate::config::Config;
use crate::crypto::{random_bytes, GroupKey};
use crate::engine::ChainEvent;
use crate::node::Node;
use crate::store::Store;
use crate::util::now_ms;
use anyhow::Context;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(super) const BENCH_TOKEN: &str = "bench-token-0123456789abcdef";

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Records when each trx was included, from the node's chain events, under `key(trx, cursor)`.
pub(super) fn record_inclusions<K: std::hash::Hash + Eq + Send + 'static>(
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
pub(super) struct Phase<K = String> {
    pub(crate) sent: Vec<(K, Instant)>,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
}

/// Open loop: post `i` (by `post(i)`) is due at start + i/rate whatever happened to earlier ones.
pub(super) async fn open_loop_with<K, F, Fut>(n: usize, rate: u64, mut post: F) -> Phase<K>
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
pub(super) async fn closed_loop_with<K, F, Fut>(n: usize, conc: usize, post: F) -> Phase<K>
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

/// An in-process node's config: `dir`, API on 127.0.0.1:0, the bench token.
pub(super) fn bench_config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.api.listen = "127.0.0.1:0".parse()?;
    cfg.api.token = Some(SecretString::from(BENCH_TOKEN.to_string()));
    Ok(cfg)
}

pub(super) fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Spawns `rumgate run` on `dir` with port 0; returns the child and its API base URL.
pub(super) fn spawn_node(
    dir: &std::path::Path,
) -> anyhow::Result<(std::process::Child, String, Instant)> {
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

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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

/// Sleeps until item `i` of a paced run is due.
pub(super) async fn pace(start: Instant, rate: u64, i: usize) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    tokio::time::sleep_until((start + interval * i as u32).into()).await;
}

pub(super) async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
