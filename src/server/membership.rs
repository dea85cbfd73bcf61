//! Who is in the cluster, changed at run time: add a node, remove one, put a new one in a
//! dead one's place.
//!
//! Every change is carried out by the leader, through openraft's joint consensus (the old
//! and the new voters must both agree until the new set alone takes over), so a booking
//! acknowledged before, during or after a change is never lost. A node that is not the
//! leader takes the request there over the peer protocol. One change at a time per leader.
//!
//! A node joins as a learner: it receives the log (a snapshot, then entries) but does not
//! vote, so a new empty node cannot slow commits or swing an election. It is promoted once
//! its applied index is within `PROMOTE_LAG_ENTRIES_MAX` of the leader's log. A call waits
//! `CATCH_UP_WAIT_MS` at most for that; if the learner is still behind, the reply says so
//! and calling again goes on from where it is (the command line does, until its deadline).
//!
//! A leader asked to remove itself first hands leadership over (`server::handover`), and
//! the new leader removes it.
//!
//! Quorum is guarded: a removal or replacement that leaves fewer voters than a majority of
//! the current ones, or voters of which too few answer to form a quorum, is refused unless
//! forced; a forced one says what it risks.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::node::{Membership, Node};
use crate::consensus::{decode, encode, NodeId};
use crate::error::ApiError;
use crate::limits;
use crate::pb::raft::v1::Blob;

/// A change an admin asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    Add {
        id: NodeId,
        peer_addr: String,
    },
    Remove {
        id: NodeId,
        force: bool,
    },
    Replace {
        old: NodeId,
        new: NodeId,
        peer_addr: String,
        force: bool,
    },
}

/// Where a change got to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changed {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// False while a node being added is a learner that has not caught up.
    pub promoted: bool,
    /// The added node's applied index, and the leader's last log index, when last looked.
    pub applied_index: u64,
    pub leader_index: u64,
    /// What a forced change risks.
    pub warning: Option<String>,
    /// The node this one, the leader, handed leadership to before it was removed.
    pub handed_over_to: Option<NodeId>,
}

/// Carries out `change` on the leader: here if this node leads, otherwise at the leader.
pub async fn change(node: &Node, change: Change) -> Result<Changed, ApiError> {
    let deadline = Instant::now() + Duration::from_millis(limits::QUORUM_WAIT_MS);
    loop {
        match node.leader() {
            Some(leader) if leader == node.id => return change_here(node, change).await,
            Some(leader) => {
                let budget = limits::CLIENT_REQUEST_MAX_MS - 1_000;
                return forward(node, leader, &change, budget).await;
            }
            None if Instant::now() >= deadline => {
                return Err(ApiError::Unavailable(
                    "no leader is known: a membership change needs one; retry".into(),
                ))
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The peer service's side of `forward`: the change carried out here, as the leader.
pub async fn serve_forwarded(node: &Node, request: &[u8]) -> Result<Blob, tonic::Status> {
    let change: Change = decode(request)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable change: {e}")))?;
    let result = if node.leader() == Some(node.id) {
        change_here(node, change).await
    } else {
        Err(ApiError::Unavailable(
            "the node asked to change the membership no longer leads; retry".into(),
        ))
    };
    let data = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(Blob { data })
}

/// Has `leader` carry out `change`, waiting `budget_ms` at most for its answer.
async fn forward(
    node: &Node,
    leader: NodeId,
    change: &Change,
    budget_ms: u64,
) -> Result<Changed, ApiError> {
    let unavailable = |why: String| ApiError::Unavailable(format!("leader {leader}: {why}"));
    let addr = node
        .peer_addr_of(leader)
        .ok_or_else(|| unavailable("its address is unknown".into()))?;
    let mut client = node.peers.client(leader, &addr).map_err(unavailable)?;
    let data = encode(change).map_err(|e| ApiError::Internal(e.to_string()))?;
    let budget = Duration::from_millis(budget_ms);
    match tokio::time::timeout(budget, client.change_membership(Blob { data })).await {
        Ok(Ok(reply)) => decode::<Result<Changed, ApiError>>(&reply.into_inner().data)
            .map_err(|e| unavailable(format!("undecodable reply: {e}")))?,
        Ok(Err(status)) => Err(unavailable(status.message().to_string())),
        Err(_) => Err(unavailable(
            "did not answer in time; the change may or may not have happened: \
             `ticket status` shows the membership"
                .into(),
        )),
    }
}

async fn change_here(node: &Node, change: Change) -> Result<Changed, ApiError> {
    // One change at a time: openraft refuses a second while the first is joint anyway, and
    // serialising here gives a clear answer instead of a race.
    let _one_at_a_time = node.membership_lock.lock().await;
    match change {
        Change::Add { id, peer_addr } => add(node, id, &peer_addr).await,
        Change::Remove { id, force } => remove(node, id, force).await,
        Change::Replace {
            old,
            new,
            peer_addr,
            force,
        } => replace(node, old, new, &peer_addr, force).await,
    }
}

async fn add(node: &Node, id: NodeId, peer_addr: &str) -> Result<Changed, ApiError> {
    let now = node.membership();
    if now.voters.contains(&id) {
        // Asked again after it was promoted: done.
        return Ok(changed(now, true, None));
    }
    let caught_up = join_as_learner(node, id, peer_addr).await?;
    if !caught_up.done {
        return Ok(caught_up.into_reply(node));
    }
    let now = commit(node, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
    tracing::info!(node = id, "added a voter");
    Ok(changed(now, true, None))
}

async fn remove(node: &Node, id: NodeId, force: bool) -> Result<Changed, ApiError> {
    let now = node.membership();
    if now.learners.contains(&id) {
        let now = commit(node, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
        return Ok(changed(now, true, None));
    }
    if !now.voters.contains(&id) {
        return Err(ApiError::NotFound(format!(
            "node {id} is not a member (voters: {})",
            ids(&now.voters)
        )));
    }
    let mut voters = now.voters.clone();
    voters.remove(&id);
    let warning = guard_quorum(node, &now, &voters, force).await?;
    if id == node.id {
        match super::handover::hand_over(node, &voters).await {
            Ok(successor) => {
                tracing::info!(successor, "handed leadership over; it removes this node");
                let budget = limits::CLIENT_REQUEST_MAX_MS - 1_000 - limits::HANDOVER_MAX_MS;
                let done = forward(node, successor, &Change::Remove { id, force }, budget).await?;
                return Ok(Changed {
                    handed_over_to: Some(successor),
                    ..done
                });
            }
            // Removed while leading, then: it steps down once the membership without it
            // commits (nothing in flight is lost), and the others elect a leader once its
            // lease has run out. Clients retry meanwhile.
            Err(why) => tracing::warn!("removing this node, the leader, without a handover: {why}"),
        }
    }
    let now = commit(node, ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
    tracing::info!(node = id, forced = warning.is_some(), "removed a voter");
    Ok(changed(now, true, warning))
}

async fn replace(
    node: &Node,
    old: NodeId,
    new: NodeId,
    peer_addr: &str,
    force: bool,
) -> Result<Changed, ApiError> {
    let now = node.membership();
    if now.voters.contains(&new) && !now.voters.contains(&old) {
        // Asked again after the swap: done.
        return Ok(changed(now, true, None));
    }
    if !now.voters.contains(&old) {
        return Err(ApiError::NotFound(format!(
            "node {old} is not a voter (voters: {})",
            ids(&now.voters)
        )));
    }
    if now.voters.contains(&new) {
        return Err(ApiError::FailedPrecondition(format!(
            "node {new} is already a voter: remove node {old} instead"
        )));
    }
    let caught_up = join_as_learner(node, new, peer_addr).await?;
    if !caught_up.done {
        return Ok(caught_up.into_reply(node));
    }
    let mut voters = now.voters.clone();
    voters.remove(&old);
    voters.insert(new);
    let warning = guard_quorum(node, &now, &voters, force).await?;
    let now = commit(node, ChangeMembers::ReplaceAllVoters(voters)).await?;
    tracing::info!(old, new, "replaced a voter");
    Ok(changed(now, true, warning))
}

/// How far a learner got.
struct CatchUp {
    done: bool,
    applied_index: u64,
    leader_index: u64,
}

impl CatchUp {
    fn into_reply(self, node: &Node) -> Changed {
        Changed {
            applied_index: self.applied_index,
            leader_index: self.leader_index,
            ..changed(node.membership(), false, None)
        }
    }
}

/// Makes `id` a learner at `peer_addr` (unless it is one), then waits a while for it to
/// catch up. The node must answer there first, as node `id` (its certificate says so), so a
/// mistyped address is refused rather than left as a member nobody can reach.
async fn join_as_learner(node: &Node, id: NodeId, peer_addr: &str) -> Result<CatchUp, ApiError> {
    if id == 0 {
        return Err(ApiError::InvalidArgument("node ids start at 1".into()));
    }
    let addr: std::net::SocketAddr = peer_addr.parse().map_err(|_| {
        ApiError::InvalidArgument(format!("'{peer_addr}' is not an address (IP:PORT)"))
    })?;
    let recorded = node.membership_node(id);
    if let Some(recorded) = &recorded {
        if recorded.addr != addr.to_string() {
            return Err(ApiError::FailedPrecondition(format!(
                "node {id} is already a learner at {}: remove it first to move it",
                recorded.addr
            )));
        }
    } else {
        if !answers_as(node, id, &addr.to_string()).await {
            return Err(ApiError::FailedPrecondition(format!(
                "node {id} does not answer at {addr}: start it with `ticket node --id {id} \
                 --join` (its certificate must be for node {id}) and check the address"
            )));
        }
        let learner = BasicNode::new(addr.to_string());
        node.raft
            .add_learner(id, learner, false)
            .await
            .map_err(write_error)?;
        tracing::info!(node = id, %addr, "added a learner; it catches up before it votes");
    }
    Ok(wait_caught_up(node, id).await)
}

/// Whether node `id` answers a status probe at `addr`, as itself, within a few seconds (a
/// node just started may not listen yet).
async fn answers_as(node: &Node, id: NodeId, addr: &str) -> bool {
    let Ok(mut client) = node.peers.client(id, addr) else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_millis(limits::STATUS_PROBE_MS * 6);
    loop {
        let call = client.node_status(crate::pb::raft::v1::Empty {});
        let wait = Duration::from_millis(limits::STATUS_PROBE_MS);
        if let Ok(Ok(reply)) = tokio::time::timeout(wait, call).await {
            return reply.get_ref().id == id;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the learner's applied index until it is within the promotion lag of this leader's
/// last log index, for `CATCH_UP_WAIT_MS` at most.
async fn wait_caught_up(node: &Node, id: NodeId) -> CatchUp {
    let deadline = Instant::now() + Duration::from_millis(limits::CATCH_UP_WAIT_MS);
    loop {
        let leader_index = node.raft.metrics().borrow().last_log_index.unwrap_or(0);
        let applied_index = match node.probe(id).await {
            (_, Some(state)) => state.applied_index,
            (_, None) => 0,
        };
        let done = applied_index + limits::PROMOTE_LAG_ENTRIES_MAX >= leader_index;
        if done || Instant::now() >= deadline {
            return CatchUp {
                done,
                applied_index,
                leader_index,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuses (unless `force`) voters that would be fewer than a majority of the current ones,
/// or of which fewer than a majority answer and keep up. Forced, it says what it risks.
async fn guard_quorum(
    node: &Node,
    now: &Membership,
    voters: &BTreeSet<NodeId>,
    force: bool,
) -> Result<Option<String>, ApiError> {
    if voters.is_empty() {
        return Err(ApiError::FailedPrecondition(
            "that would leave no voter: a cluster needs at least one".into(),
        ));
    }
    let majority = |n: usize| n / 2 + 1;
    let healthy = healthy_voters(node, voters).await;
    let risk = if voters.len() < majority(now.voters.len()) {
        Some(format!(
            "that would leave {} voter(s) of {}: fewer than a majority of the current voters, \
             so the cluster would keep going on too few copies of every booking",
            voters.len(),
            now.voters.len()
        ))
    } else if healthy.len() < majority(voters.len()) {
        Some(format!(
            "of the voters that would remain ({}), only {} answer and keep up: no quorum, so \
             the cluster would stop taking bookings",
            ids(voters),
            if healthy.is_empty() {
                "none".to_string()
            } else {
                ids(&healthy)
            }
        ))
    } else {
        None
    };
    match (risk, force) {
        (None, _) => Ok(None),
        (Some(risk), true) => {
            tracing::warn!(%risk, "a forced membership change");
            Ok(Some(format!("forced: {risk}")))
        }
        (Some(risk), false) => Err(ApiError::FailedPrecondition(format!(
            "refused: {risk}. Use --force to do it anyway"
        ))),
    }
}

/// The voters among `voters` that answer and are within the promotion lag of this leader.
async fn healthy_voters(node: &Node, voters: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
    let leader_index = node.raft.metrics().borrow().last_log_index.unwrap_or(0);
    let probes = voters.iter().map(|&id| node.probe(id));
    futures::future::join_all(probes)
        .await
        .into_iter()
        .filter_map(|(id, state)| {
            let state = state?;
            let keeps_up = state.applied_index + limits::READY_LAG_ENTRIES_MAX >= leader_index;
            keeps_up.then_some(id)
        })
        .collect()
}

/// Commits a membership change (joint, then uniform; nodes no longer in it are dropped) and
/// returns the membership committed.
async fn commit(
    node: &Node,
    changes: ChangeMembers<NodeId, BasicNode>,
) -> Result<Membership, ApiError> {
    let call = node.raft.change_membership(changes, false);
    let budget = Duration::from_millis(limits::QUORUM_WAIT_MS * 3 / 2);
    match tokio::time::timeout(budget, call).await {
        Ok(result) => {
            let reply = result.map_err(write_error)?;
            Ok(reply
                .membership
                .as_ref()
                .map_or_else(|| node.membership(), Membership::of))
        }
        Err(_) => Err(ApiError::Unavailable(
            "the change was not committed in time (no quorum?); it may still happen: \
             `ticket status` shows the membership"
                .into(),
        )),
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ApiError::Unavailable(
            "this node stopped leading during the change; retry (it may have happened)".into(),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => ApiError::Unavailable("another membership change is in progress; retry".into()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ApiError::FailedPrecondition(e.to_string())
        }
        RaftError::Fatal(e) => ApiError::Unavailable(format!("this node stopped: {e}")),
    }
}

fn changed(now: Membership, promoted: bool, warning: Option<String>) -> Changed {
    Changed {
        voters: now.voters.into_iter().collect(),
        learners: now.learners.into_iter().collect(),
        promoted,
        warning,
        ..Changed::default()
    }
}

fn ids(set: &BTreeSet<NodeId>) -> String {
    set.iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
