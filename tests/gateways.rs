//! Gateway framework end to end: real nodes, real HTTP webhooks, a real local receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::Api;
use common::{eventually, start_node, TOKEN};
use rumgate_webhook::fake::{Fault, Receiver};
use rumgate_webhook::sign;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn webhook_gateway(api: &Api) -> String {
    api.gateway(json!({"kind": "webhook", "name": "hooks"}))
        .await
}

fn out_link(gid: &str, gw: &str, url: &str, backfill: u64) -> Value {
    json!({"group_id": gid, "gateway_id": gw, "direction": "out", "chat": url, "backfill": backfill,
           "nick_format": "", "webhook": {"format": "standard", "secret": SECRET, "allow_private_target": true}})
}

#[tokio::test]
async fn delivers_in_order_after_backfill_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let r = Receiver::start(Some(SECRET)).await.unwrap();
    let gid = api.group("out").await;
    for i in 0..5 {
        api.note(&gid, &format!("old {i}")).await;
    }
    // Let the old posts be included before the link is made.
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts?wait=true"),
        json!({"content": "old 5"}),
    )
    .await;
    let gw = webhook_gateway(&api).await;
    let link = api.link(out_link(&gid, &gw, &r.url("a"), 3)).await;
    let id = link["id"].as_str().unwrap().to_string();
    for i in 0..20 {
        api.note(&gid, &format!("new {i}")).await;
    }
    let mut expected: Vec<String> = (3..6).map(|i| format!("old {i}")).collect();
    expected.extend((0..20).map(|i| format!("new {i}")));
    eventually(Duration::from_secs(20), "23 deliveries", || async {
        (r.texts("a").len() >= 23).then_some(())
    })
    .await;
    assert_eq!(
        r.texts("a"),
        expected,
        "backfill of the last 3, then everything in order"
    );
    let status = eventually(Duration::from_secs(10), "idle link", || async {
        let s = api.get(&format!("/api/v1/links/{id}")).await;
        (s["outbox_depth"] == 0).then_some(s)
    })
    .await;
    assert_eq!(status["health"], "ok");
    assert_eq!(status["delivered_total"], 23);
    assert!(status["last_error"].is_null());
    assert_eq!(status["options"]["secret"], "***", "secrets are write-only");
    let metrics = api.metrics().await;
    assert!(
        metrics.contains(&format!("rumgate_link_outbox_depth{{link=\"{id}\"}} 0")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("rumgate_link_health{{link=\"{id}\"}} 0")),
        "{metrics}"
    );
    let delivered: i64 = status["delivered_cursor"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let group = api.get(&format!("/api/v1/groups/{gid}")).await;
    assert_eq!(delivered.to_string(), group["cursor"].as_str().unwrap());
    // The item travels as the API shows it, signed.
    let first = &r.deliveries()[0];
    assert_eq!(first.body["type"], "item.created");
    assert_eq!(first.body["data"]["group_id"], gid.as_str());
    assert_eq!(first.body["data"]["object"]["content"], "old 3");
    node.shutdown().await;
}

#[tokio::test]
async fn receiver_outage_delays_but_loses_nothing_and_edits_follow() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let r = Receiver::start(Some(SECRET)).await.unwrap();
    let gid = api.group("outage").await;
    let gw = webhook_gateway(&api).await;
    let link = api.link(out_link(&gid, &gw, &r.url("b"), 0)).await;
    let id = link["id"].as_str().unwrap().to_string();
    r.fail_next([
        Fault::Status(500),
        Fault::Status(502),
        Fault::RateLimit(1),
        Fault::Status(503),
    ]);
    let first = api.note(&gid, "one").await;
    api.note(&gid, "two").await;
    // While failing, the link reports it.
    eventually(Duration::from_secs(10), "degraded status", || async {
        let s = api.get(&format!("/api/v1/links/{id}")).await;
        (s["health"] == "degraded" && s["last_error"].is_string()).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "recovery", || async {
        (r.texts("b").len() >= 2).then_some(())
    })
    .await;
    assert_eq!(r.texts("b"), ["one", "two"]);
    assert_eq!(r.refused().len(), 4, "each fault was one attempt");
    // An edit and a delete reach the receiver as events on the same message id.
    api.post_ok(&format!("/api/v1/groups/{gid}/posts"), json!({"type": "Update", "object": {"id": first, "type": "Note", "content": "one, edited"}})).await;
    api.post_ok(
        &format!("/api/v1/groups/{gid}/posts"),
        json!({"type": "Delete", "object": first}),
    )
    .await;
    let events = eventually(Duration::from_secs(10), "edit and delete", || async {
        let d = r.deliveries();
        (d.len() >= 4).then_some(d)
    })
    .await;
    assert_eq!(events[2].body["type"], "item.updated");
    assert_eq!(events[2].body["data"]["text"], "one, edited");
    assert_eq!(events[3].body["type"], "item.deleted");
    assert_eq!(
        events[2].body["data"]["parts"][0],
        events[0].webhook_id.clone().unwrap().as_str()
    );
    node.shutdown().await;
}

fn standard_headers(id: &str, body: &[u8], secret: &str, ts: u64) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert(
        "webhook-signature",
        sign::standard_sign(secret, id, ts, body).parse().unwrap(),
    );
    h.insert("content-type", "application/json".parse().unwrap());
    h
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn inbound_hook_replays_store_once_and_bad_signatures_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("in").await;
    let gw = webhook_gateway(&api).await;
    let link = api
        .link(json!({"group_id": gid, "gateway_id": gw, "direction": "in",
                     "webhook": {"format": "standard", "secret": SECRET}}))
        .await;
    let hook = format!("{}{}", api.base, link["inbound_url"].as_str().unwrap());
    let body = br#"{"content":"from outside","author":{"id":"u7","name":"Bea"}}"#;
    let send = |id: &'static str, secret: &'static str, ts: u64, body: &'static [u8]| {
        let (http, hook) = (api.http.clone(), hook.clone());
        async move {
            let resp = http
                .post(hook)
                .headers(standard_headers(id, body, secret, ts))
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = send("msg_a", SECRET, now(), body).await;
    assert_eq!(
        (s, first["status"].as_str().unwrap()),
        (200, "stored"),
        "{first}"
    );
    for _ in 0..3 {
        let (s, again) = send("msg_a", SECRET, now(), body).await;
        assert_eq!((s, again["status"].as_str().unwrap()), (200, "duplicate"));
        assert_eq!(again["trx_id"], first["trx_id"]);
    }
    let (s, v) = send("msg_b", "whsec_bm90IHRoZSByaWdodCBzZWNyZXQ=", now(), body).await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (401, "bad_signature")
    );
    let (s, v) = send("msg_c", SECRET, now() - 600, body).await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (401, "stale_timestamp")
    );
    let (s, v) = send("msg_d", SECRET, now(), b"not json").await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (422, "invalid_body")
    );
    let resp = api
        .http
        .post(format!("{}/hooks/lnk_nope", api.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // Exactly one item, with its origin.
    let items = eventually(Duration::from_secs(10), "the bridged post", || async {
        let v = api.get(&format!("/api/v1/groups/{gid}/posts")).await;
        let items = v["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["object"]["content"], "from outside");
    assert_eq!(items[0]["origin"]["author"]["name"], "Bea");
    assert_eq!(items[0]["origin"]["message_id"], "msg_a");
    node.shutdown().await;
}

#[tokio::test]
async fn a_github_body_replayed_under_a_new_delivery_id_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("gh").await;
    let gw = webhook_gateway(&api).await;
    let secret = "a GitHub webhook secret";
    let link = api
        .link(json!({"group_id": gid, "gateway_id": gw, "direction": "in",
                     "webhook": {"format": "github", "secret": secret}}))
        .await;
    let hook = format!("{}{}", api.base, link["inbound_url"].as_str().unwrap());
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "compare": "https://github.com/o/r/compare/a...b",
        "repository": {"full_name": "o/r"}, "sender": {"login": "octo"},
        "commits": [{"id": "0123456789abcdef", "message": "fix the thing"}]
    }))
    .unwrap();
    let send = |delivery: &'static str| {
        let (http, hook, body) = (api.http.clone(), hook.clone(), body.clone());
        async move {
            let resp = http
                .post(hook)
                .header("x-hub-signature-256", sign::github_sign(secret, &body))
                .header("x-github-delivery", delivery)
                .header("x-github-event", "push")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = send("72d3162e-cc78-11e3-81ab-4c9367dc0958").await;
    assert_eq!(
        (s, first["status"].as_str().unwrap()),
        (200, "stored"),
        "{first}"
    );
    // The delivery header is not signed: anyone who saw the body can replay it with a new one.
    let (s, replay) = send("9f2c6a10-0000-4000-8000-000000000001").await;
    assert_eq!(
        (s, replay["status"].as_str().unwrap()),
        (200, "duplicate"),
        "{replay}"
    );
    assert_eq!(replay["trx_id"], first["trx_id"]);
    // GitHub's own redelivery (same id, same body) is one too.
    let (s, again) = send("72d3162e-cc78-11e3-81ab-4c9367dc0958").await;
    assert_eq!(
        (s, again["status"].as_str().unwrap()),
        (200, "duplicate"),
        "{again}"
    );
    let items = eventually(Duration::from_secs(10), "the bridged push", || async {
        let v = api.get(&format!("/api/v1/groups/{gid}/posts")).await;
        let items = v["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn a_whsec_secret_that_is_not_base64_is_refused_when_the_link_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("secrets").await;
    let gw = webhook_gateway(&api).await;
    let link = |direction: &str, format: &str, secret: &str| {
        let mut body = json!({"group_id": gid, "gateway_id": gw, "direction": direction,
                              "webhook": {"format": format, "secret": secret,
                                          "allow_private_target": true}});
        if direction != "in" {
            body["chat"] = json!("http://127.0.0.1:9/hook");
        }
        body
    };
    for direction in ["in", "out", "both"] {
        let (s, v) = api
            .post(
                "/api/v1/links",
                link(direction, "standard", "whsec_not base64!"),
            )
            .await;
        assert_eq!(s, 400, "{direction}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("webhook.secret"), "{message}");
        assert!(
            !message.contains("not base64!"),
            "the secret is not echoed: {message}"
        );
    }
    let links = api.get("/api/v1/links").await;
    assert_eq!(
        links["links"].as_array().unwrap().len(),
        0,
        "nothing stored: {links}"
    );
    // Valid Standard secrets, and any shared secret for github and plain, are still accepted.
    for (format, secret) in [
        ("standard", SECRET),
        ("github", "whsec_not base64! but GitHub takes any string"),
        ("plain", "a shared secret"),
    ] {
        let (s, v) = api.post("/api/v1/links", link("in", format, secret)).await;
        assert_eq!(s, 201, "{format}: {v}");
    }
    node.shutdown().await;
}

async fn idle(api: &Api, link: &str, gid: &str) -> bool {
    let s = api.get(&format!("/api/v1/links/{link}")).await;
    let g = api.get(&format!("/api/v1/groups/{gid}")).await;
    s["outbox_depth"] == 0 && s["delivered_cursor"] == g["cursor"] && g["pending"] == 0
}

#[tokio::test]
async fn echo_chains_stop() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gw = webhook_gateway(&api).await;
    // Group A → out-webhook → in-webhook of A itself.
    let a = api.group("a").await;
    let a_in = api.link(json!({"group_id": a, "gateway_id": gw, "direction": "in", "webhook": {"format": "standard", "secret": SECRET}})).await;
    let a_hook = format!("{}{}", api.base, a_in["inbound_url"].as_str().unwrap());
    let a_out = api.link(out_link(&a, &gw, &a_hook, 0)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.note(&a, "hello A").await;
    eventually(Duration::from_secs(10), "A idle", || async {
        idle(&api, &a_out, &a).await.then_some(())
    })
    .await;
    assert_eq!(api.texts(&a).await, ["hello A"], "the echo was dropped");
    let st = api.get(&format!("/api/v1/links/{a_out}")).await;
    assert_eq!(st["delivered_total"], 1, "and it was delivered once");

    // B ⇄ C through webhooks both ways: the hop limit ends the ping-pong.
    let b = api.group("b").await;
    let c = api.group("c").await;
    let b_in = api.link(json!({"group_id": b, "gateway_id": gw, "direction": "in", "webhook": {"format": "standard", "secret": SECRET}})).await;
    let c_in = api.link(json!({"group_id": c, "gateway_id": gw, "direction": "in", "webhook": {"format": "standard", "secret": SECRET}})).await;
    let b_out = api
        .link(out_link(
            &b,
            &gw,
            &format!("{}{}", api.base, c_in["inbound_url"].as_str().unwrap()),
            0,
        ))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c_out = api
        .link(out_link(
            &c,
            &gw,
            &format!("{}{}", api.base, b_in["inbound_url"].as_str().unwrap()),
            0,
        ))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.note(&b, "ping").await;
    eventually(Duration::from_secs(20), "B and C quiet", || async {
        (api.texts(&b).await.len() == 2
            && api.texts(&c).await.len() == 2
            && idle(&api, &b_out, &b).await
            && idle(&api, &c_out, &c).await)
            .then_some(())
    })
    .await;
    assert_eq!(api.texts(&b).await, ["ping", "ping"]);
    assert_eq!(api.texts(&c).await, ["ping", "ping"]);
    node.shutdown().await;
}

#[tokio::test]
async fn loopback_targets_need_the_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let r = Receiver::start(None).await.unwrap();
    let gid = api.group("ssrf").await;
    let gw = webhook_gateway(&api).await;
    let (s, v) = api
        .call(reqwest::Method::POST, "/api/v1/links", Some(json!({"group_id": gid, "gateway_id": gw, "direction": "out", "chat": r.url("x"), "webhook": {"format": "standard"}})))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_private_target"),
        "{v}"
    );
    // A host name that resolves to loopback passes the configuration check but is refused when
    // connecting; the link status says why.
    let mut name = None;
    for candidate in ["vm", "runsc"] {
        if let Ok(mut addrs) = tokio::net::lookup_host((candidate, 80)).await {
            if addrs.any(|a| a.ip().is_loopback()) {
                name = Some(candidate);
                break;
            }
        }
    }
    let Some(name) = name else {
        eprintln!("no host name resolving to loopback here; the connect-time check is covered by the adapter's tests");
        node.shutdown().await;
        return;
    };
    let link = api.link(json!({"group_id": gid, "gateway_id": gw, "direction": "out", "chat": format!("http://{name}:{}/x", r.addr.port()), "webhook": {"format": "standard"}})).await;
    let id = link["id"].as_str().unwrap().to_string();
    api.note(&gid, "must not leave").await;
    let s = eventually(Duration::from_secs(10), "failing status", || async {
        let s = api.get(&format!("/api/v1/links/{id}")).await;
        (s["health"] == "failing").then_some(s)
    })
    .await;
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("allow_private_target"),
        "{s}"
    );
    assert_eq!(s["dead_letters"].as_array().unwrap().len(), 1);
    assert!(
        r.deliveries().is_empty() && r.refused().is_empty(),
        "nothing reached the receiver"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn kill_9_during_500_deliveries_loses_and_reorders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(Some(SECRET)).await.unwrap();
    // A slow receiver keeps deliveries in flight when the kill lands.
    r.fail_for(
        Duration::from_secs(3600),
        Fault::Slow(Duration::from_millis(3)),
    );
    let (mut child, base) = common::spawn_run(dir.path(), &[], &[("RUMGATE_API_TOKEN", TOKEN)]);
    let api = Api::at(base);
    let gid = api.group("k9").await;
    let gw = webhook_gateway(&api).await;
    api.link(out_link(&gid, &gw, &r.url("k"), 0)).await;
    for i in 0..500 {
        api.note(&gid, &format!("m{i:03}")).await;
    }
    eventually(Duration::from_secs(30), "deliveries under way", || async {
        (r.texts("k").len() >= 100).then_some(())
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let delivered_before = r.texts("k").len();
    assert!(
        delivered_before < 500,
        "the kill should land mid-way ({delivered_before} delivered)"
    );

    let (mut child, base) = common::spawn_run(dir.path(), &[], &[("RUMGATE_API_TOKEN", TOKEN)]);
    let api = Api::at(base);
    eventually(Duration::from_secs(60), "all 500 delivered", || async {
        (r.texts("k").len() >= 500).then_some(())
    })
    .await;
    let expected: Vec<String> = (0..500).map(|i| format!("m{i:03}")).collect();
    assert_eq!(
        r.texts("k"),
        expected,
        "every post once (first deliveries), in order"
    );
    let all = r.deliveries();
    let distinct: std::collections::HashSet<_> =
        all.iter().map(|d| d.webhook_id.clone().unwrap()).collect();
    assert_eq!(
        distinct.len(),
        500,
        "a redelivery repeats its webhook-id, never invents a new one"
    );
    let repeats = all.iter().filter(|d| d.repeat).count();
    eprintln!("{delivered_before} delivered before the kill; {repeats} repeated after the restart (same ids)");
    let links = api.get("/api/v1/links").await;
    assert_eq!(
        links["links"][0]["dead_letters"].as_array().unwrap().len(),
        0
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn link_status_masks_webhook_urls_that_are_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("masked").await;
    let gw = webhook_gateway(&api).await;
    let discord = "https://discord.example/api/webhooks/123/very-secret-token";
    let plain = "https://hooks.example/in?key=secret-key";
    let d = api.link(json!({"group_id": gid, "gateway_id": gw, "direction": "out", "chat": discord, "webhook": {"format": "discord"}})).await;
    let p = api.link(json!({"group_id": gid, "gateway_id": gw, "direction": "out", "chat": plain, "webhook": {"format": "standard"}})).await;
    for (link, secret, shown) in [
        (&d, "very-secret-token", "https://discord.example/***"),
        (&p, "secret-key", "https://hooks.example/in?***"),
    ] {
        let id = link["id"].as_str().unwrap();
        let one = api.get(&format!("/api/v1/links/{id}")).await;
        assert_eq!(one["chat"], shown, "{one}");
        let all = api.get("/api/v1/links").await;
        assert!(!all.to_string().contains(secret), "{all}");
        assert!(
            !link.to_string().contains(secret),
            "creation answer: {link}"
        );
    }
    node.shutdown().await;
}
