//! The web page in a real browser: Debian's headless chromium, driven over the DevTools protocol,
//! against real nodes on 127.0.0.1. Sign-in, groups, posting, live edits and deletes, paging,
//! a bounded DOM, gateway links, and first-render / memory figures (printed, never asserted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Chrome, Tab};
use common::http::Api;
use common::testnet::TestNet;
use common::{eventually, start_node, TOKEN};
use rumgate::chain::GroupId;
use rumgate::engine::PostOptions;
use rumgate::Node;
use rumgate_webhook::fake::{Fault, Receiver};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn page_url(node: &Node) -> String {
    format!("http://{}/", node.api_addr())
}

/// A tab signed in through `/#token=…`, with the app shown.
async fn signed_in(chrome: &Chrome, node: &Node) -> Tab {
    let tab = chrome
        .open(&format!("{}#token={TOKEN}", page_url(node)))
        .await;
    tab.wait(
        "the app to show",
        "document.getElementById('app').hidden === false",
    )
    .await;
    tab
}

fn gid_of(hex: &str) -> GroupId {
    GroupId::from_hex(hex).unwrap()
}

/// Posts through the engine (no HTTP), for filling groups quickly; the trx id.
async fn engine_post(node: &Node, gid: &str, object: Value) -> rumgate::chain::TrxId {
    node.engine()
        .post(&gid_of(gid), object, PostOptions::default())
        .await
        .unwrap()
        .trx_id
}

async fn wait_included(node: &Node, trx: rumgate::chain::TrxId) {
    node.engine()
        .wait_included(trx, Duration::from_secs(60))
        .await
        .expect("included");
}

/// The JS text of a post's content, by trx id (null while absent).
fn content_of(trx: &str) -> String {
    format!("(document.querySelector('article[data-trx=\"{trx}\"] .content')?.textContent ?? null)")
}

/// Signs a post by another key and hands it to the node as if it came from the network.
async fn foreign_post(node: &Node, gid: &str, who: &rumgate::crypto::Identity, object: Value) {
    let g = gid_of(gid);
    let entry = node.engine().group(&g).unwrap();
    let payload = serde_json::to_vec(&json!({ "object": object })).unwrap();
    let trx = rumgate::chain::Trx::new_post(
        who,
        g,
        entry.key.as_ref().unwrap(),
        &payload,
        rumgate::util::now_ms(),
        rumgate::crypto::random_bytes(),
    );
    node.engine().accept_trx(trx).await.unwrap();
}

#[tokio::test]
async fn page_and_its_files_are_served_under_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.api_addr());
    let resp = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "CSP lacks {rule}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "no unsafe-* sources: {csp}");
    let html = resp.text().await.unwrap();
    assert!(
        !html.contains("style=") && !html.contains("<style"),
        "no inline styles"
    );
    assert!(!html.contains("<script>"), "no inline scripts");
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "no inline event handlers: on{handler:?}");
    // Every file the page loads is served with its type; every module import resolves.
    let files = [
        ("/app.js", "text/javascript"),
        ("/web/api.js", "text/javascript"),
        ("/web/render.js", "text/javascript"),
        ("/web/timeline.js", "text/javascript"),
        ("/web/gateways.js", "text/javascript"),
        ("/web/status.js", "text/javascript"),
        ("/web/style.css", "text/css"),
    ];
    for (path, ty) in files {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ty));
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let text = resp.text().await.unwrap();
        for import in text.split("from \"./").skip(1) {
            let target = import.split('"').next().unwrap();
            let abs = if path == "/app.js" {
                format!("/{target}")
            } else {
                format!("/web/{target}")
            };
            assert!(
                files.iter().any(|(p, _)| *p == abs),
                "{path} imports {abs}, which is not served"
            );
        }
    }
    node.shutdown().await;
}

#[tokio::test]
async fn signs_in_with_the_token_and_says_why_a_wrong_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let chrome = Chrome::launch().await;
    let tab = chrome.open(&page_url(&node)).await;
    tab.wait(
        "the sign-in form",
        "document.getElementById('signin').hidden === false",
    )
    .await;

    tab.type_into("#signin-token", "not-the-token").await;
    tab.click("#signin-button").await;
    let banner = tab.error_banner().await;
    let (status, refusal) = api
        .req(reqwest::Method::GET, "/api/v1/node", "not-the-token", None)
        .await;
    assert_eq!(status, 401);
    let words = refusal["error"]["message"].as_str().unwrap();
    assert!(
        banner.contains(words) && banner.contains("unauthorized"),
        "the API's words, not a code: {banner:?} vs {words:?}"
    );
    let hidden: bool = tab.eval("document.getElementById('app').hidden").await;
    assert!(hidden, "no app without a valid token");

    tab.type_into("#signin-token", TOKEN).await;
    tab.click("#signin-button").await;
    tab.wait(
        "the app after sign-in",
        "document.getElementById('app').hidden === false",
    )
    .await;
    let key = hex::encode(node.engine().public_key());
    let info = tab
        .wait(
            "node info",
            "document.getElementById('node-info').textContent || null",
        )
        .await;
    assert!(info.as_str().unwrap().contains(&key[..8]), "{info}");
    assert_eq!(
        tab.eval::<String>("document.getElementById('error').hidden ? '' : 'shown'")
            .await,
        "",
        "the old error is cleared"
    );

    // The token is kept in this browser: a reload stays signed in.
    tab.page.reload().await.unwrap();
    tab.wait(
        "the app after a reload",
        "document.getElementById('app').hidden === false",
    )
    .await;
    // Signing out forgets it.
    tab.click("#sign-out").await;
    tab.wait(
        "the sign-in form after sign-out",
        "document.getElementById('signin').hidden === false",
    )
    .await;
    let stored: Value = tab.eval("localStorage.getItem('rumgate-token')").await;
    assert!(stored.is_null());
    // `/#token=` signs in and removes the token from the address bar.
    let tab = chrome
        .open(&format!("{}#token={TOKEN}", page_url(&node)))
        .await;
    tab.wait(
        "the app via #token=",
        "document.getElementById('app').hidden === false",
    )
    .await;
    assert_eq!(tab.eval::<String>("location.hash").await, "");
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn posts_replies_likes_edits_and_deletes_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, &node).await;

    tab.type_into("#create-name", "daily").await;
    tab.click("#create-button").await;
    tab.wait(
        "the new group",
        "document.getElementById('group-name').textContent === 'daily'",
    )
    .await;
    let groups = api.get("/api/v1/groups").await;
    let gid = groups["groups"][0]["group_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(groups["groups"][0]["name"], "daily");

    // The seed: shown as the API gives it, and copied.
    tab.click("#seed-button").await;
    let seed = api.get(&format!("/api/v1/groups/{gid}/seed")).await;
    let shown = tab
        .wait(
            "the seed",
            "document.getElementById('seed-text').value || null",
        )
        .await;
    assert_eq!(shown, seed["seed"]);
    tab.click("#seed-copy").await;
    let copied = tab
        .wait(
            "the copy result",
            "document.getElementById('seed-status').textContent || null",
        )
        .await;
    assert_eq!(copied, "copied", "{copied}");
    let clipboard: String = tab.eval("navigator.clipboard.readText()").await;
    assert_eq!(clipboard, seed["seed"].as_str().unwrap());

    tab.type_into("#post-text", "hello from the page").await;
    tab.click("#post-button").await;
    tab.wait(
        "the post",
        "document.querySelector('#items > article .content')?.textContent === 'hello from the page'",
    )
    .await;
    let first: String = tab
        .eval("document.querySelector('#items > article').dataset.trx")
        .await;
    let art = format!("article[data-trx=\"{first}\"]");

    // Reply.
    tab.click(&format!("{art} .reply")).await;
    tab.wait(
        "the reply context",
        "document.getElementById('reply-to').hidden === false",
    )
    .await;
    tab.type_into("#post-text", "a reply").await;
    tab.click("#post-button").await;
    let reply_to = tab
        .wait(
            "the reply",
            "(() => { const a = document.querySelector('#items > article'); \
               return a.querySelector('.content').textContent === 'a reply' \
                 ? a.querySelector('.reply-to')?.textContent : null })()",
        )
        .await;
    assert!(
        reply_to.as_str().unwrap().contains("hello from the page"),
        "{reply_to}"
    );
    tab.wait(
        "the reply count",
        &format!("document.querySelector('{art} .replies')?.textContent === '1 reply'"),
    )
    .await;

    // Like.
    tab.click(&format!("{art} .like")).await;
    tab.wait(
        "the like",
        &format!("document.querySelector('{art} .like')?.textContent === 'Like · 1'"),
    )
    .await;

    // Edit.
    tab.click(&format!("{art} .edit")).await;
    tab.wait(
        "the edit box",
        &format!("!!document.querySelector('{art} .edit-box')"),
    )
    .await;
    tab.type_into(&format!("{art} .edit-box"), "hello, edited")
        .await;
    tab.click(&format!("{art} .save")).await;
    tab.wait(
        "the edit",
        &format!(
            "document.querySelector('{art} .content')?.textContent === 'hello, edited' \
             && !!document.querySelector('{art} .edited')"
        ),
    )
    .await;

    // Delete asks once more, then deletes.
    tab.click(&format!("{art} .delete")).await;
    let label: String = tab
        .eval(&format!(
            "document.querySelector('{art} .delete').textContent"
        ))
        .await;
    assert_eq!(label, "Confirm delete");
    tab.click(&format!("{art} .delete")).await;
    tab.wait(
        "the delete",
        &format!("{} === '(deleted)'", content_of(&first)),
    )
    .await;

    // The node holds what the page showed.
    let v = api
        .get(&format!("/api/v1/groups/{gid}/posts?history=true"))
        .await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(items[0]["trx_id"], first.as_str());
    assert_eq!(items[0]["deleted"], true, "{v}");
    assert_eq!(items[0]["likes"], 1);
    assert_eq!(items[1]["object"]["content"], "a reply");
    assert_eq!(items[1]["object"]["inReplyTo"], first.as_str());
    assert_eq!(
        tab.contents().await,
        ["a reply", "(deleted)"],
        "the page shows the same"
    );
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn shows_posts_edits_and_deletes_made_elsewhere_live() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("live").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let v = api
            .note_wait(&gid, json!({"content": format!("n{i}")}))
            .await;
        ids.push(v["trx_id"].as_str().unwrap().to_string());
    }
    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, &node).await;
    tab.wait(
        "the first page",
        "document.querySelectorAll('#items > article').length === 3",
    )
    .await;
    assert_eq!(tab.contents().await, ["n2", "n1", "n0"]);
    let _: Value = tab.eval("(window.__same_document = true, null)").await;

    // A post through the API appears on top.
    let t = api.note(&gid, "from the api").await;
    tab.wait(
        "the live post",
        "document.querySelector('#items > article .content')?.textContent === 'from the api'",
    )
    .await;
    // An edit is applied in place.
    api.note_wait(
        &gid,
        json!({"type": "Update", "object": {"id": t, "type": "Note", "content": "edited through the api"}}),
    )
    .await;
    tab.wait(
        "the live edit",
        &format!("{} === 'edited through the api'", content_of(&t)),
    )
    .await;
    // A delete is applied in place.
    api.note_wait(&gid, json!({"type": "Delete", "object": ids[0]}))
        .await;
    tab.wait(
        "the live delete",
        &format!("{} === '(deleted)'", content_of(&ids[0])),
    )
    .await;
    // Someone else may not edit or delete our post: the page honours the sender rules too.
    let other = rumgate::crypto::Identity::generate();
    foreign_post(
        &node,
        &gid,
        &other,
        json!({"type": "Update", "object": {"id": ids[1], "type": "Note", "content": "hijacked"}}),
    )
    .await;
    foreign_post(
        &node,
        &gid,
        &other,
        json!({"type": "Delete", "object": ids[2]}),
    )
    .await;
    // A like after them: once it shows, the two above were seen (the stream is in chain order).
    api.note_wait(&gid, json!({"type": "Like", "object": ids[1]}))
        .await;
    tab.wait(
        "the live like",
        &format!(
            "document.querySelector('article[data-trx=\"{}\"] .like')?.textContent === 'Like · 1'",
            ids[1]
        ),
    )
    .await;
    assert_eq!(
        tab.contents().await,
        ["edited through the api", "n2", "n1", "(deleted)"]
    );
    let same: bool = tab.eval("window.__same_document === true").await;
    assert!(same, "all of it without reloading the page");
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}

/// Scrolls the timeline to its end (`bottom`) or top until `done` (JS) holds, checking at every
/// step that the DOM stays within the bound. The largest post count seen.
async fn scroll_until(tab: &Tab, bottom: bool, done: &str, what: &str) -> usize {
    let scroll = if bottom {
        "s.scrollTop = s.scrollHeight"
    } else {
        "s.scrollTop = 0"
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut largest = 0;
    loop {
        let (finished, count): (bool, usize) = tab
            .eval(&format!(
                "(() => {{ const s = document.getElementById('timeline'); {scroll}; \
                   return [!!({done}), document.querySelectorAll('#items > article').length]; }})()"
            ))
            .await;
        largest = largest.max(count);
        assert!(count <= 500, "{count} posts in the DOM while {what}");
        if finished {
            return largest;
        }
        if Instant::now() > deadline {
            let state: Value = tab
                .eval("({end: document.getElementById('timeline-end').textContent, \
                         first: document.querySelector('#items > article .content')?.textContent, \
                         last: document.querySelector('#items > article:last-child .content')?.textContent, \
                         error: document.getElementById('error-text').textContent})")
                .await;
            panic!("timed out {what}: {count} posts, {state}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn pages_older_posts_on_scroll_and_keeps_the_dom_bounded_under_live_posts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let gid = api.group("paging").await;
    let mut last = None;
    for i in 0..1200 {
        last = Some(engine_post(&node, &gid, json!({"content": format!("n{i}")})).await);
    }
    wait_included(&node, last.unwrap()).await;

    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, &node).await;
    tab.wait(
        "the newest page",
        "document.querySelector('#items > article .content')?.textContent === 'n1199'",
    )
    .await;
    let first_page = tab.post_count().await;
    assert!(
        (50..=100).contains(&first_page),
        "the newest page(s) only, not the history: {first_page}"
    );

    // Down to the first post; the newest fall off the top on the way.
    let end =
        "document.getElementById('timeline-end').textContent === 'the beginning of the group'";
    let largest = scroll_until(&tab, true, end, "scrolling down").await;
    let contents = tab.contents().await;
    assert_eq!(contents.last().unwrap(), "n0");
    assert!(
        !contents.contains(&"n1199".to_string()),
        "the top was trimmed"
    );
    assert!(
        largest >= 450,
        "the window fills up to the bound: {largest}"
    );
    // Back up to the newest: they are paged back in.
    let top = "document.querySelector('#items > article .content')?.textContent === 'n1199' \
               && document.getElementById('newer').hidden";
    scroll_until(&tab, false, top, "scrolling up").await;
    assert!(tab.post_count().await <= 500);
    let _: Value = tab
        .eval("(document.getElementById('timeline').scrollTop = 0, null)")
        .await;

    // 1,000 live posts: the DOM keeps its size.
    let heap_before = tab.heap_used().await;
    let nodes_before: usize = tab.eval("document.getElementsByTagName('*').length").await;
    let posts_before = tab.post_count().await;
    let started = Instant::now();
    let mut last = None;
    for i in 0..1000 {
        last = Some(engine_post(&node, &gid, json!({"content": format!("live {i}")})).await);
    }
    wait_included(&node, last.unwrap()).await;
    tab.wait_for(
        "the 1,000th live post on top",
        "document.querySelector('#items > article .content')?.textContent === 'live 999'",
        Duration::from_secs(120),
    )
    .await;
    let shown_after = started.elapsed();
    let heap_after = tab.heap_used().await;
    let nodes_after: usize = tab.eval("document.getElementsByTagName('*').length").await;
    let posts_after = tab.post_count().await;
    println!(
        "1,000 live posts shown in {:.1} s; posts in the DOM {posts_before} → {posts_after}, \
         elements {nodes_before} → {nodes_after}, JS heap {:.1} MiB → {:.1} MiB",
        shown_after.as_secs_f64(),
        heap_before / 1048576.0,
        heap_after / 1048576.0
    );
    assert_eq!(posts_after, 500, "the timeline is capped at 500 posts");
    assert!(
        nodes_after <= nodes_before + 50,
        "the DOM stays bounded: {nodes_before} → {nodes_after} elements"
    );
    let contents = tab.contents().await;
    assert_eq!(contents[0], "live 999");
    assert_eq!(contents[499], "live 500");
    // What fell off the bottom is paged back in by scrolling.
    let back = "[...document.querySelectorAll('#items > article .content')].some(e => e.textContent === 'n1199')";
    scroll_until(&tab, true, back, "paging the dropped live posts back").await;
    let contents = tab.contents().await;
    let at = contents.iter().position(|c| c == "n1199").unwrap();
    assert_eq!(contents[at - 1], "live 0", "no gap, no repeat");
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn joins_a_group_by_seed_and_explains_a_bad_seed_in_words() {
    let net = TestNet::start(2).await;
    net.wait_peers(0, 1).await;
    let remote = Api::of(net.node(1));
    let gid = remote.group("remote").await;
    for i in 0..3 {
        remote
            .note_wait(&gid, json!({"content": format!("r{i}")}))
            .await;
    }
    let seed = remote.get(&format!("/api/v1/groups/{gid}/seed")).await["seed"]
        .as_str()
        .unwrap()
        .to_string();

    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, net.node(0)).await;
    tab.wait(
        "the empty state",
        "document.getElementById('no-group').hidden === false",
    )
    .await;

    let bad = "rum://seed?v=1&g=00&d=not-a-seed";
    tab.type_into("#join-seed", bad).await;
    tab.click("#join-button").await;
    let banner = tab.error_banner().await;
    let (status, v) = Api::of(net.node(0))
        .post("/api/v1/groups/join", json!({"seed": bad}))
        .await;
    assert_eq!(status, 400);
    let words = v["error"]["message"].as_str().unwrap();
    assert!(
        banner.contains(words) && banner.starts_with("Joining the group"),
        "{banner:?} should carry {words:?}"
    );

    tab.set_value("#join-seed", &seed).await;
    tab.click("#join-button").await;
    tab.wait(
        "the joined group",
        "document.getElementById('group-name').textContent === 'remote'",
    )
    .await;
    assert!(
        tab.eval::<bool>("document.getElementById('error').hidden")
            .await,
        "the old error is cleared"
    );
    tab.wait(
        "the synced posts",
        "JSON.stringify([...document.querySelectorAll('#items > article .content')].map(e => e.textContent)) === '[\"r2\",\"r1\",\"r0\"]'",
    )
    .await;
    // Peers and sync progress.
    let peer = net.node(1).p2p().peer_id().to_string();
    tab.wait(
        "the peer",
        &format!(
            "document.getElementById('peers').textContent.includes('{}')",
            &peer[peer.len() - 12..]
        ),
    )
    .await;
    let sync = tab
        .wait(
            "the sync line",
            "document.getElementById('sync').textContent || null",
        )
        .await;
    let sync = sync.as_str().unwrap().trim();
    assert!(
        sync.starts_with("synced at block") || sync.starts_with("syncing: block"),
        "{sync}"
    );
    // Producers: from the group info (or the producers route where it exists).
    let owner = remote.get(&format!("/api/v1/groups/{gid}")).await["owner"]
        .as_str()
        .unwrap()
        .to_string();
    tab.wait(
        "the producers",
        &format!(
            "document.getElementById('people').hidden === false && \
             document.getElementById('producers').textContent.includes('{}')",
            &owner[..8]
        ),
    )
    .await;
    tab.assert_clean().await;
    chrome.close().await;
    net.shutdown().await;
}

#[tokio::test]
async fn gateway_links_show_health_and_last_error_and_retry_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let api = Api::of(&node);
    let receiver = Receiver::start(None).await.unwrap();
    let gid = api.group("bridged").await;
    for text in [
        "Standup at 10:00",
        "Deploy finished: v1.4.2",
        "Can someone review #42?",
    ] {
        api.note_wait(&gid, json!({"content": text})).await;
    }
    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, &node).await;
    tab.wait(
        "the timeline",
        "document.querySelectorAll('#items > article').length === 3",
    )
    .await;

    // Accounts: a Telegram bot with an unreadable token file is refused in words.
    tab.set_value("#gw-kind", "telegram").await;
    tab.type_into("#gw-name", "tg").await;
    tab.type_into("#gw-tg-token-file", "/nonexistent/tg.token")
        .await;
    tab.click("#gateway-button").await;
    let banner = tab.error_banner().await;
    assert!(
        banner.starts_with("Adding the account") && banner.contains("token_file"),
        "{banner}"
    );
    // A Mixin keystore that is not JSON is caught before sending.
    tab.set_value("#gw-kind", "mixin").await;
    tab.set_value("#gw-mx-keystore", "{not json").await;
    tab.click("#gateway-button").await;
    tab.wait(
        "the keystore error",
        "document.getElementById('error-text').textContent.includes('keystore is not JSON')",
    )
    .await;
    // A webhook account.
    tab.set_value("#gw-kind", "webhook").await;
    tab.type_into("#gw-name", "hooks").await;
    tab.click("#gateway-button").await;
    tab.wait(
        "the webhook account",
        "document.querySelector('#gateways .gateway .name')?.textContent === 'hooks'",
    )
    .await;

    // Two outbound links: one healthy, one to a receiver that has gone (410).
    receiver.fail_path_for("gone", Duration::from_secs(3600), Fault::Status(410));
    for (path, backfill) in [("ok", "3"), ("gone", "1")] {
        tab.set_value("#link-direction", "out").await;
        tab.set_value("#link-chat", &receiver.url(path)).await;
        tab.set_value("#link-backfill", backfill).await;
        tab.set_value("#link-nick", "").await;
        tab.set_value("#link-wh-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .await;
        let _: Value = tab
            .eval("(document.getElementById('link-wh-private').checked = true, null)")
            .await;
        tab.click("#link-button").await;
        tab.wait(
            "the link",
            &format!(
                "[...document.querySelectorAll('#links .link .chat')].some(e => e.textContent === '{}')",
                receiver.url(path)
            ),
        )
        .await;
    }
    eventually(Duration::from_secs(20), "backfill delivered", || async {
        (receiver.texts("ok").len() == 3).then_some(())
    })
    .await;
    let links = api.get("/api/v1/links").await;
    let gone = links["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["chat"].as_str().unwrap().ends_with("/gone"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let row = format!("#links .link[data-link=\"{gone}\"]");
    // The page refreshes link status by itself: failing, the receiver's words, a dead letter.
    let err = tab
        .wait(
            "the failing link",
            &format!(
                "document.querySelector('{row}')?.dataset.health === 'failing' \
                 && document.querySelector('{row} .dead') \
                 && document.querySelector('{row} .last-error')?.textContent"
            ),
        )
        .await;
    assert!(err.as_str().unwrap().contains("410 Gone"), "{err}");
    let ok_health = tab
        .wait(
            "the healthy link",
            "[...document.querySelectorAll('#links .link')].find(l => l.querySelector('.chat').textContent.endsWith('/ok'))?.dataset.health ?? null",
        )
        .await;
    assert_eq!(ok_health, "ok");
    if let Ok(path) = std::env::var("RUMGATE_WEB_SCREENSHOT") {
        tab.screenshot(std::path::Path::new(&path)).await;
        println!("screenshot written to {path}");
    }

    // The receiver is back: retrying the dead letter delivers it and the link recovers.
    receiver.heal();
    tab.click(&format!("{row} .retry")).await;
    tab.wait_for(
        "the recovered link",
        &format!(
            "document.querySelector('{row}')?.dataset.health === 'ok' && !document.querySelector('{row} .dead')"
        ),
        Duration::from_secs(30),
    )
    .await;
    let delivered = receiver.texts("gone");
    assert!(
        delivered.len() == 1 && delivered[0].ends_with("Can someone review #42?"),
        "{delivered:?}"
    );

    // Remove the link (asks once more), then the account.
    tab.click(&format!("{row} .delete")).await;
    tab.click(&format!("{row} .delete")).await;
    tab.wait(
        "the removed link",
        &format!("!document.querySelector('{row}')"),
    )
    .await;
    assert_eq!(
        api.get("/api/v1/links").await["links"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}

/// Posts in the group whose first render is measured (`RUMGATE_WEB_RENDER_POSTS` overrides).
const RENDER_POSTS: usize = 100_000;

#[tokio::test]
async fn first_render_of_a_large_group_and_page_memory() {
    let n: usize = std::env::var("RUMGATE_WEB_RENDER_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RENDER_POSTS);
    let dir = tempfile::tempdir().unwrap();
    let filled = Instant::now();
    rumgate::bench::fill_store(dir.path(), n).await.unwrap();
    let fill = filled.elapsed();
    let node = start_node(dir.path()).await;
    let chrome = Chrome::launch().await;
    let tab = signed_in(&chrome, &node).await;
    let newest = format!("trx {}", n - 1);
    tab.wait(
        "the first page",
        &format!(
            "document.querySelector('#items > article .content')?.textContent === '{newest}' \
             && performance.getEntriesByName('rumgate:first-page').length > 0"
        ),
    )
    .await;
    let ms: f64 = tab
        .eval("performance.getEntriesByName('rumgate:first-page')[0].startTime")
        .await;
    let posts = tab.post_count().await;
    let heap = tab.heap_used().await;
    let nodes: usize = tab.eval("document.getElementsByTagName('*').length").await;
    println!(
        "first render of a group with {n} posts (filled in {:.1} s): {ms:.0} ms from navigation \
         to the first page ({posts} posts) in the DOM; {nodes} elements, JS heap {:.1} MiB",
        fill.as_secs_f64(),
        heap / 1048576.0
    );
    assert!(
        posts <= 100,
        "only the newest page is rendered, not {n} posts: {posts}"
    );
    tab.assert_clean().await;
    chrome.close().await;
    node.shutdown().await;
}
