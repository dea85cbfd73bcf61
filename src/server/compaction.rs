//! Snapshots by the log's size as well as by its length in entries.
//!
//! openraft's policy counts entries, but an entry holds from one command to 128 (the proposer
//! gathers them), so 20,000 entries can be 20,000 bookings or 2.5 million. The log is kept in
//! memory and on disk until a snapshot lets it be purged, and a restart replays all of it. So
//! this task also asks for a snapshot once the log has taken `[raft] snapshot_log_bytes` since
//! the last one (staggered by node id like the entry threshold, so the nodes take turns).

use std::sync::Arc;
use std::time::Duration;

use super::node::Node;

/// How often the log's growth is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(200);

pub async fn snapshot_by_size(node: Arc<Node>) {
    let budget = super::staggered(node.config.raft.snapshot_log_bytes, node.id);
    let mut stopping = node.stopping.subscribe();
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut metrics = node.raft.metrics();
    let mut last_snapshot = metrics.borrow_and_update().snapshot;
    let mut mark = node.log.appended_bytes();
    loop {
        tokio::select! {
            _ = async { let _ = stopping.wait_for(|&stop| stop).await; } => return,
            _ = tick.tick() => {}
        }
        let snapshot = metrics.borrow_and_update().snapshot;
        if snapshot != last_snapshot {
            // One was built (by either policy) or installed: count from here.
            last_snapshot = snapshot;
            mark = node.log.appended_bytes();
            continue;
        }
        let grown = node.log.appended_bytes().saturating_sub(mark);
        if grown >= budget {
            tracing::info!(
                log_bytes = grown,
                "asking for a snapshot: the log has grown"
            );
            if node.raft.trigger().snapshot().await.is_err() {
                return;
            }
            mark = node.log.appended_bytes();
        }
    }
}
