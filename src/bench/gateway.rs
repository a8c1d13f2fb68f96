//! `rumgate bench gateway` (one group → N outbound webhook links) and the set-up and checks
//! the Mixin and Telegram benches share (`GatewayBench`, paced posting, inbound checks).

use super::harness::{bench_config, ms, pace, percentile, record_inclusions, tempfile_dir};
use crate::chain::{GroupId, GroupKind};
use crate::engine::feed::open_post;
use crate::gateways::NewLink;
use crate::node::Node;
use clap::Args;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

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

pub(super) async fn run(a: GatewayArgs) -> anyhow::Result<()> {
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

/// Every included post of `gid`: (trx id, content, origin message id).
pub(super) async fn posts(
    node: &Node,
    gid: GroupId,
) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    let entry = node.engine().group(&gid)?;
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let rows = node.engine().store().list_trx(gid, cursor, 500).await?;
        let Some(last) = rows.last() else { break };
        cursor = last.seq;
        for row in rows {
            if let Some(p) = open_post(&row.trx, entry.key.as_ref()) {
                out.push((
                    row.trx.trx_id().to_hex(),
                    p.object["content"].as_str().unwrap_or_default().to_string(),
                    p.origin
                        .as_ref()
                        .and_then(|o| o["message_id"].as_str())
                        .map(str::to_string),
                ));
            }
        }
    }
    Ok(out)
}

/// Inclusion instants by trx id (hex), as `record_inclusions` keeps them.
pub(super) type Included = std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>>;

/// Polls until `gid` holds at least `n` posts and every one of them has an inclusion instant;
/// returns the posts and whether that happened within `limit`.
pub(super) async fn wait_included(
    node: &Node,
    gid: GroupId,
    n: usize,
    included: &Included,
    limit: Duration,
) -> anyhow::Result<(Vec<(String, String, Option<String>)>, bool)> {
    let deadline = Instant::now() + limit;
    loop {
        let stored = posts(node, gid).await?;
        let all_included = {
            let inc = included.lock().unwrap_or_else(|p| p.into_inner());
            stored.iter().all(|(trx, _, _)| inc.contains_key(trx))
        };
        if stored.len() >= n && all_included {
            return Ok((stored, true));
        }
        if Instant::now() > deadline {
            return Ok((stored, false));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How the posts of an inbound phase (`i00000`, `i00001`, … from the injected message ids
/// `want`) were stored.
pub(super) struct InboundCheck<'a> {
    /// Injected message id → the trx that carries it.
    pub by_message: HashMap<&'a str, &'a str>,
    /// Trx carrying an injected message (beyond `want.len()`: duplicates).
    pub per_message: usize,
    /// Every text, once, in injection order.
    pub in_order: bool,
}

pub(super) fn check_inbound<'a>(
    stored: &'a [(String, String, Option<String>)],
    want: &HashSet<String>,
) -> InboundCheck<'a> {
    let by_message = stored
        .iter()
        .filter_map(|(trx, _, m)| Some((m.as_deref()?, trx.as_str())))
        .filter(|(m, _)| want.contains(*m))
        .collect();
    let per_message = stored
        .iter()
        .filter(|(_, _, m)| m.as_ref().is_some_and(|m| want.contains(m)))
        .count();
    let in_order = stored
        .iter()
        .map(|(_, t, _)| t.clone())
        .eq((0..want.len()).map(|i| format!("i{i:05}")));
    InboundCheck {
        by_message,
        per_message,
        in_order,
    }
}

/// A bench node with one gateway account (`bench`) and two groups, one to link out and one to
/// link in; nicknames off so texts arrive as posted.
pub(super) struct GatewayBench {
    pub dir: std::path::PathBuf,
    pub node: Node,
    pub out_group: GroupId,
    pub in_group: GroupId,
}

impl GatewayBench {
    pub(super) async fn start(kind: &str, config: serde_json::Value) -> anyhow::Result<Self> {
        let dir = tempfile_dir(&format!("rumgate-bench-{kind}"))?;
        let mut cfg = bench_config(&dir)?;
        // No fixed p2p port: the bench must not collide with a running node.
        cfg.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        let node = Node::start(cfg).await?;
        node.gateways()
            .create_account(kind, "bench", config)
            .await?;
        let group = |suffix: &'static str| {
            let name = format!("{kind}-bench-{suffix}");
            let engine = node.engine().clone();
            async move { anyhow::Ok(engine.create_group(&name, GroupKind::Public).await?.id()) }
        };
        let out_group = group("out").await?;
        let in_group = group("in").await?;
        Ok(Self {
            dir,
            node,
            out_group,
            in_group,
        })
    }

    pub(super) async fn link(
        &self,
        group_id: GroupId,
        chat: &str,
        direction: &str,
    ) -> anyhow::Result<()> {
        self.node
            .gateways()
            .create_link(NewLink {
                group_id,
                gateway: "bench".into(),
                chat: chat.to_string(),
                direction: direction.into(),
                backfill: 0,
                nick_format: Some(String::new()),
                options: serde_json::json!({}),
            })
            .await?;
        Ok(())
    }

    /// Posts `o00000`, `o00001`, … to the out-group at `rate` per second, calling `before(i)`
    /// ahead of post `i` (to inject faults); returns text → trx id.
    pub(super) async fn post_paced(
        &self,
        n: usize,
        rate: u64,
        mut before: impl FnMut(usize),
    ) -> anyhow::Result<HashMap<String, String>> {
        let start = Instant::now();
        let mut posted = HashMap::new();
        for i in 0..n {
            pace(start, rate, i).await;
            before(i);
            let text = format!("o{i:05}");
            let p = self
                .node
                .engine()
                .post(
                    &self.out_group,
                    serde_json::json!({"content": text}),
                    Default::default(),
                )
                .await?;
            posted.insert(text, p.trx_id.to_hex());
        }
        Ok(posted)
    }

    pub(super) async fn stop(self) {
        self.node.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
