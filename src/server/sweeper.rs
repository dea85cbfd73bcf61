//! Gives held seats back on time when nothing else is written: the leader commits a
//! `Command::Sweep` as soon as log time would pass a live hold's expiry.
//!
//! Holds expire by log time, not by this task: any command at or past a hold's expiry ends
//! it first (see `domain::state`). Without other writes, though, log time would stand still
//! and watchers would see held seats long after their holds ran out. The sweep moves it on.
//! Only the leader proposes; a follower's task only looks.

use std::sync::Arc;
use std::time::Duration;

use super::node::Node;
use crate::clock::now_ms;
use crate::domain::Command;

/// How often the leader looks for a hold that is due: a watcher sees a seat come back at
/// most this long (plus a commit) after its hold ran out.
const LOOK_EVERY: Duration = Duration::from_millis(100);

pub async fn sweep_when_due(node: Arc<Node>) {
    let mut stopping = node.stopping.subscribe();
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = async { let _ = stopping.wait_for(|&stop| stop).await; } => return,
            _ = tick.tick() => {}
        }
        if node.leader() != Some(node.id) {
            continue;
        }
        let due = node.sm.read().state.next_expiry_ms();
        let now = now_ms();
        if due.is_some_and(|at| at <= now) {
            // Its outcome is only how many holds ended; a failure is tried again next tick.
            let outcome = node.propose_here(Command::Sweep { now_ms: now }).await;
            tracing::debug!(?outcome, "swept expired holds");
        }
    }
}
