//! `rumgate bench mixin`: the Mixin adapter in a real node against the fake Mixin (REST + Blaze
//! on 127.0.0.1).
//!
//! * Outbound: N posts in one group, linked out to C conversations, while a share of
//!   `POST /messages` calls answers a 202-wrapped 429 and two calls lose their connection after
//!   Mixin took the messages; checks every conversation got every post once, in order.
//! * Inbound: M messages from a Mixin user at a fixed rate, with two Blaze socket drops; prints
//!   push→trx latency (Blaze push to inclusion in the chain) and checks each is stored once.

use super::gateway::{check_inbound, wait_included, GatewayBench, InboundCheck};
use super::harness::{ms, pace, percentile, record_inclusions, wait_for};
use clap::Args;
use rumgate_mixin::fake::{FakeBot, FakeMixin, Fault, DAVE};
use std::collections::HashSet;
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
