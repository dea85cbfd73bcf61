//! A leader about to be removed hands leadership to another voter first, so that bookings
//! pause for one election round trip rather than for an election timeout.
//!
//! openraft 0.9 has no leadership transfer (0.10's `transfer_leader` is still alpha), so it
//! is built from what 0.9 does have, the Raft dissertation's §3.10 in outline:
//!
//! 1. This leader stops proposing and waits for its entries in flight to be answered
//!    (`Proposer::pause`), so its log stops growing.
//! 2. It waits until the successor (the remaining voter furthest along) has its whole log.
//! 3. It asks the successor to stand for election (the peer RPC `Campaign`). The successor's
//!    log is as long as this leader's, so this leader grants its vote, and steps down in
//!    doing so.
//!
//! The catch is the leader lease: a voter refuses every candidate until `election_timeout_max`
//! has passed since it last heard from its leader, and the leader itself until that long
//! after it was elected. So:
//! - this leader waits until it has led for longer than the lease (at once, unless it was
//!   elected a moment ago);
//! - when this leader and the successor alone are not a majority (four voters or more), the
//!   others must grant too: heartbeats stop, and the successor campaigns once their leases
//!   have run out. Bookings pause for about one lease then, still shorter than waiting for
//!   the removal to commit and then for an election timeout, and the successor is chosen
//!   rather than left to a race.
//!
//! Whatever fails or takes too long, writes and heartbeats resume and the caller removes
//! this node as it would have without a handover. Nothing acknowledged is at risk either
//! way: the election is an ordinary one, with openraft's own checks.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::node::Node;
use crate::consensus::NodeId;
use crate::limits;
use crate::pb::raft::v1::Empty;

/// Hands leadership over to one of `remaining` (voters all) and returns the new leader.
pub async fn hand_over(node: &Node, remaining: &BTreeSet<NodeId>) -> Result<NodeId, String> {
    let budget = Duration::from_millis(limits::HANDOVER_MAX_MS);
    match tokio::time::timeout(budget, steps(node, remaining)).await {
        Ok(result) => result,
        Err(_) => Err(format!("not done within {} ms", limits::HANDOVER_MAX_MS)),
    }
}

async fn steps(node: &Node, remaining: &BTreeSet<NodeId>) -> Result<NodeId, String> {
    let lease = Duration::from_millis(node.config.raft.election_timeout_max_ms);
    let margin = Duration::from_millis(node.config.raft.heartbeat_interval_ms);
    wait_lease_since_elected(node, lease + margin).await;

    let voters = node.membership().voters;
    let successor = successor(node, remaining).ok_or("no remaining voter keeps up")?;
    // This node and the successor: a majority (n / 2 + 1) of the voters on their own?
    let majority = voters.len() / 2 + 1;
    let pair_is_quorum = majority <= 2;

    let _paused = tokio::time::timeout(Duration::from_millis(1_500), node.proposer.pause())
        .await
        .map_err(|_| "the entries in flight were not answered in time")?
        .ok_or("the proposer has stopped")?;
    // Restored however this ends, a timeout included.
    let _heartbeats = (!pair_is_quorum).then(|| Heartbeats::stop(node));
    let last = wait_has_whole_log(node, successor).await?;
    if !pair_is_quorum {
        // The other voters grant a vote only once their leases have run out.
        tokio::time::sleep(lease + margin).await;
    }
    tracing::info!(
        successor,
        last_log_index = last,
        "handing leadership over before leaving"
    );
    campaign(node, successor).await?;
    wait_new_leader(node, lease).await
}

/// Waits until this node has led for `lease`: before that it would refuse the successor's
/// vote request like any voter whose leader is fresh.
async fn wait_lease_since_elected(node: &Node, lease: Duration) {
    let since = node.leading_since.lock().ok().and_then(|since| *since);
    if let Some(since) = since {
        let led = since.elapsed();
        if led < lease {
            tokio::time::sleep(lease - led).await;
        }
    }
}

/// The voter among `remaining` whose log this leader has replicated furthest.
fn successor(node: &Node, remaining: &BTreeSet<NodeId>) -> Option<NodeId> {
    let metrics = node.raft.metrics().borrow().clone();
    let replication = metrics.replication?;
    remaining
        .iter()
        .filter_map(|id| {
            let matched = replication.get(id)?.as_ref()?.index;
            Some((matched, *id))
        })
        .max()
        .map(|(_, id)| id)
}

/// Waits until `successor` holds (has flushed) every entry of this leader's log, and returns
/// that last index.
async fn wait_has_whole_log(node: &Node, successor: NodeId) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let mut metrics = node.raft.metrics();
    loop {
        let (last, matched) = {
            let m = metrics.borrow_and_update();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&successor).cloned().flatten())
                .map(|log_id| log_id.index);
            (m.last_log_index.unwrap_or(0), matched)
        };
        if matched == Some(last) {
            return Ok(last);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, metrics.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("this node is stopping".into()),
            Err(_) => {
                return Err(format!(
                    "node {successor} did not catch up ({matched:?} of {last})"
                ))
            }
        }
    }
}

async fn campaign(node: &Node, successor: NodeId) -> Result<(), String> {
    let addr = node
        .peer_addr_of(successor)
        .ok_or_else(|| format!("node {successor}'s address is unknown"))?;
    let mut client = node.peers.client(successor, &addr)?;
    let wait = Duration::from_millis(limits::STATUS_PROBE_MS);
    match tokio::time::timeout(wait, client.campaign(Empty {})).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!(
            "node {successor} did not campaign: {}",
            status.message()
        )),
        Err(_) => Err(format!("node {successor} did not answer in time")),
    }
}

/// Waits until another node is known to lead, for two leases at most (a campaign that
/// failed is retried by openraft's own election timers meanwhile).
async fn wait_new_leader(node: &Node, lease: Duration) -> Result<NodeId, String> {
    let leader = node
        .raft
        .wait(Some(lease * 2))
        .metrics(
            |m| matches!(m.current_leader, Some(l) if l != node.id),
            "another node leads",
        )
        .await
        .map_err(|e| format!("no other node took over: {e}"))?
        .current_leader;
    leader.ok_or_else(|| "no leader".into())
}

/// The peer service's side of `campaign`: stand for election, if asked by this node's leader.
pub async fn serve_campaign(node: &Node, caller: NodeId) -> Result<(), tonic::Status> {
    if node.leader() != Some(caller) {
        return Err(tonic::Status::failed_precondition(format!(
            "node {caller} is not this node's leader: only the leader hands leadership over"
        )));
    }
    if !node.membership().voters.contains(&node.id) {
        return Err(tonic::Status::failed_precondition(
            "this node does not vote, so it cannot lead",
        ));
    }
    tracing::info!(
        leader = caller,
        "asked to take leadership over: campaigning"
    );
    node.raft
        .trigger()
        .elect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("this node stopped: {e}")))
}

/// Stops this leader's heartbeats while held; starts them again when dropped.
struct Heartbeats<'a>(&'a Node);

impl<'a> Heartbeats<'a> {
    fn stop(node: &'a Node) -> Heartbeats<'a> {
        node.raft.runtime_config().heartbeat(false);
        Heartbeats(node)
    }
}

impl Drop for Heartbeats<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
    }
}
