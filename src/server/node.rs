//! One node's handle on the cluster: propose a write (forwarding it to the leader when this
//! node is a follower), wait for a linearizable read, check a token, report status.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use tokio::time::Instant;

use super::proposer::{ProposeOutcome, Proposer};
use crate::clock::now_ms;
use crate::config::Config;
use crate::consensus::network::Peers;
use crate::consensus::{decode, encode, LogStore, NodeId, Raft, StateMachineStore};
use crate::domain::auth;
use crate::domain::{Command, Outcome};
use crate::error::ApiError;
use crate::limits;
use crate::pb::raft::v1::{Blob, Empty, NodeState};

pub struct Node {
    pub id: NodeId,
    pub config: Config,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub log: LogStore,
    pub peers: Arc<Peers>,
    pub proposer: Proposer,
    /// The keys tokens are signed and checked with (from a file, never from the log).
    pub keyring: super::keyring::Keyring,
    /// What strangers may spend on passwords here.
    pub throttle: super::throttle::Throttle,
    /// Becomes true when the node starts shutting down: long-lived streams (`WatchSeats`)
    /// end then, so that they do not hold the shutdown up.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Held by the leader while it changes the membership: one change at a time.
    pub membership_lock: tokio::sync::Mutex<()>,
    /// When this node was last seen to become leader (by `bootstrap::log_role_changes`, so no
    /// earlier than openraft's own record): a leader grants a vote only once its lease, the
    /// longest election timeout, has run out since then (`server::handover`).
    pub leading_since: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What this node's state says of a well-signed token.
enum Standing {
    Good,
    Refused(String),
    /// The token is newer than what this node has applied.
    Behind,
}

/// A committed and applied write.
#[derive(Debug)]
pub struct Written {
    pub outcome: Outcome,
    pub index: u64,
    /// The leader that took it: clients use it to go there directly next time.
    pub leader: NodeId,
}

/// Who votes and who only follows, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub voters: std::collections::BTreeSet<NodeId>,
    /// Members that receive the log but do not vote.
    pub learners: std::collections::BTreeSet<NodeId>,
    /// Whether a change is half done (joint consensus: both the old and the new voters).
    pub joint: bool,
}

impl Membership {
    pub fn of(membership: &openraft::Membership<NodeId, openraft::BasicNode>) -> Membership {
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        Membership {
            learners: membership
                .learner_ids()
                .filter(|id| !voters.contains(id))
                .collect(),
            voters,
            joint: membership.get_joint_config().len() > 1,
        }
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

/// How up to date a read must be: the wire's one type, which the client uses too.
pub use crate::pb::booking::v1::Consistency;

impl Node {
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Where node `id`'s peer listener is dialed: as this node's cluster.toml says, or, for a
    /// node added at run time that the file does not list, as the membership records it.
    pub fn peer_addr_of(&self, id: NodeId) -> Option<String> {
        if let Some(n) = self.config.node(id) {
            return Some(n.peer_advertise.to_string());
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The live membership as this node has it: voters and learners (the latter being caught
    /// up before they vote).
    pub fn membership(&self) -> Membership {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        Membership::of(m.membership_config.membership())
    }

    /// Node `id` as the live membership records it (where its peers dial it).
    pub fn membership_node(&self, id: NodeId) -> Option<openraft::BasicNode> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().get_node(&id).cloned()
    }

    /// Waits (until `deadline`) for any leader to be known and returns it.
    async fn wait_for_leader(&self, deadline: Instant) -> Option<NodeId> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Proposes on this node, which believes it is the leader; concurrent commands share a
    /// log entry (see `proposer`).
    pub async fn propose_here(&self, command: Command) -> ProposeOutcome {
        self.proposer.propose(command).await
    }

    async fn forward(
        &self,
        leader: NodeId,
        command: &Command,
        deadline: Instant,
    ) -> ProposeOutcome {
        let Some(addr) = self.peer_addr_of(leader) else {
            return ProposeOutcome::Unavailable(format!("leader {leader} is not in cluster.toml"));
        };
        let mut client = match self.peers.client(leader, &addr) {
            Ok(client) => client,
            Err(e) => return ProposeOutcome::Unavailable(e),
        };
        let data = match encode(command) {
            Ok(data) => data,
            Err(e) => return ProposeOutcome::Unavailable(e.to_string()),
        };
        let call = client.forward(Blob { data });
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(reply)) => decode(&reply.into_inner().data).unwrap_or_else(|e| {
                ProposeOutcome::Unavailable(format!("bad reply from the leader: {e}"))
            }),
            Ok(Err(status)) => {
                ProposeOutcome::Unavailable(format!("leader {leader}: {}", status.message()))
            }
            Err(_) => {
                ProposeOutcome::Unavailable(format!("leader {leader} did not answer in time"))
            }
        }
    }

    /// Commits a command through whichever node leads, and returns its outcome once applied.
    /// A command whose fate is unknown (the leader changed under it) is retried; the request
    /// id makes that safe: the state machine applies one request id at most once.
    pub async fn write(&self, command: Command) -> Result<Written, ApiError> {
        let deadline = Instant::now() + Duration::from_millis(limits::QUORUM_WAIT_MS);
        let mut hint = self.leader();
        let mut last_problem = String::from("no leader is known");
        loop {
            let proposed = match hint {
                Some(leader) if leader == self.id => self.propose_here(command.clone()).await,
                Some(leader) => self.forward(leader, &command, deadline).await,
                None => ProposeOutcome::NotLeader(None),
            };
            match proposed {
                ProposeOutcome::Done { outcome, index } => {
                    return Ok(Written {
                        outcome,
                        index,
                        leader: hint.unwrap_or(self.id),
                    })
                }
                ProposeOutcome::NotLeader(next) if next.is_some() && next != hint => hint = next,
                ProposeOutcome::NotLeader(_) => hint = None,
                ProposeOutcome::Unavailable(why) => {
                    last_problem = why;
                    hint = None;
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Unavailable(format!(
                    "the cluster could not commit this within {} s ({last_problem}); \
                     it may or may not have happened: retry with the same request id",
                    limits::QUORUM_WAIT_MS / 1000
                )));
            }
            if hint.is_none() {
                self.must_be_member()?;
                // A short pause lets an election finish instead of spinning on a stale view.
                tokio::time::sleep(Duration::from_millis(20)).await;
                hint = self.wait_for_leader(deadline).await;
            }
        }
    }

    /// UNAVAILABLE at once on a node outside the membership (removed, or not added yet): no
    /// leader will tell it anything, and a client should ask another node rather than wait.
    fn must_be_member(&self) -> Result<(), ApiError> {
        if self.membership().contains(self.id) {
            return Ok(());
        }
        Err(ApiError::Unavailable(format!(
            "node {} is not a member of the cluster (removed, or not added yet); ask another node",
            self.id
        )))
    }

    /// On the leader: confirms leadership with a quorum and returns the index a linearizable
    /// read must see applied.
    ///
    /// openraft's read index is `max(first entry of this term, commit index)`, and that is not
    /// enough here: a node that led before a crash restarts as leader of the same term, and
    /// the commit index it remembers is written without waiting for its fsync, so it can be
    /// older than bookings already acknowledged. Every acknowledged write is in a confirmed
    /// leader's log (leader completeness) and a leader never truncates its own log, so its
    /// last log index, read once leadership is confirmed, covers them; waiting for it costs at
    /// most the commit of the writes in flight.
    pub async fn read_index_here(&self) -> Result<u64, ProposeOutcome> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => {
                let last = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
                Ok(log_id.map_or(0, |id| id.index).max(last))
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Err(ProposeOutcome::NotLeader(to.leader_id))
            }
            Err(e) => Err(ProposeOutcome::Unavailable(e.to_string())),
        }
    }

    async fn read_index_at(
        &self,
        leader: NodeId,
        deadline: Instant,
    ) -> Result<u64, ProposeOutcome> {
        let addr = self
            .peer_addr_of(leader)
            .ok_or_else(|| ProposeOutcome::Unavailable(format!("leader {leader} is unknown")))?;
        let mut client = self
            .peers
            .client(leader, &addr)
            .map_err(ProposeOutcome::Unavailable)?;
        match tokio::time::timeout_at(deadline, client.read_index(Empty {})).await {
            Ok(Ok(reply)) => Ok(reply.into_inner().index),
            // Not the leader: the one it knows of, if any, is named in the metadata.
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => Err(
                ProposeOutcome::NotLeader(crate::wire::leader(status.metadata())),
            ),
            Ok(Err(status)) => Err(ProposeOutcome::Unavailable(status.message().to_string())),
            Err(_) => Err(ProposeOutcome::Unavailable(format!(
                "leader {leader} did not answer in time"
            ))),
        }
    }

    /// Returns once this node's state reflects every write acknowledged before the call
    /// (read index: a round trip to the leader, which confirms it still leads, then waiting
    /// to apply up to its commit index). A stale read returns at once.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<u64, ApiError> {
        if consistency == Consistency::Stale {
            return Ok(self.sm.applied_index());
        }
        let deadline = Instant::now() + Duration::from_millis(limits::QUORUM_WAIT_MS);
        let mut hint = self.leader();
        let mut last_problem = String::from("no leader is known");
        loop {
            let index = match hint {
                Some(leader) if leader == self.id => self.read_index_here().await,
                Some(leader) => self.read_index_at(leader, deadline).await,
                None => Err(ProposeOutcome::NotLeader(None)),
            };
            match index {
                Ok(index) => {
                    if self.sm.wait_applied(index, deadline).await {
                        return Ok(self.sm.applied_index());
                    }
                    return Err(ApiError::Unavailable(
                        "this node is too far behind the leader to answer now; retry".into(),
                    ));
                }
                Err(ProposeOutcome::NotLeader(next)) if next.is_some() && next != hint => {
                    hint = next
                }
                Err(ProposeOutcome::NotLeader(_)) => hint = None,
                Err(ProposeOutcome::Unavailable(why)) => {
                    last_problem = why;
                    hint = None;
                }
                Err(ProposeOutcome::Done { .. }) => hint = None,
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Unavailable(format!(
                    "no quorum confirmed a read within {} s ({last_problem}); retry",
                    limits::QUORUM_WAIT_MS / 1000
                )));
            }
            if hint.is_none() {
                self.must_be_member()?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                hint = self.wait_for_leader(deadline).await;
            }
        }
    }

    /// The user a bearer token names, if its signature and expiry hold and it was not revoked:
    /// the user exists, is not disabled, and the token is of its current epoch. A node that
    /// has not yet applied the user (or its newer epoch) catches up once before it decides.
    pub async fn check_token(&self, token: &str) -> Result<String, ApiError> {
        let now = now_ms() / 1000;
        let ttl = self.config.security.token_ttl_secs;
        let claims = auth::verify_token(|v| self.keyring.secret(v), token, now, ttl)
            .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        match self.token_standing(&claims) {
            Standing::Good => return Ok(claims.user),
            Standing::Refused(why) => return Err(ApiError::Unauthenticated(why)),
            Standing::Behind => {}
        }
        self.read_barrier(Consistency::Linearizable).await?;
        match self.token_standing(&claims) {
            Standing::Good => Ok(claims.user),
            Standing::Refused(why) => Err(ApiError::Unauthenticated(why)),
            Standing::Behind => Err(ApiError::Unauthenticated(format!(
                "there is no user '{}'; log in again",
                claims.user
            ))),
        }
    }

    fn token_standing(&self, claims: &auth::Claims) -> Standing {
        let applied = self.sm.read();
        match applied.state.user(&claims.user) {
            None => Standing::Behind,
            Some(user) if user.disabled => {
                Standing::Refused("this user is disabled; ask an admin".into())
            }
            Some(user) if user.token_epoch == claims.epoch => Standing::Good,
            Some(user) if user.token_epoch < claims.epoch => Standing::Behind,
            Some(_) => Standing::Refused(
                "this token was revoked (logged out, or the password changed); log in again".into(),
            ),
        }
    }

    /// This node as it sees itself.
    pub fn local_state(&self) -> NodeState {
        let m = self.raft.metrics().borrow().clone();
        let membership = Membership::of(m.membership_config.membership());
        NodeState {
            voters: membership.voters.into_iter().collect(),
            learners: membership.learners.into_iter().collect(),
            joint: membership.joint,
            id: self.id,
            role: role_name(m.state).to_string(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |id| id.index),
            leader: m.current_leader.unwrap_or(0),
            has_state: !self.log.is_empty(),
            snapshot_index: m.snapshot.map_or(0, |id| id.index),
            addr: self
                .config
                .node(self.id)
                .map(|n| n.addr.to_string())
                .unwrap_or_default(),
        }
    }

    /// The state of every node cluster.toml lists or the membership holds; `None` for one
    /// that did not answer in time.
    pub async fn probe_all(&self) -> Vec<(NodeId, Option<NodeState>)> {
        let membership = self.membership();
        let mut ids: std::collections::BTreeSet<NodeId> =
            self.config.nodes.iter().map(|n| n.id).collect();
        ids.extend(membership.voters.iter().chain(&membership.learners));
        let probes = ids.into_iter().map(|id| self.probe(id));
        futures::future::join_all(probes).await
    }

    /// Node `id`'s state as it reports it; `None` if it did not answer in time.
    pub async fn probe(&self, id: NodeId) -> (NodeId, Option<NodeState>) {
        if id == self.id {
            return (id, Some(self.local_state()));
        }
        let Some(addr) = self.peer_addr_of(id) else {
            return (id, None);
        };
        let Ok(mut client) = self.peers.client(id, &addr) else {
            return (id, None);
        };
        let call = client.node_status(Empty {});
        let state = tokio::time::timeout(Duration::from_millis(limits::STATUS_PROBE_MS), call)
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|r| r.into_inner());
        (id, state)
    }
}

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
