//! A TCP proxy for one direction of one peer link (node A dialing node B), with the faults a
//! network has: cut (new connections are refused, live ones dropped), delay per chunk, and
//! loss (a connection reset now and then: over TCP, loss shows as stalls and resets).
//! Everything runs on loopback and stops with the test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
pub struct Faults {
    cut: AtomicBool,
    delay_ms: AtomicU64,
    /// Chance, in thousandths, that a chunk resets its connection.
    loss_per_mille: AtomicU64,
}

pub struct Link {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    /// Bumped on every cut: live connections end when it changes.
    epoch: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let faults = Arc::new(Faults::default());
        let (epoch, _) = watch::channel(0);
        let task = tokio::spawn(accept(listener, upstream, faults.clone(), epoch.clone()));
        Link {
            addr,
            faults,
            epoch,
            task,
        }
    }

    pub fn cut(&self) {
        self.faults.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn slow(&self, delay_ms: u64, loss_per_mille: u64) {
        self.faults.delay_ms.store(delay_ms, Ordering::SeqCst);
        self.faults
            .loss_per_mille
            .store(loss_per_mille, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.faults.cut.store(false, Ordering::SeqCst);
        self.slow(0, 0);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        self.epoch.send_modify(|e| *e += 1);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: Arc<Faults>,
    epoch: watch::Sender<u64>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        if faults.cut.load(Ordering::SeqCst) {
            continue; // dropped: the dialer sees the connection close
        }
        let faults = faults.clone();
        let ended = epoch.subscribe();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let mut ended_too = ended.clone();
            tokio::select! {
                _ = pump(in_read, out_write, &faults) => {}
                _ = pump(out_read, in_write, &faults) => {}
                _ = ended_too.changed() => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: &Faults,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            let jitter = rand::rng().random_range(0..=delay / 2);
            tokio::time::sleep(Duration::from_millis(delay + jitter)).await;
        }
        let loss = faults.loss_per_mille.load(Ordering::Relaxed);
        if loss > 0 && rand::rng().random_range(0..1000) < loss {
            return; // the connection resets
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
