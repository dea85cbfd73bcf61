//! The node daemon: opens the store, starts openraft, serves the client API, the peer API,
//! gRPC health and reflection on one address, bootstraps a fresh cluster, and shuts down
//! cleanly.
//!
//! Start-up order matters: the server listens before the node tries to bootstrap, so peers
//! starting at the same time can reach it; a fresh cluster is initialized only when no peer
//! reports having state.

pub mod api;
mod bootstrap;
pub mod node;
mod peer;
mod proposer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::config::Config;
use crate::consensus::network::{Network, Peers};
use crate::consensus::{self, LogStore, NodeId, Raft, StateMachineStore};
use crate::limits;
use crate::pb::booking::v1::booking_service_server::BookingServiceServer;
use crate::pb::raft::v1::raft_server::RaftServer;
pub use node::Node;

/// How long shutdown may take before in-flight work is abandoned (it is either committed and
/// fsynced already, or was never acknowledged).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn raft_config(config: &Config) -> anyhow::Result<openraft::Config> {
    let raft = &config.raft;
    let c = openraft::Config {
        cluster_name: "ticket".into(),
        heartbeat_interval: raft.heartbeat_interval_ms,
        election_timeout_min: raft.election_timeout_min_ms,
        election_timeout_max: raft.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(raft.snapshot_threshold),
        max_in_snapshot_log_to_keep: raft.keep_after_snapshot,
        max_payload_entries: limits::APPEND_ENTRIES_MAX,
        snapshot_max_chunk_size: limits::SNAPSHOT_CHUNK_BYTES,
        // A snapshot can be large; give its transfer time before the leader gives up.
        install_snapshot_timeout: 10_000,
        ..Default::default()
    };
    Ok(c.validate()?)
}

/// Runs node `id` of `config` until `shutdown` resolves.
pub async fn run(
    config: Config,
    id: NodeId,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let me = config
        .node(id)
        .with_context(|| format!("{} has no node with id {id}", config.path.display()))?
        .clone();
    let dir = config.node_data_dir(id);
    let log = LogStore::open(consensus::open_db(&dir, "log.redb")?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sm = StateMachineStore::open(consensus::open_db(&dir, "snapshot.redb")?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fresh = log.is_empty();
    let peers = Arc::new(Peers::new());
    let raft = Raft::new(
        id,
        Arc::new(raft_config(&config)?),
        Network::new(peers.clone(), config.peer_addrs()),
        log.clone(),
        sm.clone(),
    )
    .await
    .context("starting raft")?;
    let proposer = proposer::Proposer::start(raft.clone());
    let node = Arc::new(Node {
        id,
        config,
        raft,
        proposer,
        sm,
        log,
        peers,
        stopping: tokio::sync::watch::Sender::new(false),
    });

    let listener = TcpListener::bind(me.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is another node using it?", me.listen))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BookingServiceServer<api::Api>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let booking = BookingServiceServer::new(api::Api::new(node.clone()))
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
    let peer = RaftServer::new(peer::PeerService::new(node.clone()))
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    // The builder's tcp_nodelay applies only to listeners tonic binds itself: without it here,
    // Nagle's algorithm and delayed ACKs hold small replies back for up to 40 ms.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(booking)
        .add_service(peer)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    let server = tokio::spawn(server);
    tracing::info!(addr = %me.addr, listen = %me.listen, data = %dir.display(), fresh, "node serving");

    if fresh {
        bootstrap::initialize_if_new_cluster(&node).await;
    }
    tokio::spawn(bootstrap::seed_when_leader(node.clone()));
    tokio::spawn(bootstrap::log_role_changes(node.clone()));

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
    node.stopping.send_replace(true);
    let _ = stop_serving.send(());
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
    match failure {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!(
            "node {id} stopped: {why}; nothing unpersisted was acknowledged. \
             Fix the cause (free disk space, check the disk) and start it again"
        )),
    }
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
