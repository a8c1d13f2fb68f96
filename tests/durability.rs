//! Acknowledged posts survive `kill -9` of the real binary; SIGTERM shuts down cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, TOKEN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

struct Proc {
    child: Child,
    base: String,
}

/// Starts `rumgate run` on port 0.
fn spawn(dir: &Path, extra: &[&str]) -> Proc {
    let (child, base) = common::spawn_run(dir, extra, &[("RUMGATE_API_TOKEN", TOKEN)]);
    Proc { child, base }
}

async fn api(
    client: &reqwest::Client,
    p: &Proc,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client
        .request(method, format!("{}{path}", p.base))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn acknowledged_posts_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // A long batching window keeps the acknowledged trx pending when the kill lands.
    let cfg = dir.path().join("slow.toml");
    std::fs::write(&cfg, "[chain]\nbatch_window_ms = 1000\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let mut p = spawn(dir.path(), &["--config", &cfg]);
    let (s, g) = api(
        &client,
        &p,
        reqwest::Method::POST,
        "/api/v1/groups",
        Some(json!({"name": "durable"})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["group_id"].as_str().unwrap().to_string();

    // 300 posts from 10 concurrent writers; remember every acknowledged trx id.
    let mut acked = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..10 {
        let client = client.clone();
        let base = p.base.clone();
        let gid = gid.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..30 {
                let resp = client
                    .post(format!("{base}/api/v1/groups/{gid}/posts"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"content": format!("w{w} #{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 202);
                let v: Value = resp.json().await.unwrap();
                ids.push(v["trx_id"].as_str().unwrap().to_string());
            }
            ids
        });
    }
    while let Some(ids) = tasks.join_next().await {
        acked.extend(ids.unwrap());
    }
    let (_, last) = api(
        &client,
        &p,
        reqwest::Method::GET,
        &format!("/api/v1/trx/{}", acked[acked.len() - 1]),
        None,
    )
    .await;
    eprintln!(
        "status of the last acknowledged trx at kill time: {}",
        last["status"]
    );
    // Hard kill (SIGKILL) right after the last acknowledgement.
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    let mut p = spawn(dir.path(), &[]);
    let items = eventually(
        Duration::from_secs(20),
        "all acknowledged posts included",
        || {
            let client = client.clone();
            let base = p.base.clone();
            let gid = gid.clone();
            async move {
                let mut all = Vec::new();
                let mut after = "0".to_string();
                loop {
                    let v: Value = client
                        .get(format!(
                            "{base}/api/v1/groups/{gid}/posts?limit=500&after={after}"
                        ))
                        .bearer_auth(TOKEN)
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    let items = v["items"].as_array()?.clone();
                    if items.is_empty() {
                        break;
                    }
                    after = v["next_cursor"].as_str()?.to_string();
                    all.extend(items);
                }
                (all.len() >= 300).then_some(all)
            }
        },
    )
    .await;
    let mut got: Vec<String> = items
        .iter()
        .map(|i| i["trx_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 300, "each acknowledged post exactly once");
    got.sort();
    acked.sort();
    assert_eq!(got, acked);
    // And the node keeps working after recovery.
    let (s, _) = api(
        &client,
        &p,
        reqwest::Method::POST,
        &format!("/api/v1/groups/{gid}/posts"),
        Some(json!({"content": "after restart"})),
    )
    .await;
    assert_eq!(s, 202);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &[]);
    let client = reqwest::Client::new();
    let (s, _) = api(&client, &p, reqwest::Method::GET, "/api/v1/node", None).await;
    assert_eq!(s, 200);
    let pid = p.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = eventually(
        Duration::from_secs(10),
        "process exit after SIGTERM",
        || {
            let r = p.child.try_wait().unwrap();
            async move { r }
        },
    )
    .await;
    assert!(status.success(), "exit status {status:?}");
}
