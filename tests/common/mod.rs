//! Helpers shared by integration tests: real nodes on 127.0.0.1:0 in temp dirs, polling.
#![allow(dead_code)]

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
