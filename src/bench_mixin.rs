//! `rumgate bench mixin`: the Mixin adapter in a real node against the fake Mixin (REST + Blaze
//! on 127.0.0.1).
//!
//! * Outbound: N posts in one group, linked out to C conversations, while a share of
//!   `POST /messages` calls answers a 202-wrapped 429 and two calls lose their connection after
//!   Mixin took the messages; checks every conversation got every post once, in order.
//! * Inbound: M messages from a Mixin user at a fixed rate, with two Blaze socket drops; prints
//!   push→trx latency (Blaze push to inclusion in the chain) and checks each is stored once.

use crate::bench::{bench_config, ms, percentile, record_inclusions, tempfile_dir};
use crate::chain::{GroupId, GroupKind};
use crate::gateways::NewLink;
use crate::node::feed::open_post;
use crate::node::Node;
use clap::Args;
use rumgate_mixin::fake::{FakeBot, FakeMixin, Fault, DAVE};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct MixinArgs {
    /// Posts in the outbound phase.
    #[arg(long, default_value_t = 1000)]
    pub posts: usize,
    /// Conversations the group is linked out to.
    #[arg(long, default_value_t = 3)]
    pub conversations: usize,
    /// Share of `POST /messages` calls answered with a 202-wrapped 429, in percent.
    #[arg(long, default_value_t = 20)]
    pub rate_limited_percent: u64,
    /// First pause after a 429 (the account's `rate_limit_backoff_ms`).
    #[arg(long, default_value_t = 50)]
    pub backoff_ms: u64,
    /// Messages in the inbound phase.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Posts and messages per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
}

/// Sleeps until item `i` of a paced run is due.
pub(crate) async fn pace(start: Instant, rate: u64, i: usize) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    tokio::time::sleep_until((start + interval * i as u32).into()).await;
}

pub(crate) async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Every included post of `gid`: (trx id, content, origin message id).
pub(crate) async fn posts(
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
pub(crate) type Included = std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>>;

/// Polls until `gid` holds at least `n` posts and every one of them has an inclusion instant;
/// returns the posts and whether that happened within `limit`.
pub(crate) async fn wait_included(
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
pub(crate) struct InboundCheck<'a> {
    /// Injected message id → the trx that carries it.
    pub by_message: HashMap<&'a str, &'a str>,
    /// Trx carrying an injected message (beyond `want.len()`: duplicates).
    pub per_message: usize,
    /// Every text, once, in injection order.
    pub in_order: bool,
}

pub(crate) fn check_inbound<'a>(
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
pub(crate) struct GatewayBench {
    pub dir: std::path::PathBuf,
    pub node: Node,
    pub out_group: GroupId,
    pub in_group: GroupId,
}

impl GatewayBench {
    pub(crate) async fn start(kind: &str, config: serde_json::Value) -> anyhow::Result<Self> {
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

    pub(crate) async fn link(
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
    pub(crate) async fn post_paced(
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

    pub(crate) async fn stop(self) {
        self.node.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn run(a: MixinArgs) -> anyhow::Result<()> {
    let fake = FakeMixin::start(FakeBot::fixture()).await?;
    let bot = fake.bot().user_id.clone();
    fake.add_user(DAVE, "Dave");
    let convs: Vec<String> = (0..a.conversations)
        .map(|i| rumgate_mixin::unique_conversation_id(&bot, &format!("bench-out-{i}")))
        .collect();
    for c in &convs {
        fake.add_group(c, &[]);
    }
    let inbound_conv = rumgate_mixin::unique_conversation_id(&bot, "bench-in");
    fake.add_group(&inbound_conv, &[]);
    let mut config = fake.config_json();
    config["rate_limit_backoff_ms"] = a.backoff_ms.into();
    let bench = GatewayBench::start("mixin", config).await?;
    let (node, out_group, in_group) = (&bench.node, bench.out_group, bench.in_group);
    for c in &convs {
        bench.link(out_group, c, "out").await?;
    }
    bench.link(in_group, &inbound_conv, "in").await?;
    let included = record_inclusions(node, |id, _| id.to_hex());

    // Outbound.
    let every = (100 / a.rate_limited_percent.clamp(1, 100)).max(1);
    println!(
        "rumgate bench mixin: outbound {} posts → {} conversations at {}/s, every {every}th \
         POST /messages answers 202 {{\"error\":{{\"code\":429}}}}, 2 connections dropped after Mixin \
         took the messages; 429 backoff starts at {} ms",
        a.posts, a.conversations, a.rate, a.backoff_ms
    );
    fake.rate_limit_every(Some(every));
    let start = Instant::now();
    let posted = bench
        .post_paced(a.posts, a.rate, |i| {
            if i == a.posts / 3 || i == 2 * a.posts / 3 {
                fake.fail_messages([Fault::DropAfterApply]);
                fake.drop_sockets();
            }
        })
        .await?;
    let expected: Vec<String> = (0..a.posts).map(|i| format!("o{i:05}")).collect();
    let all = wait_for(Duration::from_secs(600), || {
        convs.iter().all(|c| fake.bot_texts(c).len() >= a.posts)
    })
    .await;
    let elapsed = start.elapsed();
    fake.rate_limit_every(None);
    let calls = fake.calls();
    let message_calls = calls.iter().filter(|c| c.path == "/messages").count();
    let limited = calls.iter().filter(|c| c.error_code == Some(429)).count();
    let dropped = calls.iter().filter(|c| c.dropped).count();
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mut lost, mut duplicated, mut in_order) = (0, 0, true);
    let mut lat = Vec::new();
    for c in &convs {
        let got = fake.messages(c);
        let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
        let unique: HashSet<&String> = texts.iter().collect();
        lost += expected.iter().filter(|t| !unique.contains(t)).count();
        duplicated += texts.len() - unique.len();
        in_order &= texts == expected;
        for m in &got {
            if let Some(at) = posted.get(&m.text).and_then(|trx| inc.get(trx)) {
                lat.push(m.at.saturating_duration_since(*at));
            }
        }
    }
    lat.sort();
    println!(
        "outbound: all delivered: {all} in {:.1} s; lost {lost}, duplicated {duplicated}, in order \
         in every conversation: {in_order}",
        elapsed.as_secs_f64()
    );
    println!(
        "outbound: {message_calls} POST /messages calls, {limited} answered 429 ({:.1} %), {dropped} \
         dropped after acceptance, {} repeated message ids ignored by Mixin",
        100.0 * limited as f64 / message_calls.max(1) as f64,
        fake.repeated_ids()
    );
    println!(
        "outbound: included→in Mixin p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );

    // Inbound.
    println!(
        "inbound: {} messages from Mixin at {}/s, Blaze sockets dropped twice",
        a.messages, a.rate
    );
    let connections_before = fake.connections();
    let start = Instant::now();
    let mut injected = Vec::with_capacity(a.messages);
    for i in 0..a.messages {
        pace(start, a.rate, i).await;
        if i == a.messages / 3 || i == 2 * a.messages / 3 {
            fake.drop_sockets();
        }
        let id = fake.inject_text(&inbound_conv, DAVE, &format!("i{i:05}"));
        injected.push((id, Instant::now()));
    }
    let all = wait_for(Duration::from_secs(300), || {
        injected.iter().all(|(id, _)| fake.is_acked(id))
    })
    .await;
    let elapsed = start.elapsed();
    // Inclusion events may trail the acks by a block.
    let want: HashSet<String> = injected.iter().map(|(id, _)| id.clone()).collect();
    let (stored, _) = wait_included(
        node,
        in_group,
        want.len(),
        &included,
        Duration::from_secs(2),
    )
    .await?;
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let InboundCheck {
        by_message,
        per_message,
        in_order,
    } = check_inbound(&stored, &want);
    let (mut push_lat, mut inject_lat) = (Vec::new(), Vec::new());
    for (id, at) in &injected {
        let Some(done) = by_message.get(id.as_str()).and_then(|t| inc.get(*t)) else {
            continue;
        };
        inject_lat.push(done.saturating_duration_since(*at));
        if let Some(pushed) = fake.first_delivery(id) {
            push_lat.push(done.saturating_duration_since(pushed));
        }
    }
    push_lat.sort();
    inject_lat.sort();
    let redelivered = injected
        .iter()
        .filter(|(id, _)| fake.deliveries(id) > 1)
        .count();
    println!(
        "inbound: all acknowledged: {all} in {:.1} s; stored {} of {} ({} trx for them: duplicated {}), \
         in order: {in_order}; {} Blaze connections, {redelivered} messages delivered again",
        elapsed.as_secs_f64(),
        by_message.len(),
        a.messages,
        per_message,
        per_message.saturating_sub(want.len()),
        fake.connections() - connections_before + 1,
    );
    println!(
        "inbound: Blaze push→trx included p50 {}  p90 {}  p99 {}  max {}  (target p99 ≤ 100 ms)",
        ms(percentile(&push_lat, 0.50)),
        ms(percentile(&push_lat, 0.90)),
        ms(percentile(&push_lat, 0.99)),
        ms(push_lat.last().copied().unwrap_or_default())
    );
    println!(
        "inbound: injected→trx included (includes time disconnected) p50 {}  p99 {}  max {}",
        ms(percentile(&inject_lat, 0.50)),
        ms(percentile(&inject_lat, 0.99)),
        ms(inject_lat.last().copied().unwrap_or_default())
    );
    bench.stop().await;
    fake.stop();
    Ok(())
}
