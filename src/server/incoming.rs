//! The client listener's connections, capped per client address: one address may hold at
//! most [`limits::CLIENT_CONNECTIONS_PER_ADDRESS_MAX`] connections at once; one more is
//! closed as soon as it is accepted, before any byte of it is read.
//!
//! What it does not do: tell apart the clients behind one address (a NAT or a proxy shares
//! the cap), or limit the peer listener (only the cluster's certificates get through there).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::limits;

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// An accepted connection that gives its address's place back when it closes.
pub struct Counted {
    stream: TcpStream,
    address: IpAddr,
    counts: Counts,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// `incoming` with connections past the per-address cap closed at once.
pub fn capped<S>(incoming: S) -> impl Stream<Item = std::io::Result<Counted>>
where
    S: Stream<Item = std::io::Result<TcpStream>>,
{
    let counts = Counts::default();
    incoming.filter_map(move |accepted| {
        let counts = counts.clone();
        async move {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => return Some(Err(e)),
            };
            let address = match stream.peer_addr() {
                Ok(peer) => peer.ip(),
                // Gone already.
                Err(_) => return None,
            };
            {
                let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                let held = counts.entry(address).or_insert(0);
                if *held >= limits::CLIENT_CONNECTIONS_PER_ADDRESS_MAX {
                    tracing::debug!(%address, "refused a connection: too many from this address");
                    return None;
                }
                *held += 1;
            }
            Some(Ok(Counted {
                stream,
                address,
                counts,
            }))
        }
    })
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
