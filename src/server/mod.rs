//! The node daemon: opens the store, starts openraft, serves the client API (with gRPC
//! health and reflection) on its address and the peer API on a second one behind mutual TLS,
//! bootstraps a fresh cluster, and shuts down cleanly.
//!
//! Start-up order matters: the server listens before the node tries to bootstrap, so peers
//! starting at the same time can reach it; a fresh cluster is initialized only when no peer
//! reports having state.

pub mod api;
mod bootstrap;
mod compaction;
mod handover;
mod incoming;
mod keyring;
mod listeners;
mod membership;
pub mod node;
pub mod ops;
mod peer;
mod proposer;
mod sweeper;
mod throttle;
mod watchers;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::ServerTlsConfig;

use crate::config::{Config, NodeConfig};
use crate::consensus::network::{Network, Peers};
use crate::consensus::{self, LogStore, NodeId, Raft, StateMachineStore};
use crate::limits;
pub use node::Node;

/// How long shutdown may take before in-flight work is abandoned (it is either committed and
/// fsynced already, or was never acknowledged).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn raft_config(config: &Config, id: NodeId) -> anyhow::Result<openraft::Config> {
    let raft = &config.raft;
    let c = openraft::Config {
        cluster_name: "ticket".into(),
        heartbeat_interval: raft.heartbeat_interval_ms,
        election_timeout_min: raft.election_timeout_min_ms,
        election_timeout_max: raft.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(staggered(
            raft.snapshot_threshold,
            id,
        )),
        max_in_snapshot_log_to_keep: raft.keep_after_snapshot,
        max_payload_entries: limits::APPEND_ENTRIES_MAX,
        snapshot_max_chunk_size: limits::SNAPSHOT_CHUNK_BYTES,
        // A snapshot can be large; give its transfer time before the leader gives up.
        install_snapshot_timeout: 10_000,
        ..Default::default()
    };
    Ok(c.validate()?)
}

/// `threshold` moved on by a tenth for each node id after the first (20,000 entries: 20,000,
/// 22,000, 24,000 ...), so that the nodes snapshot at different times. A snapshot stops
/// apply while the state is encoded and competes with the log's fsyncs while it is written;
/// all nodes at once stalled every commit for about a second (41 MB, 2 cores), while one
/// node at a time leaves a quorum of the others committing whenever it is a follower.
fn staggered(threshold: u64, id: NodeId) -> u64 {
    let step = (threshold / 10).max(1);
    threshold.saturating_add(step.saturating_mul(id.saturating_sub(1) % 10))
}

/// Runs node `id` of `config` until `shutdown` resolves. A node told to `join` (or marked
/// `bootstrap = false`) never initializes a cluster: it waits, empty, to be added.
pub async fn run(
    config: Config,
    id: NodeId,
    join: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // First, so that nothing recorded at start-up is lost.
    let metrics = ops::install()?;
    let me = this_node(&config, id)?;
    make_local_pki(&config, id)?;
    let identity = crate::pki::Identity::load_peer(&config, id)?;
    let client_tls = listeners::client_tls(&config, id, me.listen)?;
    let keyring = keyring::Keyring::open(config.token_keys_path())?;
    let dir = config.node_data_dir(id);
    crate::pki::private_dir(&dir)?;
    let (log, sm) = open_stores(&dir)?;
    let fresh = log.is_empty();
    let node = start_node(config, id, &identity, keyring, log, sm).await?;

    let (client_listener, peer_listener) = bind(&me).await?;
    let (stop_serving, stopped) = tokio::sync::watch::channel(false);
    if let Some(addr) = me.metrics_listen {
        let listener = ops::bind(id, addr).await?;
        let (node, stopped) = (node.clone(), stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = ops::serve(node, metrics, listener, stopped).await {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
        tracing::info!(metrics = %addr, "serving /metrics, /healthz and /readyz");
    }
    let server = serve(
        &node,
        client_listener,
        client_tls,
        peer_listener,
        &identity,
        stopped,
    )
    .await?;
    tracing::info!(
        addr = %me.addr, listen = %me.listen, peer_listen = %me.peer_listen,
        data = %dir.display(), fresh, "node serving"
    );

    if fresh && (join || !me.bootstrap) {
        tracing::info!("joining: waiting for a leader to add this node (ticket cluster add {id})");
    } else if fresh {
        bootstrap::initialize_if_new_cluster(&node).await;
    }
    tokio::spawn(bootstrap::seed_when_leader(node.clone()));
    tokio::spawn(bootstrap::log_role_changes(node.clone()));
    tokio::spawn(sweeper::sweep_when_due(node.clone()));
    tokio::spawn(compaction::snapshot_by_size(node.clone()));

    let failure = serve_until_stopped(&node, shutdown).await;
    stop(&node, stop_serving, server).await;
    match failure {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!(
            "node {id} stopped: {why}; nothing unpersisted was acknowledged. \
             Fix the cause (free disk space, check the disk) and start it again"
        )),
    }
}

/// Node `id`'s entry in `config`.
fn this_node(config: &Config, id: NodeId) -> anyhow::Result<NodeConfig> {
    Ok(config
        .node(id)
        .with_context(|| format!("{} has no node with id {id}", config.path.display()))?
        .clone())
}

/// Makes the CA and node certificates of a local cluster that has none yet.
fn make_local_pki(config: &Config, id: NodeId) -> anyhow::Result<()> {
    if crate::pki::ensure_local(config, id)? {
        tracing::info!(
            dir = %config.data_dir.join("pki").display(),
            "made this local cluster's CA and node certificates (files 0600)"
        );
    }
    Ok(())
}

/// The node's Raft log and state machine, kept in `dir`.
fn open_stores(dir: &Path) -> anyhow::Result<(LogStore, StateMachineStore)> {
    let log = LogStore::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sm = StateMachineStore::open(consensus::open_db(dir, "snapshot.redb")?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((log, sm))
}

/// Starts openraft over the stores, and the node around it.
async fn start_node(
    config: Config,
    id: NodeId,
    identity: &crate::pki::Identity,
    keyring: keyring::Keyring,
    log: LogStore,
    sm: StateMachineStore,
) -> anyhow::Result<Arc<Node>> {
    let peers = Arc::new(Peers::new(identity.clone()));
    let raft = Raft::new(
        id,
        Arc::new(raft_config(&config, id)?),
        Network::new(peers.clone(), config.peer_addrs()),
        log.clone(),
        sm.clone(),
    )
    .await
    .context("starting raft")?;
    let proposer = proposer::Proposer::start(raft.clone());
    Ok(Arc::new(Node {
        id,
        config,
        raft,
        proposer,
        keyring,
        throttle: throttle::Throttle::default(),
        sm,
        log,
        peers,
        stopping: tokio::sync::watch::Sender::new(false),
        membership_lock: tokio::sync::Mutex::default(),
        leading_since: std::sync::Mutex::default(),
    }))
}

/// Binds the client API's address and the peers' address.
async fn bind(me: &NodeConfig) -> anyhow::Result<(TcpListener, TcpListener)> {
    let listener = TcpListener::bind(me.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is another node using it?", me.listen))?;
    let peer_listener = TcpListener::bind(me.peer_listen).await.with_context(|| {
        format!(
            "cannot listen for peers on {}: is another node using it?",
            me.peer_listen
        )
    })?;
    Ok((listener, peer_listener))
}

/// Serves the client API and the peer protocol until `stopped` turns true; the task ends when
/// both have stopped.
async fn serve(
    node: &Arc<Node>,
    client_listener: TcpListener,
    client_tls: Option<ServerTlsConfig>,
    peer_listener: TcpListener,
    identity: &crate::pki::Identity,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<Result<(), tonic::transport::Error>>> {
    let server =
        listeners::serve_clients(node.clone(), client_listener, client_tls, stopped.clone())
            .await?;
    let peer_server = listeners::serve_peers(node.clone(), peer_listener, identity, stopped)?;
    Ok(tokio::spawn(async move {
        let (client, peer) = tokio::join!(server, peer_server);
        client.and(peer)
    }))
}

/// Waits for `shutdown`, or for openraft to stop on a fatal error, whose reason it returns.
async fn serve_until_stopped(node: &Node, shutdown: impl Future<Output = ()>) -> Option<String> {
    // A storage failure (a full disk, a failed fsync) stops openraft for good: exit with the
    // reason, so that a supervisor restarts the node once the disk is fixed, rather than
    // leave a process that answers every request with UNAVAILABLE.
    let failure = tokio::select! {
        _ = shutdown => None,
        why = fatal(node.raft.clone()) => Some(why),
    };
    match &failure {
        None => tracing::info!("shutting down: no new requests; finishing those in flight"),
        Some(why) => tracing::error!(error = %why, "raft stopped on a fatal error; shutting down"),
    }
    failure
}

/// Stops taking requests, gives those in flight the grace period, then stops openraft.
async fn stop(
    node: &Node,
    stop_serving: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
) {
    node.stopping.send_replace(true);
    let _ = stop_serving.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("requests still in flight after the grace period; dropping them"),
    }
    if tokio::time::timeout(Duration::from_secs(1), node.raft.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("raft did not stop in time");
    }
    tracing::info!("stopped");
}

/// Resolves with the reason once openraft stops on a fatal error.
async fn fatal(raft: Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(e) = &metrics.borrow_and_update().running_state {
            return e.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft stopped".into();
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::staggered;

    #[test]
    fn nodes_snapshot_at_different_points() {
        assert_eq!(
            [1, 2, 3].map(|id| staggered(20_000, id)),
            [20_000, 22_000, 24_000]
        );
        // Tiny thresholds (the tests') still differ; ids past ten wrap; nothing overflows.
        assert_eq!([1, 2].map(|id| staggered(5, id)), [5, 6]);
        assert_eq!(staggered(100, 11), 100);
        assert_eq!(staggered(u64::MAX, 3), u64::MAX);
    }
}
