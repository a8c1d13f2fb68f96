//! `TestNet`: N real nodes (the library `Node`) on 127.0.0.1 with port 0 for the API and p2p,
//! each in its own temp dir, wired to each other through bootstrap addresses.

use super::{config, eventually};
use rumgate::chain::{GroupId, TrxId};
use rumgate::Node;
use std::time::Duration;
use tempfile::TempDir;

pub struct TestNet {
    dirs: Vec<TempDir>,
    nodes: Vec<Option<Node>>,
}

impl TestNet {
    /// Starts `n` nodes; node `i` bootstraps to every node before it.
    pub async fn start(n: usize) -> TestNet {
        let mut net = TestNet {
            dirs: Vec::new(),
            nodes: Vec::new(),
        };
        for _ in 0..n {
            let bootstrap = net.running_addrs(None);
            net.add(bootstrap).await;
        }
        net
    }

    /// Adds a node that bootstraps to exactly `bootstrap`; returns its index.
    pub async fn add(&mut self, bootstrap: Vec<String>) -> usize {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = config(dir.path());
        cfg.p2p.bootstrap = bootstrap;
        let node = Node::start(cfg).await.expect("node starts");
        self.dirs.push(dir);
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// The node's dialable addresses (`/ip4/127.0.0.1/tcp/N/p2p/<id>`).
    pub fn addrs(&self, i: usize) -> Vec<String> {
        self.node(i)
            .p2p()
            .listen_addrs()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn running_addrs(&self, except: Option<usize>) -> Vec<String> {
        (0..self.nodes.len())
            .filter(|i| Some(*i) != except && self.nodes[*i].is_some())
            .flat_map(|i| self.addrs(i))
            .collect()
    }

    /// Stops node `i` (its data dir stays).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Starts node `i` again on its data dir, bootstrapping to every running node.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let mut cfg = config(self.dirs[i].path());
        cfg.p2p.bootstrap = self.running_addrs(Some(i));
        self.nodes[i] = Some(Node::start(cfg).await.expect("node restarts"));
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// Waits until node `i` is connected to at least `n` peers.
    pub async fn wait_peers(&self, i: usize, n: usize) {
        let node = self.node(i);
        eventually(
            Duration::from_secs(10),
            &format!("node {i} to have {n} peers"),
            || async { (node.p2p().peer_count() >= n).then_some(()) },
        )
        .await;
    }

    /// The trx ids of a group on node `i`, in chain order.
    pub async fn chain(&self, i: usize, gid: GroupId) -> Vec<TrxId> {
        self.node(i)
            .engine()
            .store()
            .list_trx(gid, 0, 1_000_000)
            .await
            .expect("list trx")
            .into_iter()
            .map(|t| t.trx.trx_id())
            .collect()
    }

    /// Block hashes of a group on node `i`, by height.
    pub async fn block_hashes(&self, i: usize, gid: GroupId) -> Vec<String> {
        self.node(i)
            .engine()
            .store()
            .list_blocks(gid, 1, 1_000_000)
            .await
            .expect("list blocks")
            .into_iter()
            .map(|b| b.hash.to_hex())
            .collect()
    }

    /// Waits until every running node in `on` holds `count` trx of the group.
    pub async fn wait_trx_count(&self, on: &[usize], gid: GroupId, count: usize, limit: Duration) {
        for &i in on {
            eventually(
                limit,
                &format!("node {i} to hold {count} trx"),
                || async move { (self.chain(i, gid).await.len() >= count).then_some(()) },
            )
            .await;
        }
    }

    /// Asserts that nodes `on` hold the same chain: same trx in the same order, same blocks.
    pub async fn assert_same_chain(&self, on: &[usize], gid: GroupId) {
        let first = self.chain(on[0], gid).await;
        let first_blocks = self.block_hashes(on[0], gid).await;
        for &i in &on[1..] {
            assert_eq!(
                self.chain(i, gid).await,
                first,
                "trx order differs on node {i}"
            );
            assert_eq!(
                self.block_hashes(i, gid).await,
                first_blocks,
                "block hashes differ on node {i}"
            );
        }
    }
}
