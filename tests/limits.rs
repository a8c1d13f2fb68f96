//! Resource limits of the API over real sockets: header and request timeouts, the connection cap,
//! body limits per route, WebSocket message size and idle timeout, streams of revoked tokens, and
//! pages bounded by bytes. Every wait polls with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::Api;
use common::{eventually, TOKEN};
use futures::{SinkExt, StreamExt};
use rumgate::config::Config;
use rumgate::Node;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(20);

async fn node_with(dir: &std::path::Path, tune: impl FnOnce(&mut Config)) -> Node {
    let mut cfg = common::config(dir);
    tune(&mut cfg);
    Node::start(cfg).await.expect("node starts")
}

/// Reads until the server closes the connection; what it sent first.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("the server kept the connection open")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| c.api.header_timeout_ms = 300).await;
    // Slowloris: a request line and one header, then nothing.
    let mut slow = TcpStream::connect(node.api_addr()).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: rumgate\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut slow).await;
    assert!(
        !answered.starts_with(b"HTTP/1.1 200"),
        "an unfinished request was served"
    );
    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(node.api_addr()).await.unwrap();
    read_until_closed(&mut silent).await;
    // A keep-alive connection idle after one request too; the request itself was served.
    let mut idle = TcpStream::connect(node.api_addr()).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: rumgate\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle).await;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_request_that_is_not_answered_in_time_gets_408_json() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| c.api.request_timeout_ms = 300).await;
    // Headers arrive, the announced body never does.
    let mut slow = TcpStream::connect(node.api_addr()).await.unwrap();
    slow.write_all(
        b"POST /hooks/lnk_x HTTP/1.1\r\nHost: rumgate\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"content\"",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, slow.read(&mut buf))
        .await
        .expect("no answer to a stalled request")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    node.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| {
        c.api.max_connections = 2;
        c.api.header_timeout_ms = 60_000;
    })
    .await;
    let metrics = node.engine().metrics().clone();
    let a = TcpStream::connect(node.api_addr()).await.unwrap();
    let _b = TcpStream::connect(node.api_addr()).await.unwrap();
    eventually(DEADLINE, "both connections served", || async {
        (metrics.api_connections.get() == 2).then_some(())
    })
    .await;
    let mut c = TcpStream::connect(node.api_addr()).await.unwrap();
    let _ = c
        .write_all(b"GET /health HTTP/1.1\r\nHost: rumgate\r\n\r\n")
        .await;
    let answered = read_until_closed(&mut c).await;
    assert!(answered.is_empty(), "served beyond the cap");
    assert_eq!(metrics.api_connections_refused.get(), 1);
    // A place frees up when a connection ends.
    drop(a);
    let api = Api::of(&node);
    eventually(DEADLINE, "served again", || async {
        let r = api.http.get(format!("{}/health", api.base)).send().await;
        r.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn each_route_has_its_body_limit_and_answers_413_json() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| {
        c.api.max_body_bytes = 8192;
        c.api.max_hook_body_bytes = 4096;
        c.api.max_other_body_bytes = 2048;
    })
    .await;
    let api = Api::of(&node);
    let gid = api.group("limits").await;
    let post = |path: String, body: Vec<u8>, chunked: bool| {
        let http = api.http.clone();
        let url = format!("{}{path}", api.base);
        async move {
            let body = if chunked {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
                reqwest::Body::wrap_stream(futures::stream::iter(chunks))
            } else {
                reqwest::Body::from(body)
            };
            let resp = http
                .post(url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let note = |n: usize| serde_json::to_vec(&json!({"content": "x".repeat(n)})).unwrap();
    let posts = format!("/api/v1/groups/{gid}/posts");
    for chunked in [false, true] {
        // Posts: 8 KiB.
        let (s, v) = post(posts.clone(), note(6000), chunked).await;
        assert_eq!(s, 202, "a post under its limit (chunked {chunked}): {v}");
        let (s, v) = post(posts.clone(), note(9000), chunked).await;
        assert_eq!((s, code(&v)), (413, "too_large"), "chunked {chunked}");
        // Hooks: 4 KiB (checked before the link is even looked up).
        let (s, v) = post("/hooks/lnk_unknown".into(), note(5000), chunked).await;
        assert_eq!((s, code(&v)), (413, "too_large"), "chunked {chunked}");
        let (s, v) = post("/hooks/lnk_unknown".into(), note(3000), chunked).await;
        assert_eq!((s, code(&v)), (404, "unknown_link"), "chunked {chunked}");
        // Everything else: 2 KiB.
        let group = serde_json::to_vec(&json!({"name": "g".repeat(3000)})).unwrap();
        let (s, v) = post("/api/v1/groups".into(), group, chunked).await;
        assert_eq!((s, code(&v)), (413, "too_large"), "chunked {chunked}");
    }
    let texts = eventually(DEADLINE, "the two posts included", || async {
        let t = api.texts(&gid).await;
        (t.len() >= 2).then_some(t)
    })
    .await;
    assert_eq!(texts.len(), 2, "only the posts under the limit");
    node.shutdown().await;
}

async fn ws_connect(
    node: &Node,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut req = format!("ws://{}/api/v1/ws", node.api_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The close code the server ended the socket with (`None` if it just went away).
async fn closed_with<S>(ws: &mut S) -> Option<u16>
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("the socket stayed open")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_closes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| c.api.ws_max_message_bytes = 4096).await;
    let mut ws = ws_connect(&node, TOKEN).await;
    // Under the limit: read and answered.
    ws.send(Message::Text("x".repeat(3000).into()))
        .await
        .unwrap();
    let answer = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(answer["error"]["code"], "invalid_message");
    // Over it: the socket is closed (1009, message too big).
    let _ = ws.send(Message::Text("x".repeat(8192).into())).await;
    let code = closed_with(&mut ws).await;
    assert!(matches!(code, Some(1009) | None), "{code:?}");
    let metrics = node.engine().metrics().clone();
    eventually(DEADLINE, "the session ended", || async {
        (!metrics
            .render()
            .contains(r#"rumgate_stream_clients{kind="ws"} 1"#))
        .then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_websocket_that_goes_silent_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| c.api.ws_idle_timeout_ms = 300).await;
    let metrics = node.engine().metrics().clone();
    // Connected, then never read: the server's pings go unanswered.
    let mut ws = ws_connect(&node, TOKEN).await;
    eventually(DEADLINE, "the session counted", || async {
        metrics
            .render()
            .contains(r#"rumgate_stream_clients{kind="ws"} 1"#)
            .then_some(())
    })
    .await;
    eventually(DEADLINE, "the idle session ended", || async {
        metrics
            .render()
            .contains(r#"rumgate_stream_clients{kind="ws"} 0"#)
            .then_some(())
    })
    .await;
    let code = closed_with(&mut ws).await;
    assert!(matches!(code, Some(1001) | None), "{code:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn revoking_a_token_ends_the_streams_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |_| {}).await;
    let api = Api::of(&node);
    let gid = api.group("revoke").await;
    let created = api
        .post_ok(
            "/api/v1/tokens",
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    let (token, id) = (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    );
    let open_sse = |token: String| {
        let (http, url) = (
            api.http.clone(),
            format!("{}/api/v1/groups/{gid}/stream", api.base),
        );
        async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            eventsource_stream::Eventsource::eventsource(resp.bytes_stream())
        }
    };
    let mut reader_sse = open_sse(token.clone()).await;
    let mut admin_sse = open_sse(TOKEN.to_string()).await;
    let mut reader_ws = ws_connect(&node, &token).await;
    // Both streams work before the revocation.
    let first = api.note(&gid, "before").await;
    let ev = tokio::time::timeout(DEADLINE, reader_sse.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(ev.data.contains(&first), "{}", ev.data);

    let (s, v) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The reader's SSE response ends; its WebSocket is closed with 1008.
    loop {
        match tokio::time::timeout(DEADLINE, reader_sse.next())
            .await
            .expect("the revoked token's stream stayed open")
        {
            None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the stream broke instead of ending: {e}"),
        }
    }
    assert_eq!(closed_with(&mut reader_ws).await, Some(1008));
    // Other tokens' streams go on.
    let second = api.note(&gid, "after").await;
    let mut seen = Vec::new();
    while !seen.iter().any(|d: &String| d.contains(&second)) {
        let ev = tokio::time::timeout(DEADLINE, admin_sse.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(ev.data);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn pages_and_stream_catch_up_stop_at_the_byte_budget_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), |c| c.api.page_bytes = 64 * 1024).await;
    let api = Api::of(&node);
    let gid = api.group("budget").await;
    // Six posts of 30 kB: no page of 64 KiB holds them all.
    let mut ids = Vec::new();
    for i in 0..6 {
        let text = format!("{i}{}", "y".repeat(30_000));
        let v = api.note_wait(&gid, json!({"content": text})).await;
        ids.push(v["trx_id"].as_str().unwrap().to_string());
    }
    let mut got = Vec::new();
    let mut after = "0".to_string();
    let mut pages = 0;
    loop {
        let v = api
            .get(&format!(
                "/api/v1/groups/{gid}/posts?limit=50&after={after}"
            ))
            .await;
        let items = v["items"].as_array().unwrap();
        if items.is_empty() {
            assert_eq!(v["next_cursor"], after.as_str(), "the end stays put");
            break;
        }
        assert!(items.len() < 6, "one page held everything");
        got.extend(
            items
                .iter()
                .map(|i| i["trx_id"].as_str().unwrap().to_string()),
        );
        after = v["next_cursor"].as_str().unwrap().to_string();
        pages += 1;
        assert!(pages < 20, "no progress");
    }
    assert_eq!(got, ids, "every post once, in order, across pages");

    // Blocks: a page of headers stops at the budget (about 110 headers in 64 KiB).
    for i in 0..130 {
        api.note_wait(&gid, json!({"content": format!("small {i}")}))
            .await;
    }
    let group = api.get(&format!("/api/v1/groups/{gid}")).await;
    let height = group["height"].as_u64().unwrap();
    assert!(height >= 136, "{group}");
    let mut heights = Vec::new();
    let mut from = 1;
    loop {
        let v = api
            .get(&format!(
                "/api/v1/groups/{gid}/blocks?from={from}&limit=200"
            ))
            .await;
        let blocks = v["blocks"].as_array().unwrap();
        if blocks.is_empty() {
            break;
        }
        assert!(blocks.len() < 200, "the byte budget did not cut the page");
        heights.extend(blocks.iter().map(|b| b["height"].as_u64().unwrap()));
        from = v["next_from"].as_u64().unwrap();
    }
    assert_eq!(heights, (1..=height).collect::<Vec<_>>());

    // The stream's catch-up reads in budget-sized batches and still delivers everything.
    let resp = api
        .http
        .get(format!("{}/api/v1/groups/{gid}/stream", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut sse = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
    let mut streamed = Vec::new();
    while streamed.len() < 136 {
        let ev = tokio::time::timeout(DEADLINE, sse.next())
            .await
            .expect("catch-up stalled")
            .unwrap()
            .unwrap();
        let item: Value = serde_json::from_str(&ev.data).unwrap();
        streamed.push(item["trx_id"].as_str().unwrap().to_string());
    }
    assert_eq!(&streamed[..6], &ids[..], "the large posts first, in order");
    node.shutdown().await;
}
