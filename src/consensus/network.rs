//! Outbound peer traffic: openraft's RPCs, and the application's own peer calls (forwarding
//! a write to the leader, asking it for a read index, asking a node for its status).
//!
//! One lazily connected tonic channel per peer, kept for the life of the node and shared by
//! every caller (HTTP/2 multiplexes them): never a new connection per RPC. Every channel is
//! mutual TLS: this node shows its own certificate, and accepts the peer only if the cluster's
//! CA signed it for the node id it dials (`pki::node_name`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::{decode, encode, NodeId, TypeConfig};
use crate::limits;
use crate::pb::raft::v1::raft_client::RaftClient;
use crate::pb::raft::v1::Blob;

/// What a peer RPC answers: the value, or openraft's error as JSON. Errors are rare and their
/// types lean on serde features a compact binary format cannot carry; the hot path stays binary.
#[derive(Serialize, Deserialize)]
pub enum PeerResult<T> {
    Ok(T),
    Err(String),
}

impl<T: Serialize> PeerResult<T> {
    pub fn from_result<E: Serialize>(result: Result<T, E>) -> Result<Blob, tonic::Status> {
        let reply = match result {
            Ok(value) => PeerResult::Ok(value),
            Err(e) => PeerResult::Err(
                serde_json::to_string(&e).map_err(|e| tonic::Status::internal(e.to_string()))?,
            ),
        };
        let data = encode(&reply).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(Blob { data })
    }
}

/// The channels to every peer, by node id.
pub struct Peers {
    channels: Mutex<BTreeMap<NodeId, (String, Channel)>>,
    identity: crate::pki::Identity,
}

impl Peers {
    /// Peers dialed with this node's certificate, trusting only the cluster's CA.
    pub fn new(identity: crate::pki::Identity) -> Peers {
        Peers {
            channels: Mutex::default(),
            identity,
        }
    }

    /// The client for a peer at `addr` (IP:PORT), connecting lazily on first use.
    pub fn client(&self, id: NodeId, addr: &str) -> Result<RaftClient<Channel>, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, channel)) = channels.get(&id) {
            if known == addr {
                return Ok(client(channel.clone()));
            }
        }
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.identity.ca_pem))
            .identity(Identity::from_pem(
                &self.identity.cert_pem,
                &self.identity.key_pem,
            ))
            .domain_name(crate::pki::node_name(id));
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("bad peer address {addr}: {e}"))?
            .tls_config(tls)
            .map_err(|e| format!("peer TLS for {addr}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(id, (addr.to_string(), channel.clone()));
        Ok(client(channel))
    }
}

fn client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel)
        .max_decoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES)
        .max_encoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES)
}

/// openraft's view of the network.
pub struct Network {
    peers: std::sync::Arc<Peers>,
    /// Where this node dials each peer, from its own cluster.toml. The addresses stored in
    /// the membership are what the first node saw at bootstrap; the local file wins, so a
    /// node can reach a peer through a proxy or a new address without a membership change.
    addrs: BTreeMap<NodeId, String>,
}

impl Network {
    pub fn new(peers: std::sync::Arc<Peers>, addrs: BTreeMap<NodeId, String>) -> Network {
        Network { peers, addrs }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            target,
            client: self
                .peers
                .client(target, self.addrs.get(&target).unwrap_or(&node.addr)),
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let network = |e: &dyn std::fmt::Display| {
            RPCError::Network(NetworkError::new(&AnyError::error(e.to_string())))
        };
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error(e)))),
        };
        let data = encode(request).map_err(|e| network(&e))?;
        let mut request = tonic::Request::new(Blob { data });
        request.set_timeout(option.hard_ttl());
        let mut client = client;
        let reply = match method {
            Method::Append => {
                let started = std::time::Instant::now();
                let reply = client.append_entries(request).await;
                metrics::histogram!("ticket_raft_append_entries_seconds")
                    .record(started.elapsed().as_secs_f64());
                reply
            }
            Method::Snapshot => client.install_snapshot(request).await,
            Method::Vote => client.vote(request).await,
        };
        let reply = match reply {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error(
                    status.message(),
                ))))
            }
            Err(status) => return Err(network(&status)),
        };
        match decode::<PeerResult<Resp>>(&reply.data).map_err(|e| network(&e))? {
            PeerResult::Ok(value) => Ok(value),
            PeerResult::Err(json) => {
                let e: RaftError<NodeId, E> =
                    serde_json::from_str(&json).map_err(|e| network(&e))?;
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
        }
    }
}

enum Method {
    Append,
    Snapshot,
    Vote,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
