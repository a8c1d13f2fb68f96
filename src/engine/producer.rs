//! The POA producer loop: turns pending trx of groups this node produces into signed blocks.

use super::Engine;
use crate::chain::verify::produce_block;
use crate::chain::MAX_BLOCK_BYTES;
use crate::util::now_ms;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Room kept for the block header, length prefixes and signature.
const BLOCK_OVERHEAD: usize = 512;
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(250);

pub(crate) async fn run(
    engine: Arc<Engine>,
    mut wake: mpsc::UnboundedReceiver<crate::chain::GroupId>,
    window: Duration,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            g = wake.recv() => match g { Some(g) => g, None => break },
        };
        if !window.is_zero() {
            // The batching window: gather what arrives in the next few ms into the same block.
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(window) => {}
            }
        }
        let mut ready = vec![first];
        while let Ok(g) = wake.try_recv() {
            if !ready.contains(&g) {
                ready.push(g);
            }
        }
        for gid in ready {
            if !produce_pending(&engine, gid).await {
                let engine = engine.clone();
                let cancel = cancel.clone();
                // Retry later without blocking other groups; the trx stay durably pending.
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(RETRY_AFTER_FAILURE) => {
                            if let Ok(entry) = engine.group(&gid) { engine.schedule(&entry); }
                        }
                    }
                });
            }
        }
    }
}

/// Produces blocks until the group's queue is empty. Returns false if a commit failed.
async fn produce_pending(engine: &Engine, gid: crate::chain::GroupId) -> bool {
    let Ok(entry) = engine.group(&gid) else {
        return true;
    };
    // Cleared before draining: a trx queued from now on schedules another pass.
    entry.scheduled.store(false, Ordering::Release);
    let me = engine.identity.public();
    if !entry.rules.is_producer(&me) {
        return true;
    }
    loop {
        let (batch, taken, head) = {
            let st = entry.lock();
            let mut size = BLOCK_OVERHEAD;
            let mut batch = Vec::new();
            let mut ids = std::collections::HashSet::new();
            let mut taken = 0;
            for t in st.pending.iter() {
                size += t.encoded_len() + 4;
                if size > MAX_BLOCK_BYTES && !batch.is_empty() {
                    break;
                }
                taken += 1;
                // The same trx queued twice is included once.
                if ids.insert(t.id()) {
                    batch.push(t.clone());
                }
            }
            (batch, taken, st.head)
        };
        if batch.is_empty() {
            return true;
        }
        let block = match produce_block(&engine.identity, &entry.rules, &head, batch, now_ms()) {
            Ok(b) => b,
            Err(e) => {
                // Not a property of any one trx (those were verified on entry): retry later.
                tracing::error!(group = %gid, error = %e, "cannot build a block; will retry");
                return false;
            }
        };
        match engine.store_block(&entry, &block).await {
            Ok(_) => {
                {
                    let mut st = entry.lock();
                    let n = taken.min(st.pending.len());
                    st.pending.drain(..n);
                }
                engine.metrics().blocks_produced.inc();
                tracing::debug!(group = %gid, height = block.body.height, trx = taken, "produced block");
                engine.announce_block(&block).await;
            }
            Err(e) => {
                tracing::error!(group = %gid, error = %e, "block commit failed; trx stay pending");
                return false;
            }
        }
    }
}
