//! The consumer API over real sockets: stream resume, WebSocket, idempotency, scopes, objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::Api;
use common::{eventually, start_node, TOKEN};
use futures::{SinkExt, StreamExt};
use rumgate::Node;
use serde_json::{json, Value};
use std::time::Duration;

fn code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

/// Opens the SSE stream (optionally resuming) and yields (id, item) pairs.
async fn sse(
    api: &Api,
    gid: &str,
    last_event_id: Option<&str>,
) -> impl futures::Stream<Item = (String, String, Value)> {
    let mut req = api
        .http
        .get(format!("{}/api/v1/groups/{gid}/stream", api.base))
        .bearer_auth(TOKEN);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    eventsource_stream::Eventsource::eventsource(resp.bytes_stream()).map(|e| {
        let e = e.unwrap();
        let data = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        (e.event, e.id, data)
    })
}

async fn take_items(
    stream: &mut (impl futures::Stream<Item = (String, String, Value)> + Unpin),
    n: usize,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while out.len() < n {
        let (event, id, data) = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("stream stalled")
            .expect("stream ended");
        assert_eq!(event, "message", "unexpected event {event}: {data}");
        assert_eq!(
            data["cursor"].as_str().unwrap(),
            id,
            "event id is the item cursor"
        );
        out.push((id, data));
    }
    out
}

#[tokio::test]
async fn sse_resume_delivers_exactly_the_missing_items_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("stream").await;
    let mut posted = Vec::new();
    for i in 0..50 {
        posted.push(api.note(&gid, &format!("n{i}")).await);
    }
    api.note_wait(&gid, json!({"content": "n50"})).await; // the 51st, so the first 50 are in
    posted.push(String::new());
    posted.pop();

    let mut s = Box::pin(sse(&api, &gid, None).await);
    let first = take_items(&mut s, 25).await;
    let first_ids: Vec<_> = first
        .iter()
        .map(|(_, d)| d["trx_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first_ids, posted[..25]);
    let cursor = first.last().unwrap().0.clone();
    drop(s); // disconnect

    for i in 0..25 {
        posted.push(api.note(&gid, &format!("m{i}")).await);
    }
    // Everything after the cursor: n25..n49, n50, then m0..m24 (51 items), then a sentinel.
    let mut s = Box::pin(sse(&api, &gid, Some(&cursor)).await);
    let sentinel = api.note(&gid, "sentinel").await;
    let rest = take_items(&mut s, 52).await;
    let texts: Vec<_> = rest
        .iter()
        .map(|(_, d)| d["object"]["content"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = (25..51).map(|i| format!("n{i}")).collect();
    expected.extend((0..25).map(|i| format!("m{i}")));
    expected.push("sentinel".into());
    assert_eq!(texts, expected, "no gap, no repeat, in order");
    assert_eq!(rest.last().unwrap().1["trx_id"], sentinel.as_str());
    let cursors: Vec<i64> = rest.iter().map(|(c, _)| c.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    node.shutdown().await;
}

#[tokio::test]
async fn sse_live_items_arrive_in_chain_order_while_posting_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("live").await;
    let mut s = Box::pin(sse(&api, &gid, Some("0")).await);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (base, gid) = (api.base.clone(), gid.clone());
        writers.spawn(async move {
            let api = Api {
                base,
                http: reqwest::Client::new(),
            };
            for i in 0..50 {
                api.note(&gid, &format!("w{w}-{i}")).await;
            }
        });
    }
    let items = take_items(&mut s, 200).await;
    while writers.join_next().await.is_some() {}
    // Chain order = the order the posts listing shows.
    let mut listed = Vec::new();
    let mut after = "0".to_string();
    loop {
        let v = api
            .get(&format!(
                "/api/v1/groups/{gid}/posts?limit=500&after={after}"
            ))
            .await;
        let page = v["items"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = v["next_cursor"].as_str().unwrap().to_string();
        listed.extend(
            page.iter()
                .map(|i| i["trx_id"].as_str().unwrap().to_string()),
        );
    }
    let streamed: Vec<_> = items
        .iter()
        .map(|(_, d)| d["trx_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, listed);
    // Per writer, its own posts keep their order.
    for w in 0..4 {
        let mine: Vec<_> = items
            .iter()
            .filter_map(|(_, d)| {
                d["object"]["content"]
                    .as_str()
                    .filter(|c| c.starts_with(&format!("w{w}-")))
            })
            .map(str::to_string)
            .collect();
        assert_eq!(
            mine,
            (0..50).map(|i| format!("w{w}-{i}")).collect::<Vec<_>>()
        );
    }
    node.shutdown().await;
}

/// The next JSON text frame, within a deadline.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("socket closed")
            .expect("socket error");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_subscribes_with_cursor_and_unsubscribes() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("ws").await;
    let a = api.note(&gid, "a").await;
    let b = api.note_wait(&gid, json!({"content": "b"})).await;
    let mut req = format!("ws://{}/api/v1/ws", node.api_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "group_id": gid, "after": "0"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut recv = Vec::new();
    while recv.len() < 3 {
        recv.push(next_json(&mut ws).await);
    }
    assert_eq!(recv[0]["type"], "subscribed");
    assert_eq!(recv[1]["type"], "item");
    assert_eq!(recv[1]["item"]["trx_id"], a.as_str());
    assert_eq!(recv[2]["item"]["trx_id"], b["trx_id"]);
    // Live item.
    let c = api.note(&gid, "c").await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["item"]["trx_id"], c.as_str());
    ws.send(Message::Text(
        json!({"type": "subscribe", "group_id": "nope"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "error");
    assert_eq!(m["error"]["code"], "invalid_group_id");
    ws.send(Message::Text(
        json!({"type": "unsubscribe", "group_id": gid})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "unsubscribed");
    // After unsubscribing, a new post is not delivered: the next frame answers our ping.
    api.note(&gid, "d").await;
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "pong");
    node.shutdown().await;
}

async fn post_with_key(api: &Api, gid: &str, key: &str, text: &str) -> (u16, Value) {
    let resp = api
        .http
        .post(format!("{}/api/v1/groups/{gid}/posts", api.base))
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", key)
        .json(&json!({"content": text}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn idempotency_key_returns_the_same_trx_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("idem").await;
    let post = |key: &'static str, text: &'static str| post_with_key(&api, &gid, key, text);
    let (s1, first) = post("order-1", "hello").await;
    assert_eq!(s1, 202);
    assert_eq!(first["replayed"], false);
    // Concurrent replays of the same key: still one trx.
    let replays = futures::future::join_all((0..8).map(|_| post("order-1", "hello"))).await;
    for (s, v) in &replays {
        assert_eq!(*s, 202);
        assert_eq!(v["trx_id"], first["trx_id"]);
        assert_eq!(v["replayed"], true);
    }
    let (s, v) = post("order-1", "a different body").await;
    assert_eq!((s, code(&v)), (422, "idempotency_key_reused"));
    node.shutdown().await;

    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let post = |key: &'static str, text: &'static str| post_with_key(&api, &gid, key, text);
    let (_, again) = post("order-1", "hello").await;
    assert_eq!(again["trx_id"], first["trx_id"]);
    assert_eq!(again["replayed"], true);
    let (_, other) = post("order-2", "hello").await;
    assert_ne!(other["trx_id"], first["trx_id"]);
    let items = eventually(Duration::from_secs(10), "both posts listed", || async {
        let v = api.get(&format!("/api/v1/groups/{gid}/posts")).await;
        let items = v["items"].as_array().unwrap().clone();
        (items.len() >= 2).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 2, "one item per key: {items:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn scoped_tokens_are_enforced_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let g1 = api.group("one").await;
    let g2 = api.group("two").await;
    let mk = |scopes: Value| {
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            let v: Value = http
                .post(format!("{base}/api/v1/tokens"))
                .bearer_auth(TOKEN)
                .json(&json!({"name": "t", "scopes": scopes}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                v["token"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            )
        }
    };
    let (read, _) = mk(json!(["read"])).await;
    let (post_g1, post_g1_id) = mk(json!([format!("post:{g1}")])).await;
    let note = json!({"content": "x"});
    let p1 = format!("/api/v1/groups/{g1}/posts");
    let p2 = format!("/api/v1/groups/{g2}/posts");

    let (s, _) = api.req(reqwest::Method::GET, &p1, &read, None).await;
    assert_eq!(s, 200, "read can read");
    let (s, v) = api
        .req(reqwest::Method::POST, &p1, &read, Some(note.clone()))
        .await;
    assert_eq!(
        (s, code(&v)),
        (403, "insufficient_scope"),
        "read cannot post"
    );
    let (s, _) = api
        .req(reqwest::Method::POST, &p1, &post_g1, Some(note.clone()))
        .await;
    assert_eq!(s, 202, "post:g1 posts to g1");
    let (s, v) = api
        .req(reqwest::Method::POST, &p2, &post_g1, Some(note.clone()))
        .await;
    assert_eq!(
        (s, code(&v)),
        (403, "insufficient_scope"),
        "post:g1 cannot post to g2"
    );
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/api/v1/groups",
            &read,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, "insufficient_scope"));
    let (s, _) = api
        .req(reqwest::Method::GET, "/api/v1/tokens", &read, None)
        .await;
    assert_eq!(s, 403, "token management is admin-only");

    let list = api.get("/api/v1/tokens").await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&post_g1), "secrets never listed");
    let (s, v) = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{post_g1_id}"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(v["revoked_at"].is_u64());
    let (s, v) = api
        .req(reqwest::Method::POST, &p1, &post_g1, Some(note.clone()))
        .await;
    assert_eq!(
        (s, code(&v)),
        (401, "unauthorized"),
        "revoked token refused"
    );
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/api/v1/tokens",
            TOKEN,
            Some(json!({"name": "bad", "scopes": ["write"]})),
        )
        .await;
    assert_eq!((s, code(&v)), (422, "invalid_scope"));
    node.shutdown().await;

    // Tokens and revocations survive a restart.
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let (s, _) = api.req(reqwest::Method::GET, &p1, &read, None).await;
    assert_eq!(s, 200);
    let (s, _) = api
        .req(reqwest::Method::POST, &p1, &post_g1, Some(note))
        .await;
    assert_eq!(s, 401);
    node.shutdown().await;
}

#[tokio::test]
async fn objects_are_validated_and_rules_on_references_hold() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("objects").await;
    let posts = format!("/api/v1/groups/{gid}/posts");
    let missing = "ab".repeat(32);

    let (s, v) = api
        .post(
            &posts,
            json!({"type": "Note", "content": "re", "inReplyTo": missing}),
        )
        .await;
    assert_eq!((s, code(&v)), (422, "unknown_reference"));
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inReplyTo"));
    let (s, v) = api
        .post(&posts, json!({"type": "Like", "object": "xyz"}))
        .await;
    assert_eq!((s, code(&v)), (422, "invalid_object"));
    let (s, v) = api
        .post(
            &posts,
            json!({"type": "Update", "object": {"type": "Note", "content": "no id"}}),
        )
        .await;
    assert_eq!((s, code(&v)), (422, "invalid_object"));
    let (s, v) = api
        .post(
            &posts,
            json!({"type": "Image", "url": "data:image/png;base64,@@@"}),
        )
        .await;
    assert_eq!((s, code(&v)), (422, "invalid_object"));

    // A post by someone else in this public group (signed by another key, arrives as a trx).
    let other = rumgate::crypto::Identity::generate();
    let g = rumgate::chain::GroupId::from_hex(&gid).unwrap();
    let entry = node.engine().group(&g).unwrap();
    let payload =
        serde_json::to_vec(&json!({"object": {"type": "Note", "content": "theirs"}})).unwrap();
    let trx = rumgate::chain::Trx::new_post(
        &other,
        g,
        entry.key.as_ref().unwrap(),
        &payload,
        rumgate::util::now_ms(),
        [7; 24],
    );
    let theirs = node.engine().accept_trx(trx).await.unwrap().to_hex();
    let mine = api.note_wait(&gid, json!({"content": "mine v1"})).await["trx_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (s, v) = api.post(&posts, json!({"type": "Update", "object": {"id": theirs, "type": "Note", "content": "hijack"}})).await;
    assert_eq!(
        (s, code(&v)),
        (403, "forbidden"),
        "only the original sender may update"
    );
    // Replies and likes to it are fine; the owner may delete it.
    let reply = api
        .note_wait(
            &gid,
            json!({"type": "Note", "content": "a reply", "inReplyTo": theirs}),
        )
        .await;
    api.note_wait(&gid, json!({"type": "Like", "object": theirs}))
        .await;
    api.note_wait(
        &gid,
        json!({"type": "Update", "object": {"id": mine, "type": "Note", "content": "mine v2"}}),
    )
    .await;
    api.note_wait(
        &gid,
        json!({"type": "Update", "object": {"id": mine, "type": "Note", "content": "mine v3"}}),
    )
    .await;
    api.note_wait(&gid, json!({"type": "Delete", "object": theirs}))
        .await;

    let v = api.get(&format!("{posts}?history=true")).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "timeline shows Notes only: {v}");
    let t = &items[0];
    assert_eq!(t["trx_id"], theirs.as_str());
    assert_eq!(t["deleted"], true);
    assert!(t["object"].is_null());
    assert_eq!(t["likes"], 1);
    assert_eq!(t["replies"], 1);
    let m = &items[1];
    assert_eq!(m["object"]["content"], "mine v3");
    assert_eq!(m["edits"], 2);
    let history: Vec<_> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["object"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["mine v1", "mine v2", "mine v3"]);
    assert_eq!(items[2]["trx_id"], reply["trx_id"]);
    assert_eq!(items[2]["object"]["inReplyTo"], theirs.as_str());
    // The activity view shows every item, Updates and Deletes included.
    let v = api.get(&format!("{posts}?activities=true")).await;
    let types: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["object"]["type"]
                .as_str()
                .unwrap_or("(deleted)")
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        [
            "(deleted)",
            "Note",
            "Note",
            "Like",
            "Update",
            "Update",
            "Delete"
        ]
    );
    node.shutdown().await;
}

/// `(cursor, content or "(deleted)")` of a posts page, and its `next_cursor`.
fn page(v: &Value) -> (Vec<(String, String)>, String) {
    let items = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {v}"))
        .iter()
        .map(|i| {
            let text = if i["deleted"] == true {
                "(deleted)".to_string()
            } else {
                i["object"]["content"].as_str().unwrap().to_string()
            };
            (i["cursor"].as_str().unwrap().to_string(), text)
        })
        .collect();
    (items, v["next_cursor"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn posts_page_newest_first_with_before_and_order_desc() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("pages").await;
    let posts = format!("/api/v1/groups/{gid}/posts");
    let (items, next) = page(&api.get(&format!("{posts}?order=desc")).await);
    assert!(items.is_empty());
    assert_eq!(next, "0", "an empty group pages from 0");

    let mut ids = Vec::new();
    for i in 0..7 {
        let v = api
            .note_wait(&gid, json!({"content": format!("n{i}")}))
            .await;
        ids.push(v["trx_id"].as_str().unwrap().to_string());
        // Activities between the notes: skipped by the timeline, in both directions.
        api.note_wait(&gid, json!({"type": "Like", "object": ids[i]}))
            .await;
    }
    api.note_wait(
        &gid,
        json!({"type": "Update", "object": {"id": ids[5], "type": "Note", "content": "n5 edited"}}),
    )
    .await;
    api.note_wait(&gid, json!({"type": "Delete", "object": ids[4]}))
        .await;

    // The newest page first: edits applied, deletes as tombstones, newest at index 0.
    let (first, next) = page(&api.get(&format!("{posts}?order=desc&limit=3")).await);
    let texts: Vec<_> = first.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["n6", "n5 edited", "(deleted)"]);
    assert_eq!(next, first[2].0, "continue before the oldest item returned");
    // `before` pages backwards until the start; the last page is short.
    let (second, next) = page(&api.get(&format!("{posts}?before={next}&limit=3")).await);
    let texts: Vec<_> = second.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["n3", "n2", "n1"]);
    let (third, next) = page(&api.get(&format!("{posts}?before={next}&limit=3")).await);
    let texts: Vec<_> = third.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["n0"]);
    let (none, end) = page(&api.get(&format!("{posts}?before={next}&limit=3")).await);
    assert!(none.is_empty());
    assert_eq!(end, next, "nothing older: next_cursor is the cursor sent");

    // Together, exactly the chain-order listing reversed (which is unchanged).
    let (asc, asc_next) = page(&api.get(&posts).await);
    let mut desc: Vec<_> = [first, second, third].concat();
    desc.reverse();
    assert_eq!(desc, asc);
    let (_, again) = page(&api.get(&format!("{posts}?after={asc_next}")).await);
    assert_eq!(again, asc_next, "`after` keeps its behaviour");

    // `after` bounds a newest-first page from below.
    let (range, _) = page(
        &api.get(&format!("{posts}?before={}&after={}", asc[5].0, asc[1].0))
            .await,
    );
    let texts: Vec<_> = range.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["(deleted)", "n3", "n2"]);
    // Activities newest first.
    let v = api
        .get(&format!("{posts}?order=desc&activities=true&limit=2"))
        .await;
    let types: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["object"]["type"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(types, ["Delete", "Update"]);

    let (s, v) = api
        .call(reqwest::Method::GET, &format!("{posts}?before=x"), None)
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_cursor"));
    let (s, v) = api
        .call(
            reqwest::Method::GET,
            &format!("{posts}?order=sideways"),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_query"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("order"),
        "{v}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn metrics_need_a_token_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("m").await;
    api.note_wait(&gid, json!({"content": "x"})).await;
    let resp = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let text = api.metrics().await;
    assert!(text.contains("rumgate_trx_ingested_total 1"), "{text}");
    assert!(text.contains("rumgate_blocks_produced_total 1"), "{text}");
    assert!(
        text.contains("rumgate_api_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/groups/{group_id}/posts""#),
        "{text}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn openapi_documents_every_route_the_router_serves() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    // Public, no token needed.
    let doc: Value = api
        .http
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    // The contract (DESIGN §5) routes that exist so far must all be documented...
    let contract = [
        ("get", "/health"),
        ("get", "/metrics"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/node"),
        ("get", "/api/v1/peers"),
        ("get", "/api/v1/groups"),
        ("post", "/api/v1/groups"),
        ("get", "/api/v1/groups/{group_id}"),
        ("delete", "/api/v1/groups/{group_id}"),
        ("get", "/api/v1/groups/{group_id}/seed"),
        ("post", "/api/v1/groups/join"),
        ("get", "/api/v1/groups/{group_id}/posts"),
        ("post", "/api/v1/groups/{group_id}/posts"),
        ("get", "/api/v1/groups/{group_id}/stream"),
        ("get", "/api/v1/ws"),
        ("get", "/api/v1/trx/{trx_id}"),
        ("get", "/api/v1/groups/{group_id}/blocks"),
        ("get", "/api/v1/groups/{group_id}/blocks/{height}"),
        ("get", "/api/v1/tokens"),
        ("post", "/api/v1/tokens"),
        ("delete", "/api/v1/tokens/{token_id}"),
        ("get", "/api/v1/gateways"),
        ("post", "/api/v1/gateways"),
        ("delete", "/api/v1/gateways/{gateway_id}"),
        ("get", "/api/v1/links"),
        ("post", "/api/v1/links"),
        ("get", "/api/v1/links/{link_id}"),
        ("delete", "/api/v1/links/{link_id}"),
        ("post", "/api/v1/links/{link_id}/retry"),
        ("post", "/hooks/{link_id}"),
        ("get", "/"),
        ("get", "/app.js"),
        ("get", "/web/api.js"),
        ("get", "/web/render.js"),
        ("get", "/web/timeline.js"),
        ("get", "/web/gateways.js"),
        ("get", "/web/status.js"),
        ("get", "/web/style.css"),
    ];
    for (m, p) in contract {
        assert!(
            paths.get(p).and_then(|o| o.get(m)).is_some(),
            "{m} {p} is not documented"
        );
    }
    // ...and every documented operation is really served (not the 404/405 fallbacks).
    let gid = api.group("doc").await;
    let mut count = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = path
                .replace("{group_id}", &gid)
                .replace("{trx_id}", &"0".repeat(64))
                .replace("{height}", "1")
                .replace("{token_id}", "tok_missing")
                .replace("{gateway_id}", "gw_missing")
                .replace("{link_id}", "lnk_missing");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = api
                .http
                .request(m, format!("{}{url}", api.base))
                .bearer_auth(TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path} documented but not routed");
            assert!(
                !(status == 404 && body["error"]["code"] == "not_found"),
                "{method} {path} documented but not routed"
            );
            count += 1;
        }
    }
    assert_eq!(
        count,
        contract.len(),
        "documented operations beyond the contract list: update the test"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_to_resume_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.api.stream_buffer = 2;
    let node = Node::start(cfg).await.unwrap();
    let api = Api::of(&node);
    let gid = api.group("slow").await;
    let first = api.note_wait(&gid, json!({"content": "first"})).await;
    let g = rumgate::chain::GroupId::from_hex(&gid).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut sub = rumgate::api::stream::subscribe(node.engine().clone(), g, 0, cancel.clone());
    let got = sub.next().await.unwrap();
    let rumgate::api::stream::StreamMsg::Item(item) = got else {
        panic!("{got:?}")
    };
    assert_eq!(item.cursor.to_string(), first["cursor"].as_str().unwrap());
    // The client stops reading while more blocks than the buffer holds are produced.
    for i in 0..5 {
        api.note_wait(&gid, json!({"content": format!("more {i}")}))
            .await;
    }
    let got = sub.next().await.unwrap();
    let rumgate::api::stream::StreamMsg::Resume { after, .. } = got else {
        panic!("expected resume, got {got:?}")
    };
    assert_eq!(
        after, item.cursor,
        "resume from the last item the client received"
    );
    assert!(sub.next().await.is_none(), "the lagging subscription ends");
    // Resuming from that cursor yields exactly the five missed items.
    let mut s = rumgate::api::stream::subscribe(node.engine().clone(), g, after, cancel);
    let mut texts = Vec::new();
    while texts.len() < 5 {
        match s.next().await.unwrap() {
            rumgate::api::stream::StreamMsg::Item(i) => {
                let v: Value = serde_json::from_str(&i.json).unwrap();
                texts.push(v["object"]["content"].as_str().unwrap().to_string());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        texts,
        (0..5).map(|i| format!("more {i}")).collect::<Vec<_>>()
    );
    node.shutdown().await;
}
