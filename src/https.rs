//! HTTP with or without TLS for the page and `/ask`: one way to serve an axum router, over
//! TLS when `[web] cert`/`key` are set, in plain text only on a loopback address.
//!
//! A TLS handshake runs on a task of its own (bounded in time), so a client that stalls in
//! the handshake never holds up the accept loop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::limits;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(limits::TLS_HANDSHAKE_MAX_MS);

/// The TLS settings for the page and `/ask`: None for plain text, which is refused when
/// `listen` is not a loopback address.
pub fn server_config(
    config: &Config,
    listen: SocketAddr,
) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (&config.web.cert, &config.web.key) else {
        if listen.ip().is_loopback() {
            return Ok(None);
        }
        anyhow::bail!(
            "refusing to serve passwords and tokens in plain text on {listen}: set [web] cert \
             and key in {} (`ticket cert issue --server NAME...`), or listen on loopback",
            config.path.display()
        );
    };
    Ok(Some(Arc::new(load(cert, key)?)))
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the key {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `addr` and serves `router` there in the background (over TLS when `[web]` says so);
/// where it listens, or None after saying why (`what` names the service). Not fatal: the
/// shell works without the page or `/ask`.
pub async fn start(
    config: &Config,
    addr: SocketAddr,
    router: axum::Router,
    what: &str,
) -> Option<SocketAddr> {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("{what} could not listen on {addr}: {e}");
            return None;
        }
    };
    let tls = match server_config(config, addr) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{what}: {e:#}");
            return None;
        }
    };
    let bound = listener.local_addr().ok();
    tokio::spawn(serve(listener, tls, router));
    bound
}

/// Serves `router` on `listener` until the task is dropped, over TLS when `tls` is set.
pub async fn serve(listener: TcpListener, tls: Option<Arc<ServerConfig>>, router: axum::Router) {
    let served = match tls {
        None => axum::serve(listener, router).await,
        Some(tls) => axum::serve(TlsListener::new(listener, tls), router).await,
    };
    if let Err(e) = served {
        tracing::warn!(error = %e, "an HTTP server stopped");
    }
}

/// Accepted connections that finished their TLS handshake.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl TlsListener {
    fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> TlsListener {
        let local = tcp.local_addr();
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors, a reset before accept: try again shortly.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
