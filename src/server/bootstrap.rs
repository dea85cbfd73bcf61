//! How a cluster comes to exist, and how a node tells the world what it sees.
//!
//! Every node starts with the same command. A node with an empty store asks its peers
//! whether any of them has state; if none does, it calls openraft's `initialize` with the
//! membership from cluster.toml. Several fresh nodes doing so at once is safe (they propose
//! the same membership at the same index). A node that finds a peer with state never
//! initializes: it waits to be caught up by the leader, so an existing cluster is never
//! re-initialized.
//!
//! Once a leader exists, it seeds the state machine once (the token-signing key, the demo
//! event); the command is idempotent, so leaders racing to seed do no harm.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, ServerState};

use super::node::{now_ms, role_name, Node};
use crate::domain::Command;

pub async fn initialize_if_new_cluster(node: &Node) {
    let peers_with_state: Vec<u64> = node
        .probe_all()
        .await
        .into_iter()
        .filter(|(id, state)| *id != node.id && state.as_ref().is_some_and(|s| s.has_state))
        .map(|(id, _)| id)
        .collect();
    if !peers_with_state.is_empty() {
        tracing::info!(
            ?peers_with_state,
            "joining an existing cluster; waiting for its leader"
        );
        return;
    }
    let members: BTreeMap<u64, BasicNode> = node
        .config
        .nodes
        .iter()
        .map(|n| (n.id, BasicNode::new(n.addr.to_string())))
        .collect();
    match node.raft.initialize(members).await {
        Ok(()) => tracing::info!("initialized a new cluster"),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::debug!("already initialized")
        }
        Err(e) => tracing::warn!(error = %e, "could not initialize the cluster"),
    }
}

pub async fn seed_when_leader(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    loop {
        if node.sm.read().state.token_key().is_some() {
            return;
        }
        let leading = {
            let m = metrics.borrow();
            m.state == ServerState::Leader
        };
        // Only after everything committed is applied does an unseeded state mean unseeded.
        if leading && node.raft.ensure_linearizable().await.is_ok() {
            if node.sm.read().state.token_key().is_some() {
                return;
            }
            let seed = Command::Bootstrap {
                token_key: rand::random(),
                now_ms: now_ms(),
            };
            match node.raft.client_write(vec![seed]).await {
                Ok(reply) => tracing::info!(outcome = ?reply.data, "seeded the cluster"),
                Err(e) => tracing::warn!(error = %e, "seeding failed; will retry"),
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Logs every change of role, term or leader, and why an election started.
pub async fn log_role_changes(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    let mut last = (ServerState::Learner, 0u64, None::<u64>);
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term, m.current_leader)
        };
        if now != last {
            let (state, term, leader) = now;
            if state == ServerState::Candidate && last.0 != ServerState::Candidate {
                match last.2 {
                    Some(old) => tracing::info!(
                        term,
                        old_leader = old,
                        "starting an election: no heartbeat from leader {old} within the election timeout"
                    ),
                    None => tracing::info!(term, "starting an election: no leader known within the election timeout"),
                }
            }
            if leader != last.2 {
                match leader {
                    Some(l) => tracing::info!(term, leader = l, "leader is node {l}"),
                    None => tracing::info!(term, "no leader"),
                }
            }
            if state != last.0 || term != last.1 {
                tracing::info!(term, role = role_name(state), "role");
            }
            last = now;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
