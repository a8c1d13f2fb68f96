//! Admission of new pending trx: a lower bound on their age (blocks already final stay valid
//! forever), and no second chance for a trx this node rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use rumgate::chain::verify::verify_trx;
use rumgate::chain::{ChainError, GroupId, Trx};
use rumgate::crypto::Identity;
use rumgate::engine::error::NodeError;
use rumgate::store::TrxStatus;
use rumgate::util::now_ms;

const HOUR_MS: u64 = 3_600_000;

async fn group(node: &rumgate::Node) -> GroupId {
    let api = common::http::Api::of(node);
    GroupId::from_hex(&api.group("admission").await).unwrap()
}

fn post_at(node: &rumgate::Node, gid: GroupId, at: u64, nonce: u8) -> Trx {
    let entry = node.engine().group(&gid).unwrap();
    Trx::new_post(
        &Identity::generate(),
        gid,
        entry.key.as_ref().unwrap(),
        br#"{"object":{"type":"Note","content":"from elsewhere"}}"#,
        at,
        [nonce; 24],
    )
}

#[tokio::test]
async fn a_trx_older_than_a_day_is_refused_as_new_but_stays_valid_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let gid = group(&node).await;
    let now = now_ms();
    let stale = post_at(&node, gid, now - 25 * HOUR_MS, 1);
    let err = node.engine().accept_trx(stale.clone()).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Rejected(ChainError::Timestamp { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("24 hours"), "{err}");
    // A day old, just: still admitted.
    let recent = post_at(&node, gid, now - 23 * HOUR_MS, 2);
    node.engine().accept_trx(recent).await.unwrap();
    // Verification of stored and synced data has no lower bound: whatever a block holds stays
    // valid however old it gets.
    let rules = node.engine().group(&gid).unwrap().rules.clone();
    verify_trx(stale, &rules, now + 10 * 365 * 24 * HOUR_MS).expect("old trx still verify");
    node.shutdown().await;
}

#[tokio::test]
async fn a_trx_this_node_rejected_is_refused_when_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let gid = group(&node).await;
    let trx = post_at(&node, gid, now_ms(), 3);
    let id = trx.trx_id();
    // It was pending once and rejected (by the producer's rules, or expired unincluded).
    let rules = node.engine().group(&gid).unwrap().rules.clone();
    let verified = verify_trx(trx.clone(), &rules, now_ms()).unwrap();
    let store = node.engine().store().clone();
    store.insert_pending(&verified, now_ms()).await.unwrap();
    store
        .reject_pending(id, gid, "not allowed at the time".into(), now_ms())
        .await
        .unwrap();
    // Replayed later (through the API or gossip): refused, and it stays rejected, durably.
    let err = node.engine().accept_trx(trx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    node.shutdown().await;
    let node = start_node(dir.path()).await;
    let err = node.engine().accept_trx(trx).await.unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    let status = node.engine().store().trx_status(id).await.unwrap();
    assert!(
        matches!(status, Some(TrxStatus::Rejected { .. })),
        "{status:?}"
    );
    node.shutdown().await;
}
