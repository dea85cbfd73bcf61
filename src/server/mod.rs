//! The node daemon: opens the store, starts openraft, serves the client API (with gRPC
//! health and reflection) on its address and the peer API on a second one behind mutual TLS,
//! bootstraps a fresh cluster, and shuts down cleanly.
//!
//! Start-up order matters: the server listens before the node tries to bootstrap, so peers
//! starting at the same time can reach it; a fresh cluster is initialized only when no peer
//! reports having state.

pub mod api;
mod bootstrap;
mod incoming;
mod keyring;
pub mod node;
mod peer;
mod proposer;
mod throttle;
mod watchers;

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
pub use bootstrap::ADMIN_PASSWORD_ENV;
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
    if crate::pki::ensure_local(&config)? {
        tracing::info!(
            dir = %config.data_dir.join("pki").display(),
            "made this local cluster's CA and node certificates (files 0600)"
        );
    }
    let identity = crate::pki::Identity::load_peer(&config, id)?;
    let config_tls = match &config.tls {
        Some(tls) => {
            let (cert, key) = tls.node_files(id);
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read {} ([tls] of cluster.toml)", path.display())
                })
            };
            Some(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(
                        read(&cert)?,
                        read(&key)?,
                    ))
                    .timeout(Duration::from_secs(5)),
            )
        }
        None => None,
    };
    let keyring = keyring::Keyring::open(config.token_keys_path())?;
    let dir = config.node_data_dir(id);
    crate::pki::private_dir(&dir)?;
    let log = LogStore::open(consensus::open_db(&dir, "log.redb")?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sm = StateMachineStore::open(consensus::open_db(&dir, "snapshot.redb")?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fresh = log.is_empty();
    let peers = Arc::new(Peers::new(identity.clone()));
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
        keyring,
        throttle: throttle::Throttle::default(),
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
    // A stranger's request is small: the client API takes 64 KiB at most, so no one makes a
    // node buffer a snapshot-sized message before it has even checked a token. Replies may
    // be large (the seat map of the largest event).
    let booking = BookingServiceServer::new(api::Api::new(node.clone()))
        .max_decoding_message_size(limits::CLIENT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
    let peer = RaftServer::new(peer::PeerService::new(node.clone()))
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
    let peer_listener = TcpListener::bind(me.peer_listen).await.with_context(|| {
        format!(
            "cannot listen for peers on {}: is another node using it?",
            me.peer_listen
        )
    })?;
    let (stop_serving, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    };
    // The builder's tcp_nodelay applies only to listeners tonic binds itself: without it here,
    // Nagle's algorithm and delayed ACKs hold small replies back for up to 40 ms.
    let incoming = incoming::capped(TcpIncoming::from(listener).with_nodelay(Some(true)));
    let mut builder = Server::builder();
    match &config_tls {
        Some(tls) => builder = builder.tls_config(tls.clone()).context("client TLS")?,
        // Passwords and tokens cross this listener: plain text only where no one else sees.
        None if !me.listen.ip().is_loopback() => anyhow::bail!(
            "node {id} would serve clients in plain text on {}: name [tls] in {} \
             (`ticket cert issue --server NAME...`), or listen on a loopback address",
            me.listen,
            node.config.path.display()
        ),
        None => {}
    }
    let server = builder
        .tcp_nodelay(true)
        .max_concurrent_streams(Some(limits::CLIENT_STREAMS_PER_CONNECTION_MAX))
        // Past this many requests in progress on one connection, shed the next at once
        // (RESOURCE_EXHAUSTED) rather than queue it without bound.
        .concurrency_limit_per_connection(limits::CLIENT_REQUESTS_IN_PROGRESS_PER_CONNECTION_MAX)
        .load_shed(true)
        .timeout(Duration::from_millis(limits::CLIENT_REQUEST_MS_MAX))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(booking)
        .serve_with_incoming_shutdown(incoming, until_stopped(stopped.clone()));
    let peer_tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &identity.cert_pem,
            &identity.key_pem,
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(&identity.ca_pem))
        .timeout(Duration::from_secs(5));
    let peer_incoming = TcpIncoming::from(peer_listener).with_nodelay(Some(true));
    let peer_server = Server::builder()
        .tls_config(peer_tls)
        .context("peer TLS")?
        .tcp_nodelay(true)
        .add_service(peer)
        .serve_with_incoming_shutdown(peer_incoming, until_stopped(stopped));
    let server = tokio::spawn(async move {
        let (client, peer) = tokio::join!(server, peer_server);
        client.and(peer)
    });
    tracing::info!(
        addr = %me.addr, listen = %me.listen, peer_listen = %me.peer_listen,
        data = %dir.display(), fresh, "node serving"
    );

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
