//! A node's two listeners: the client API (booking, health, reflection; TLS when `[tls]`
//! says so, plain text only on loopback; small messages, capped connections and requests),
//! and the peer protocol (mutual TLS with the cluster's CA, nothing else).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::{api, incoming, peer, Node};
use crate::config::Config;
use crate::consensus::NodeId;
use crate::limits;
use crate::pb::booking::v1::booking_service_server::BookingServiceServer;
use crate::pb::raft::v1::raft_server::RaftServer;

/// How long a client or peer may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(limits::TLS_HANDSHAKE_MAX_MS);

type Serving = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// The client API's TLS for node `id`, from `[tls]`; None (plain text) only on loopback.
pub fn client_tls(
    config: &Config,
    id: NodeId,
    listen: SocketAddr,
) -> anyhow::Result<Option<ServerTlsConfig>> {
    let Some(tls) = &config.tls else {
        // Passwords and tokens cross this listener: plain text only where no one else sees.
        if !listen.ip().is_loopback() {
            anyhow::bail!(
                "node {id} would serve clients in plain text on {listen}: name [tls] in {} \
                 (`ticket cert issue --server NAME...`), or listen on a loopback address",
                config.path.display()
            );
        }
        return Ok(None);
    };
    let (cert, key) = tls.node_files(id);
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} ([tls] of cluster.toml)", path.display()))
    };
    let identity = Identity::from_pem(read(&cert)?, read(&key)?);
    Ok(Some(
        ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT),
    ))
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|&stop| stop).await;
}

/// The client API on `listener` until `stopped` turns true.
pub async fn serve_clients(
    node: Arc<Node>,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Serving> {
    let (health, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(super::ops::follow_health::<BookingServiceServer<api::Api>>(
        node.clone(),
        health,
        stopped.clone(),
    ));
    // Both versions of reflection: grpcurl and grpcui speak v1, but Python's
    // grpcio-reflection, evans and older grpcurl builds ask v1alpha only.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building the reflection service (v1)")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building the reflection service (v1alpha)")?;
    // A stranger's request is small: the client API takes 64 KiB at most, so no one makes a
    // node buffer a snapshot-sized message before it has even checked a token. Replies may
    // be large (the seat map of the largest event).
    let booking = BookingServiceServer::new(api::Api::new(node))
        .max_decoding_message_size(limits::CLIENT_MESSAGE_MAX_BYTES)
        .max_encoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES);
    // The builder's tcp_nodelay applies only to listeners tonic binds itself: without it here,
    // Nagle's algorithm and delayed ACKs hold small replies back for up to 40 ms.
    let incoming = incoming::capped(TcpIncoming::from(listener).with_nodelay(Some(true)));
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("client TLS")?;
    }
    let serving = builder
        .tcp_nodelay(true)
        .max_concurrent_streams(Some(limits::CLIENT_STREAMS_PER_CONNECTION_MAX))
        // Past this many requests in progress on one connection, shed the next at once
        // (RESOURCE_EXHAUSTED) rather than queue it without bound.
        .concurrency_limit_per_connection(limits::CLIENT_REQUESTS_IN_PROGRESS_PER_CONNECTION_MAX)
        .load_shed(true)
        .timeout(Duration::from_millis(limits::CLIENT_REQUEST_MAX_MS))
        .layer(super::ops::RpcTimer::for_client_api())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(booking)
        .serve_with_incoming_shutdown(incoming, until_stopped(stopped));
    Ok(Box::pin(serving))
}

/// The peer protocol on `listener`, behind mutual TLS with the cluster's CA, until `stopped`.
pub fn serve_peers(
    node: Arc<Node>,
    listener: TcpListener,
    identity: &crate::pki::Identity,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Serving> {
    let peer = RaftServer::new(peer::PeerService::new(node))
        .max_decoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES)
        .max_encoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES);
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .client_ca_root(Certificate::from_pem(&identity.ca_pem))
        .timeout(HANDSHAKE_TIMEOUT);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serving = Server::builder()
        .tls_config(tls)
        .context("peer TLS")?
        .tcp_nodelay(true)
        .add_service(peer)
        .serve_with_incoming_shutdown(incoming, until_stopped(stopped));
    Ok(Box::pin(serving))
}
