//! How a cluster comes to exist, and how a node tells the world what it sees.
//!
//! Every node starts with the same command. A node with an empty store asks its peers
//! whether any of them has state; if none does, it calls openraft's `initialize` with the
//! membership from cluster.toml. Several fresh nodes doing so at once is safe (they propose
//! the same membership at the same index). A node that finds a peer with state never
//! initializes: it waits to be caught up by the leader, so an existing cluster is never
//! re-initialized.
//!
//! Once a leader exists, it seeds the state machine once: the demo event, and the way to the
//! first admin. If the node was given the first admin's password (TICKET_ADMIN_PASSWORD, as a
//! local cluster's parent process does), the seed makes the admin "admin"; otherwise it holds
//! the hash of a one-time setup code, which this node prints to its log for the operator
//! (`ticket init --setup-code CODE`). The command is idempotent, so leaders racing to seed do
//! no harm. No key travels in it: token keys live in a file on each node.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::ServerState;
use tokio::time::Instant;

use super::node::{role_name, Node};
use crate::clock::now_ms;
use crate::domain::{auth, Command, FirstAdmin, Outcome};
use crate::limits;

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
    match node.raft.initialize(node.config.bootstrap_members()).await {
        Ok(()) => tracing::info!("initialized a new cluster"),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::debug!("already initialized")
        }
        Err(e) => tracing::warn!(error = %e, "could not initialize the cluster"),
    }
}

use crate::config::ADMIN_PASSWORD_ENV;

/// The way to the first admin this node would seed with, and the setup code to print if it
/// is the code's way.
fn first_admin_seed(node: &Node) -> (Option<FirstAdmin>, Option<String>) {
    if let Ok(password) = std::env::var(ADMIN_PASSWORD_ENV) {
        if crate::domain::validate::password(&password).is_ok() {
            let hash = auth::hash_password(&password, node.config.security.pbkdf2_iterations);
            return (Some(FirstAdmin::Password(hash)), None);
        }
        tracing::warn!("{ADMIN_PASSWORD_ENV} is not a valid password; using a setup code instead");
    }
    let code = auth::new_setup_code();
    (
        Some(FirstAdmin::SetupCode(auth::setup_code_hash(&code))),
        Some(code),
    )
}

pub async fn seed_when_leader(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    loop {
        if node.sm.read().state.is_bootstrapped() {
            return;
        }
        let leading = {
            let m = metrics.borrow();
            m.state == ServerState::Leader
        };
        // Only after everything committed is applied does an unseeded state mean unseeded.
        if leading && caught_up(&node).await {
            if node.sm.read().state.is_bootstrapped() {
                return;
            }
            // PBKDF2 takes a core for a moment: not on a runtime worker.
            let seeding = node.clone();
            let Ok((first_admin, code)) =
                tokio::task::spawn_blocking(move || first_admin_seed(&seeding)).await
            else {
                return;
            };
            let seed = Command::Bootstrap {
                now_ms: now_ms(),
                first_admin,
            };
            match node.raft.client_write(vec![seed]).await {
                Ok(reply) => {
                    tracing::info!(outcome = ?reply.data, "seeded the cluster");
                    let seeded_here = matches!(reply.data.first(), Some(Outcome::Bootstrapped));
                    if let (Some(code), true) = (code, seeded_here) {
                        // The operator's one way to the first admin: printed once, here.
                        tracing::warn!(
                            "no admin yet: make the first one with `ticket init` and this \
                             one-time setup code: {code}"
                        );
                        eprintln!("setup code: {code}");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "seeding failed; will retry"),
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Whether this node, as leader, has applied every write acknowledged so far.
async fn caught_up(node: &Node) -> bool {
    let deadline = Instant::now() + Duration::from_millis(limits::QUORUM_WAIT_MS);
    match node.read_index_here().await {
        Ok(index) => node.sm.wait_applied(index, deadline).await,
        Err(_) => false,
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
                if let Ok(mut since) = node.leading_since.lock() {
                    *since = (state == ServerState::Leader).then(std::time::Instant::now);
                }
                crate::log_context::set(term, role_name(state));
                tracing::info!(term, role = role_name(state), "role");
            }
            last = now;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
