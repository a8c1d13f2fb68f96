//! The peer-to-peer network with real nodes on 127.0.0.1: gossip, sync, relays, bans, healing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::testnet::TestNet;
use common::{api, eventually};
use rumgate::chain::seed::Seed;
use rumgate::chain::{GroupId, GroupKind, TrxId};
use rumgate::Node;
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

async fn post(node: &Node, gid: GroupId, text: &str) -> TrxId {
    node.engine()
        .post(
            &gid,
            json!({"type": "Note", "content": text}),
            Default::default(),
        )
        .await
        .expect("post acknowledged")
        .trx_id
}

async fn group_info(node: &Node, gid: GroupId) -> Value {
    let (s, v) = api(node, Method::GET, &format!("/api/v1/groups/{gid}"), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn trx_status(node: &Node, id: TrxId) -> String {
    let (_, v) = api(node, Method::GET, &format!("/api/v1/trx/{id}"), None).await;
    v["status"].as_str().unwrap_or("unknown").to_string()
}

/// Node 0 creates a group; every other listed node joins it from node 0's seed.
async fn shared_group(net: &TestNet, kind: GroupKind, joiners: &[usize]) -> (GroupId, String) {
    let owner = net.node(0).engine();
    let entry = owner.create_group("net", kind).await.unwrap();
    let seed = owner.seed(&entry).to_url();
    for &i in joiners {
        net.node(i).engine().join(&seed).await.unwrap();
    }
    (entry.id(), seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_from_every_node_appear_on_all_in_identical_order() {
    let net = TestNet::start(3).await;
    let (gid, seed) = shared_group(&net, GroupKind::Public, &[1, 2]).await;
    // The seed a node hands out carries its own dialable address.
    let parsed = Seed::parse_and_verify(&seed).unwrap();
    assert_eq!(parsed.bootstrap, net.addrs(0));
    assert!(parsed.bootstrap[0].contains("/ip4/127.0.0.1/tcp/"));
    assert!(parsed.bootstrap[0].contains(&format!("/p2p/{}", net.node(0).p2p().peer_id())));

    let mut ids = Vec::new();
    for round in 0..10 {
        for i in 0..3 {
            ids.push((
                i,
                post(net.node(i), gid, &format!("node {i} round {round}")).await,
            ));
        }
    }
    net.wait_trx_count(&[0, 1, 2], gid, ids.len(), LIMIT).await;
    net.assert_same_chain(&[0, 1, 2], gid).await;
    let chain = net.chain(0, gid).await;
    for (i, id) in &ids {
        assert_eq!(
            chain.iter().filter(|c| *c == id).count(),
            1,
            "trx of node {i}"
        );
        // The poster sees its own trx move from pending to included.
        let node = net.node(*i);
        eventually(LIMIT, "own trx included", || async {
            (trx_status(node, *id).await == "included").then_some(())
        })
        .await;
    }
    // Members read the content (public group) and know the network.
    let (_, posts) = api(
        net.node(2),
        Method::GET,
        &format!("/api/v1/groups/{gid}/posts?limit=500"),
        None,
    )
    .await;
    assert_eq!(posts["items"].as_array().unwrap().len(), 30);
    assert!(posts["items"][0]["object"]["content"].is_string());
    let (_, info) = api(net.node(1), Method::GET, "/api/v1/node", None).await;
    assert!(info["peer_count"].as_u64().unwrap() >= 1, "{info}");
    assert_eq!(info["listen_addrs"][0].as_str().unwrap(), net.addrs(1)[0]);
    let (_, peers) = api(net.node(1), Method::GET, "/api/v1/peers", None).await;
    let owner_peer = net.node(0).p2p().peer_id().to_string();
    let owner = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == owner_peer.as_str())
        .expect("owner among peers");
    assert!(owner["groups"]
        .as_array()
        .unwrap()
        .contains(&json!(gid.to_hex())));
    let g = group_info(net.node(2), gid).await;
    assert_eq!(g["sync"]["state"], "synced");
    assert_eq!(g["role"], "member");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_catches_up_on_500_posts_after_restart() {
    let mut net = TestNet::start(3).await;
    let (gid, _) = shared_group(&net, GroupKind::Public, &[1, 2]).await;
    post(net.node(0), gid, "before").await;
    net.wait_trx_count(&[0, 1, 2], gid, 1, LIMIT).await;

    net.stop(2).await;
    for i in 0..500 {
        post(net.node(i % 2), gid, &format!("while away {i}")).await;
    }
    net.wait_trx_count(&[0, 1], gid, 501, LIMIT).await;

    net.restart(2).await;
    net.wait_trx_count(&[2], gid, 501, LIMIT).await;
    net.assert_same_chain(&[0, 1, 2], gid).await;
    let g = eventually(LIMIT, "synced state", || async {
        let g = group_info(net.node(2), gid).await;
        (g["sync"]["state"] == "synced").then_some(g)
    })
    .await;
    let height = net.node(0).engine().group(&gid).unwrap().head().height;
    assert_eq!(g["sync"]["local_height"], height);
    assert_eq!(g["sync"]["remote_height"], height);
    assert_eq!(g["sync"]["progress"], 1.0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_node_converges_after_heal() {
    let net = TestNet::start(3).await;
    let (gid, _) = shared_group(&net, GroupKind::Public, &[1, 2]).await;
    post(net.node(1), gid, "together").await;
    net.wait_trx_count(&[0, 1, 2], gid, 1, LIMIT).await;

    // Cut node 2 off. Both sides keep posting.
    net.node(2).p2p().set_offline(true).await.unwrap();
    eventually(LIMIT, "node 2 isolated", || async {
        (net.node(2).p2p().peer_count() == 0).then_some(())
    })
    .await;
    let mut main_side = Vec::new();
    for i in 0..20 {
        main_side.push(post(net.node(i % 2), gid, &format!("main {i}")).await);
    }
    let mut cut_off = Vec::new();
    for i in 0..10 {
        cut_off.push(post(net.node(2), gid, &format!("island {i}")).await);
    }
    net.wait_trx_count(&[0, 1], gid, 21, LIMIT).await;
    // The island's trx are acknowledged (stored as pending) but cannot be included yet.
    assert_eq!(trx_status(net.node(2), cut_off[0]).await, "pending");
    assert_eq!(net.chain(2, gid).await.len(), 1);

    // Heal: the node reconnects, syncs the missed blocks, and its pending trx get included.
    net.node(2).p2p().set_offline(false).await.unwrap();
    net.wait_trx_count(&[0, 1, 2], gid, 31, LIMIT).await;
    net.assert_same_chain(&[0, 1, 2], gid).await;
    let chain = net.chain(0, gid).await;
    for id in main_side.iter().chain(&cut_off) {
        assert_eq!(chain.iter().filter(|c| *c == id).count(), 1);
    }
    for id in &cut_off {
        let node = net.node(2);
        eventually(LIMIT, "island trx included", || async {
            (trx_status(node, *id).await == "included").then_some(())
        })
        .await;
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_node_stores_and_forwards_but_cannot_read() {
    // owner (0) <-> relay (1) <-> far relay (2): node 2 never talks to the owner.
    let mut net = TestNet::start(2).await;
    let owner = net.node(0).engine();
    let entry = owner
        .create_group("private", GroupKind::Private)
        .await
        .unwrap();
    let gid = entry.id();
    let seed = owner.seed(&entry).to_url();
    net.node(1).engine().join(&seed).await.unwrap();
    // Node 2 gets a seed whose only address is the relay's.
    let parsed = Seed::parse_and_verify(&seed).unwrap();
    let far_seed = Seed {
        genesis: (*parsed.genesis).clone(),
        group_key: None,
        bootstrap: net.addrs(1),
    }
    .to_url();
    let far = net.add(Vec::new()).await;
    net.node(far).engine().join(&far_seed).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(post(net.node(0), gid, &format!("secret {i}")).await);
    }
    net.wait_trx_count(&[0, 1, far], gid, 12, LIMIT).await;
    net.assert_same_chain(&[0, 1, far], gid).await;

    for i in [1, far] {
        let node = net.node(i);
        let g = group_info(node, gid).await;
        assert_eq!(g["role"], "relay-only");
        // It stores the posts but cannot read them...
        let (_, posts) = api(
            node,
            Method::GET,
            &format!("/api/v1/groups/{gid}/posts"),
            None,
        )
        .await;
        let items = posts["items"].as_array().unwrap();
        assert_eq!(items.len(), 12);
        assert!(items.iter().all(|p| p["object"].is_null()), "{posts}");
        // ...nor post.
        let (s, v) = api(
            node,
            Method::POST,
            &format!("/api/v1/groups/{gid}/posts"),
            Some(json!({"content": "hi"})),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("no_group_key"))
        );
    }
    // The owner reads its own posts.
    let (_, posts) = api(
        net.node(0),
        Method::GET,
        &format!("/api/v1/groups/{gid}/posts"),
        None,
    )
    .await;
    assert_eq!(posts["items"][0]["object"]["content"], "secret 0");
    // Everything node 2 has came through the relay.
    let owner_peer = net.node(0).p2p().peer_id().to_string();
    let (_, peers) = api(net.node(far), Method::GET, "/api/v1/peers", None).await;
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["peer_id"] != owner_peer.as_str()),
        "{peers}"
    );
    net.shutdown().await;
}

/// A misbehaving peer: a bare libp2p swarm speaking rumgate's gossip, controlled by the test.
mod rogue {
    use libp2p::futures::StreamExt;
    use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};
    use std::time::Duration;

    pub struct Rogue {
        pub swarm: Swarm<gossipsub::Behaviour>,
        pub topic: IdentTopic,
    }

    impl Rogue {
        /// Connects to `target` and waits until it has subscribed to `topic`.
        pub async fn connect(target: &str, topic: IdentTopic) -> Rogue {
            let cfg = rumgate::p2p::behaviour::gossipsub_config().unwrap();
            let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(
                    tcp::Config::default(),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .unwrap()
                .with_behaviour(|_| {
                    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, cfg).unwrap()
                })
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            swarm.behaviour_mut().subscribe(&topic).unwrap();
            swarm.dial(target.parse::<Multiaddr>().unwrap()).unwrap();
            let wait = async {
                loop {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed {
                        topic: t, ..
                    }) = swarm.select_next_some().await
                    {
                        if t == topic.hash() {
                            return;
                        }
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .expect("the node subscribes to the group topic");
            Rogue { swarm, topic }
        }

        pub fn peer_id(&self) -> PeerId {
            *self.swarm.local_peer_id()
        }

        /// Publishes `data` and drives the swarm until the node drops the connection.
        pub async fn publish_until_disconnected(mut self, data: Vec<u8>) {
            self.swarm
                .behaviour_mut()
                .publish(self.topic.clone(), data)
                .unwrap();
            let wait = async {
                loop {
                    if let SwarmEvent::ConnectionClosed {
                        num_established: 0, ..
                    } = self.swarm.select_next_some().await
                    {
                        return;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .expect("the node disconnects the rogue peer");
        }

        /// Publishes `data` and keeps the swarm running (for valid data).
        pub fn publish_and_keep_running(mut self, data: Vec<u8>) -> tokio::task::JoinHandle<()> {
            self.swarm
                .behaviour_mut()
                .publish(self.topic.clone(), data)
                .unwrap();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(20), async {
                    loop {
                        self.swarm.select_next_some().await;
                    }
                })
                .await;
            })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_blocks_with_bad_signature_or_wrong_prev_hash_and_bans_the_sender() {
    use rumgate::chain::verify::{produce_block, verify_genesis, verify_trx, GroupRules};
    use rumgate::chain::{BlockHash, Consensus, Genesis, GenesisBody, Head, Trx, PROTOCOL_VERSION};
    use rumgate::crypto::{random_bytes, GroupKey, Identity};
    use rumgate::p2p::protocol::{encode_block, topic};
    use rumgate::util::now_ms;

    // The rogue owns a group (so it can sign blocks) that the node follows.
    let owner = Identity::generate();
    let genesis = Genesis::sign(
        GenesisBody {
            version: PROTOCOL_VERSION,
            name: "rogue".into(),
            app: "timeline".into(),
            kind: GroupKind::Public,
            owner: owner.public(),
            consensus: Consensus::Poa,
            created_at: now_ms() - 1000,
            salt: random_bytes(),
        },
        &owner,
    );
    let key = GroupKey::generate();
    let seed = Seed {
        genesis: genesis.clone(),
        group_key: Some(*key.as_bytes()),
        bootstrap: vec![],
    }
    .to_url();
    let genesis = verify_genesis(genesis).unwrap();
    let rules = GroupRules::from_genesis(&genesis);
    let gid = rules.group_id;
    let head = Head::genesis(gid, genesis.body.created_at);
    let block_with = |text: &str, head: &Head| {
        let now = now_ms();
        let t = Trx::new_post(&owner, gid, &key, text.as_bytes(), now, random_bytes());
        produce_block(
            &owner,
            &rules,
            head,
            vec![verify_trx(t, &rules, now).unwrap()],
            now,
        )
        .unwrap()
        .into_inner()
    };

    let net = TestNet::start(1).await;
    let node = net.node(0);
    node.engine().join(&seed).await.unwrap();
    let target = net.addrs(0)[0].clone();

    let banned = |peer: String| async move {
        let (_, v) = api(node, Method::GET, "/api/v1/peers", None).await;
        v["banned"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["peer_id"] == peer.as_str())
            .map(|b| b["reason"].as_str().unwrap().to_string())
    };

    // 1. A correctly signed block at height 1 that links to the wrong parent.
    let mut wrong_prev = head;
    wrong_prev.hash = BlockHash([7; 32]);
    let bad_link = block_with("wrong parent", &wrong_prev);
    let r1 = rogue::Rogue::connect(&target, topic(&gid)).await;
    let p1 = r1.peer_id().to_string();
    r1.publish_until_disconnected(encode_block(&bad_link)).await;
    let reason = eventually(LIMIT, "first rogue banned", || banned(p1.clone())).await;
    assert!(reason.contains("prev_hash"), "{reason}");

    // 2. A correctly linked block whose signature is broken.
    let mut bad_sig = block_with("forged", &head);
    bad_sig.signature.0[10] ^= 0x40;
    let r2 = rogue::Rogue::connect(&target, topic(&gid)).await;
    let p2 = r2.peer_id().to_string();
    r2.publish_until_disconnected(encode_block(&bad_sig)).await;
    let reason = eventually(LIMIT, "second rogue banned", || banned(p2.clone())).await;
    assert!(reason.contains("bad signature"), "{reason}");

    // Nothing was stored.
    assert_eq!(node.engine().group(&gid).unwrap().head().height, 0);
    assert!(net.block_hashes(0, gid).await.is_empty());
    assert!(net.chain(0, gid).await.is_empty());

    // A valid block from a third peer is accepted: the rejections were about the data.
    let good = block_with("fine", &head);
    let r3 = rogue::Rogue::connect(&target, topic(&gid)).await;
    let p3 = r3.peer_id().to_string();
    let running = r3.publish_and_keep_running(encode_block(&good));
    net.wait_trx_count(&[0], gid, 1, LIMIT).await;
    assert_eq!(net.block_hashes(0, gid).await, vec![good.hash().to_hex()]);
    assert!(banned(p3).await.is_none());
    running.abort();
    net.shutdown().await;
}

/// Blocks that arrive from the network feed a follower's live stream and resolve `?wait=true`
/// there, exactly like blocks the node produced itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_streams_network_blocks_live_and_wait_resolves_on_arrival() {
    use futures::StreamExt;
    let net = TestNet::start(2).await;
    let (gid, _) = shared_group(&net, GroupKind::Public, &[1]).await;
    net.wait_peers(1, 1).await;
    let follower = net.node(1);
    let base = format!("http://{}", follower.api_addr());
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{base}/api/v1/groups/{gid}/stream?after=0"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());

    // Posted on the producer: arrives on the follower's stream.
    let mut sent = Vec::new();
    for k in 0..5 {
        sent.push(post(net.node(0), gid, &format!("from owner {k}")).await);
    }
    // Posted on the follower with ?wait=true: answered 201 once the producer's block arrived.
    let (status, body) = api(
        follower,
        Method::POST,
        &format!("/api/v1/groups/{gid}/posts?wait=true"),
        Some(json!({"type": "Note", "content": "from follower"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "included", "{body}");
    assert!(body["height"].as_u64().unwrap() >= 1, "{body}");
    sent.push(TrxId::from_hex(body["trx_id"].as_str().unwrap()).unwrap());

    let mut got = Vec::new();
    while got.len() < sent.len() {
        let e = tokio::time::timeout(LIMIT, events.next())
            .await
            .expect("stream stalled")
            .expect("stream ended")
            .unwrap();
        if e.event != "message" {
            continue;
        }
        let item: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(item["cursor"].as_str().unwrap(), e.id);
        got.push(TrxId::from_hex(item["trx_id"].as_str().unwrap()).unwrap());
    }
    assert_eq!(got, sent, "every item once, in chain order");
    net.shutdown().await;
}
