//! Benchmark of the Telegram adapter against the fake Bot API; prints figures.
//!
//! ```text
//! cargo run --release -p rumgate-telegram --features fake --example bench -- \
//!     [--posts 1000] [--chats 5] [--storm 0.2] [--scale 0.1] [--inbound 1000] [--rate 100]
//! ```
//!
//! Outbound: `--posts` posts round-robin to `--chats` group chats, one outbox-like worker per chat
//! (in order; on 429 it waits `retry_after` and retries the same post; on a transient error 1 s),
//! while the fake answers 429 with retry_after 1–3 s on `--storm` of the paced calls. Pacing limits
//! are Telegram's with their windows multiplied by `--scale` (1.0 = real limits); the fake checks
//! the same limits. Then: lost, duplicated, out-of-order and pacing violations must all be 0.
//!
//! Inbound: `--inbound` updates injected at `--rate` per second; the latency is from injection to
//! the simulated node storing the event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumgate_gateway::{
    inbound_channel, Ack, Author, FormattedText, Gateway, GatewayContext, GatewayError,
    InboundEvent, OutboundMessage,
};
use rumgate_telegram::fake::FakeBotApi;
use rumgate_telegram::{PacingLimits, TelegramGateway};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Args {
    posts: usize,
    chats: usize,
    storm: f64,
    scale: f64,
    inbound: usize,
    rate: f64,
}

fn args() -> Args {
    let mut a = Args {
        posts: 1000,
        chats: 5,
        storm: 0.2,
        scale: 0.1,
        inbound: 1000,
        rate: 100.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        let bad = || -> ! {
            eprintln!("bad value for {}: {value:?}", pair[0]);
            std::process::exit(2)
        };
        match pair[0].as_str() {
            "--posts" => a.posts = value.parse().unwrap_or_else(|_| bad()),
            "--chats" => a.chats = value.parse().unwrap_or_else(|_| bad()),
            "--storm" => a.storm = value.parse().unwrap_or_else(|_| bad()),
            "--scale" => a.scale = value.parse().unwrap_or_else(|_| bad()),
            "--inbound" => a.inbound = value.parse().unwrap_or_else(|_| bad()),
            "--rate" => a.rate = value.parse().unwrap_or_else(|_| bad()),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let outbound_ok = outbound(&a).await?;
    let inbound_ok = if a.inbound > 0 {
        inbound(&a).await?
    } else {
        true
    };
    if !(outbound_ok && inbound_ok) {
        std::process::exit(1);
    }
    Ok(())
}

async fn outbound(a: &Args) -> anyhow::Result<bool> {
    let limits = PacingLimits::default().scaled(a.scale);
    let fake = FakeBotApi::start().await;
    fake.set_429_storm(a.storm, 1..=3, 42);
    let gw = Arc::new(TelegramGateway::with_pacing(fake.config(), limits)?);
    let chats: Vec<i64> = (0..a.chats as i64).map(|k| -1009000000000 - k).collect();
    println!(
        "outbound: {} posts to {} group chats, 429 on {:.0}% of paced calls (retry_after 1-3 s), \
         pacing: {} per {:?} per chat, {} per {:?} per group, {} per {:?} overall (scale {})",
        a.posts,
        a.chats,
        a.storm * 100.0,
        limits.per_chat.max,
        limits.per_chat.per,
        limits.per_group.max,
        limits.per_group.per,
        limits.overall.max,
        limits.overall.per,
        a.scale
    );
    let mut queues: HashMap<i64, Vec<(usize, String)>> = HashMap::new();
    for i in 0..a.posts {
        let chat = chats[i % chats.len()];
        queues
            .entry(chat)
            .or_default()
            .push((i, format!("post {i} to {chat}")));
    }
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let rate_limited = Arc::new(Mutex::new(0usize));
    let start = Instant::now();
    let mut workers = Vec::new();
    for (&chat, items) in &queues {
        let gw = Arc::clone(&gw);
        let items = items.clone();
        let latencies = Arc::clone(&latencies);
        let rate_limited = Arc::clone(&rate_limited);
        workers.push(tokio::spawn(async move {
            let mut delivered = Vec::new();
            for (i, text) in items {
                let msg = OutboundMessage {
                    item_id: format!("trx-{i}"),
                    group_id: "bench".into(),
                    author: Author::default(),
                    text: FormattedText::plain(text),
                    reply_to: None,
                    attachments: vec![],
                    origin: None,
                    item: None,
                };
                let first_try = Instant::now();
                loop {
                    match gw.send(&chat.to_string(), &msg).await {
                        Ok(d) => {
                            delivered.push(d);
                            break;
                        }
                        Err(GatewayError::RateLimited { retry_after }) => {
                            *rate_limited.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                            tokio::time::sleep(retry_after).await;
                        }
                        Err(GatewayError::Transient(_)) => {
                            tokio::time::sleep(Duration::from_secs(1)).await
                        }
                        Err(e) => return Err(anyhow::anyhow!("post {i}: {e}")),
                    }
                }
                latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(first_try.elapsed());
            }
            Ok(delivered)
        }));
    }
    for w in workers {
        w.await??;
    }
    let elapsed = start.elapsed();

    let mut lost = 0;
    let mut duplicated = 0;
    let mut out_of_order = 0;
    for (&chat, items) in &queues {
        let texts: Vec<String> = fake
            .visible_bot_messages(chat)
            .into_iter()
            .map(|m| m.text)
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in &texts {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        for (_, text) in items {
            match counts.get(text.as_str()) {
                None => lost += 1,
                Some(&n) if n > 1 => duplicated += n - 1,
                _ => {}
            }
        }
        let expected: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
        let mut seen: Vec<&str> = Vec::new();
        for t in &texts {
            if !seen.contains(&t.as_str()) {
                seen.push(t);
            }
        }
        out_of_order += seen.iter().zip(&expected).filter(|(a, b)| a != b).count();
    }
    let calls = fake.calls_to("sendMessage");
    let answered_429 = calls.iter().filter(|c| c.status == 429).count();
    let violations = fake.pacing_violations(&limits);
    let mut lat = latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    lat.sort();
    println!(
        "outbound: {} posts delivered in {:.1} s ({:.2} posts/s); sendMessage calls {}, answered 429 {} ({:.1}%), RateLimited returned to the outbox {}",
        a.posts,
        elapsed.as_secs_f64(),
        a.posts as f64 / elapsed.as_secs_f64(),
        calls.len(),
        answered_429,
        100.0 * answered_429 as f64 / calls.len().max(1) as f64,
        rate_limited.lock().unwrap_or_else(PoisonError::into_inner),
    );
    println!(
        "outbound: post latency (first attempt -> delivered) p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        percentile(&lat, 0.5).as_secs_f64(),
        percentile(&lat, 0.99).as_secs_f64(),
        lat.last().copied().unwrap_or_default().as_secs_f64()
    );
    println!(
        "outbound: lost {lost}, duplicated {duplicated}, out of order {out_of_order}, pacing violations {} (checked by the fake)",
        violations.len()
    );
    for v in violations.iter().take(5) {
        println!("  violation: {v}");
    }
    Ok(lost == 0 && duplicated == 0 && out_of_order == 0 && violations.is_empty())
}

async fn inbound(a: &Args) -> anyhow::Result<bool> {
    let fake = FakeBotApi::start().await;
    let gw = TelegramGateway::new(fake.config())?;
    let (sink, mut rx) = inbound_channel(64);
    let token = CancellationToken::new();
    gw.start(GatewayContext::new("telegram:bench", &sink, token.clone()))
        .await?;
    let injected: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stored: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let node = {
        let injected = Arc::clone(&injected);
        let stored = Arc::clone(&stored);
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                if let InboundEvent::Message(m) = &req.event {
                    let at = injected
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&m.message_id)
                        .copied();
                    if let Some(at) = at {
                        stored
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(m.message_id.clone())
                            .or_insert(at.elapsed());
                    }
                }
                let _ = req.respond(Ok(Ack::Stored { trx_id: "t".into() }));
            }
        })
    };
    let chat = "-1002345678901";
    let gap = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
    let start = Instant::now();
    for i in 0..a.inbound {
        tokio::time::sleep_until(start + gap * i as u32).await;
        // Registered before the injection wakes the long poll.
        let mut map = injected.lock().unwrap_or_else(PoisonError::into_inner);
        let id = fake.inject_text(chat, &format!("in {i}"));
        map.insert(id.to_string(), Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored.lock().unwrap_or_else(PoisonError::into_inner).len() < a.inbound
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    token.cancel();
    gw.shutdown().await;
    node.abort();
    let mut lat: Vec<Duration> = stored
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .copied()
        .collect();
    lat.sort();
    println!(
        "inbound: {} of {} updates stored ({} per s offered) in {:.1} s; update -> stored p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        a.inbound,
        a.rate,
        elapsed.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(lat.len() == a.inbound)
}
