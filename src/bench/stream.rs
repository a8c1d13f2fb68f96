//! `rumgate bench stream`: SSE fan-out to N clients at a fixed post rate; RSS per idle client.

use super::harness::{
    bench_config, ms, percentile, record_inclusions, rss_kib, spawn_node, tempfile_dir, BENCH_TOKEN,
};
use super::ingest::open_loop;
use crate::chain::GroupKind;
use crate::node::Node;
use anyhow::Context;
use clap::Args;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub(super) async fn run(a: StreamArgs) -> anyhow::Result<()> {
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
