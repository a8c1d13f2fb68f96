//! `rumgate bench telegram`: the Telegram adapter in a real node against the fake Bot API on
//! 127.0.0.1.
//!
//! * Outbound: N posts in one group, linked out to C group chats, while the fake answers 429
//!   (`retry_after` 1–3 s) on a share of the paced calls; checks every chat got every post once,
//!   in order, and that the fake saw no breach of the pacing limits.
//! * Inbound: M updates in a linked chat at a fixed rate; prints update→trx included latency and
//!   checks each is stored once.

use super::gateway::{check_inbound, wait_included, GatewayBench, InboundCheck};
use super::harness::{ms, pace, percentile, record_inclusions, wait_for};
use clap::Args;
use rumgate_telegram::fake::FakeBotApi;
use rumgate_telegram::PacingLimits;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct TelegramArgs {
    /// Posts in the outbound phase.
    #[arg(long, default_value_t = 1000)]
    pub posts: usize,
    /// Group chats the group is linked out to.
    #[arg(long, default_value_t = 5)]
    pub chats: usize,
    /// Share of paced calls answered 429 (retry_after 1–3 s), in percent.
    #[arg(long, default_value_t = 20)]
    pub storm_percent: u64,
    /// Telegram's pacing windows multiplied by this (1.0 = the real limits: 1,000 posts to 5
    /// group chats then take 10 minutes at 20 per minute per group).
    #[arg(long, default_value_t = 0.1)]
    pub pacing_scale: f64,
    /// Updates in the inbound phase.
    #[arg(long, default_value_t = 1000)]
    pub updates: usize,
    /// Posts and updates per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
}

pub async fn run(a: TelegramArgs) -> anyhow::Result<()> {
    let fake = FakeBotApi::start().await;
    let bench = GatewayBench::start(
        "telegram",
        serde_json::json!({"token": fake.token(), "api_url": fake.url(), "pacing_scale": a.pacing_scale}),
    )
    .await?;
    let (node, out_group, in_group) = (&bench.node, bench.out_group, bench.in_group);
    let chats: Vec<i64> = (0..a.chats as i64).map(|k| -1009000000000 - k).collect();
    for c in &chats {
        bench.link(out_group, &c.to_string(), "out").await?;
    }
    let inbound_chat = -1008000000000i64;
    bench
        .link(in_group, &inbound_chat.to_string(), "in")
        .await?;
    let included = record_inclusions(node, |id, _| id.to_hex());

    // Outbound.
    let limits = PacingLimits::default().scaled(a.pacing_scale);
    println!(
        "rumgate bench telegram: outbound {} posts → {} group chats at {}/s; 429 (retry_after 1–3 s) \
         on {} % of paced calls; pacing {} per {:?} per chat, {} per {:?} per group, {} per {:?} \
         overall (Telegram's windows × {})",
        a.posts,
        a.chats,
        a.rate,
        a.storm_percent,
        limits.per_chat.max,
        limits.per_chat.per,
        limits.per_group.max,
        limits.per_group.per,
        limits.overall.max,
        limits.overall.per,
        a.pacing_scale
    );
    fake.set_429_storm(a.storm_percent as f64 / 100.0, 1..=3, 7);
    let start = Instant::now();
    let posted = bench.post_paced(a.posts, a.rate, |_| {}).await?;
    // One post reaches each chat once it is sent: a chat holds every post after `posts / chats`
    // rounds of pacing, and 429s pause the whole bot.
    let total = a.posts * chats.len();
    let mut next_report = Instant::now() + Duration::from_secs(30);
    let all = wait_for(Duration::from_secs(3 * 3600), || {
        let delivered: usize = chats
            .iter()
            .map(|c| fake.visible_bot_messages(*c).len())
            .sum();
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(30);
            println!(
                "  … {delivered} of {total} delivered after {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
        delivered >= total
    })
    .await;
    let elapsed = start.elapsed();
    fake.clear_faults();
    let calls = fake.calls_to("sendMessage");
    let limited = calls.iter().filter(|c| c.status == 429).count();
    let violations = fake.pacing_violations(&limits);
    let expected: Vec<String> = (0..a.posts).map(|i| format!("o{i:05}")).collect();
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mut lost, mut duplicated, mut in_order) = (0, 0, true);
    for c in &chats {
        let texts: Vec<String> = fake
            .visible_bot_messages(*c)
            .into_iter()
            .map(|m| m.text)
            .collect();
        let unique: HashSet<&String> = texts.iter().collect();
        lost += expected.iter().filter(|t| !unique.contains(t)).count();
        duplicated += texts.len() - unique.len();
        in_order &= texts == expected;
    }
    let mut lat: Vec<Duration> = calls
        .iter()
        .filter(|c| c.status == 200)
        .filter_map(|c| {
            let text = c.params.get("text")?.as_str()?;
            let at = inc.get(posted.get(text)?)?;
            Some(c.at.into_std().saturating_duration_since(*at))
        })
        .collect();
    lat.sort();
    println!(
        "outbound: all delivered: {all} in {:.1} s; lost {lost}, duplicated {duplicated}, in order \
         in every chat: {in_order}; pacing violations seen by the fake: {}",
        elapsed.as_secs_f64(),
        violations.len()
    );
    for v in violations.iter().take(5) {
        println!("  violation: {v}");
    }
    println!(
        "outbound: {} sendMessage calls, {limited} answered 429 ({:.1} %)",
        calls.len(),
        100.0 * limited as f64 / calls.len().max(1) as f64
    );
    println!(
        "outbound: included→accepted by Telegram p50 {}  p90 {}  p99 {}  max {} (pacing and 429 \
         pauses set this pace)",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );

    // Inbound.
    println!("inbound: {} updates at {}/s", a.updates, a.rate);
    let start = Instant::now();
    let mut injected = Vec::with_capacity(a.updates);
    for i in 0..a.updates {
        pace(start, a.rate, i).await;
        let id = fake.inject_text(&inbound_chat.to_string(), &format!("i{i:05}"));
        injected.push((id.to_string(), Instant::now()));
    }
    let want: HashSet<String> = injected.iter().map(|(id, _)| id.clone()).collect();
    let (stored, all) = wait_included(
        node,
        in_group,
        want.len(),
        &included,
        Duration::from_secs(300),
    )
    .await?;
    let elapsed = start.elapsed();
    let inc = included.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let InboundCheck {
        by_message,
        per_message,
        in_order,
    } = check_inbound(&stored, &want);
    let mut lat = Vec::new();
    for (id, at) in &injected {
        if let Some(done) = by_message.get(id.as_str()).and_then(|t| inc.get(*t)) {
            lat.push(done.saturating_duration_since(*at));
        }
    }
    lat.sort();
    println!(
        "inbound: all stored: {all} in {:.1} s; stored {} of {} ({} trx for them: duplicated {}), \
         in order: {in_order}; offset confirmed to Telegram: {}",
        elapsed.as_secs_f64(),
        by_message.len(),
        a.updates,
        per_message,
        per_message.saturating_sub(want.len()),
        wait_for(Duration::from_secs(60), || fake
            .pending_updates()
            .is_empty())
        .await
    );
    println!(
        "inbound: update→trx included p50 {}  p90 {}  p99 {}  max {}  (target p99 ≤ 100 ms)",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    bench.stop().await;
    Ok(())
}
