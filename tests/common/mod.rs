//! Helpers shared by integration tests: real nodes on 127.0.0.1:0 in temp dirs, polling.
#![allow(dead_code)]

pub mod http;
pub mod testnet;

use rumgate::api::{router, ApiState};
use rumgate::{Config, Node};
use secrecy::SecretString;
use std::future::Future;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.api.listen = "127.0.0.1:0".parse().unwrap();
    cfg.api.token = Some(SecretString::from(TOKEN.to_string()));
    cfg.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    cfg
}

pub async fn start_node(dir: &std::path::Path) -> Node {
    Node::start(config(dir)).await.expect("node starts")
}

/// The node's router, for `oneshot` tests without a socket.
pub fn app(node: &Node) -> axum::Router {
    router(ApiState::new(
        node.engine().clone(),
        SecretString::from(TOKEN.to_string()),
        node.api_addr(),
        1024 * 1024,
    ))
}

/// Polls `f` until it yields `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls the node's API through its router (no socket); returns status and JSON body.
pub async fn api(
    node: &Node,
    method: axum::http::Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            axum::body::Body::from(b.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let resp = app(node).oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Starts the real binary: `rumgate run --data-dir <dir>` with the API and p2p on port 0 of
/// 127.0.0.1 (unless `args` names `--api-listen`), `args` and `envs` added. Returns the child and
/// its API base URL, read from its stdout (which keeps being drained so it never blocks).
pub fn spawn_run(
    dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rumgate"));
    cmd.arg("run")
        .arg("--data-dir")
        .arg(dir)
        .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if !args.contains(&"--api-listen") {
        cmd.args(["--api-listen", "127.0.0.1:0"]);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn rumgate");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("rumgate exited before listening")
            .expect("stdout line");
        if let Some(u) = line.strip_prefix("API listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}
