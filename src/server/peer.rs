//! Inbound peer traffic: openraft's RPCs and the application's own peer calls.
//!
//! Served only on the peer listener, behind mutual TLS with the cluster's CA. Every call is
//! checked again here: the caller's certificate must name a node of this cluster, and a
//! Raft message must speak for that node (a vote asked for, or a leader's append or
//! snapshot, by the node the certificate names). A forwarded command's actor was checked by
//! the forwarding node against the token it was given; peers are trusted to do that, and
//! only peers reach this service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::node::Node;
use super::proposer::ProposeOutcome;
use crate::consensus::network::PeerResult;
use crate::consensus::NodeId;
use crate::consensus::{decode, TypeConfig};
use crate::domain::Command;
use crate::pb::raft::v1::raft_server::Raft;
use crate::pb::raft::v1::{Blob, Empty, NodeState, ReadIndexReply};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    pub fn new(node: Arc<Node>) -> PeerService {
        PeerService { node }
    }
}

/// A read index refused because this node does not lead: FAILED_PRECONDITION, with the
/// leader's id (when known) in the metadata (`wire::LEADER_HEADER`) for the asking node, and
/// a message for people.
fn not_leader(leader: Option<NodeId>) -> Status {
    let mut status = Status::failed_precondition(match leader {
        Some(leader) => format!("this node is not the leader; node {leader} is"),
        None => "this node is not the leader, and no leader is known".to_string(),
    });
    if let Some(leader) = leader {
        crate::wire::set_leader(status.metadata_mut(), leader);
    }
    status
}

fn undecodable(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable peer message: {e}"))
}

impl PeerService {
    /// The node the caller's certificate was issued for, if it belongs to this cluster (in
    /// cluster.toml or in the current membership).
    fn caller<T>(&self, request: &Request<T>) -> Result<NodeId, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated("peer calls need a certificate from the cluster's CA")
        })?;
        let id = certs
            .first()
            .and_then(|cert| crate::pki::node_id_of(cert))
            .ok_or_else(|| Status::permission_denied("the peer certificate names no node"))?;
        let in_config = self.node.config.node(id).is_some();
        let in_membership = self
            .node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .any(|(member, _)| *member == id);
        if !(in_config || in_membership) {
            tracing::warn!(
                peer = id,
                "refused a peer call: not a member of this cluster"
            );
            return Err(Status::permission_denied(format!(
                "node {id} is not a member of this cluster"
            )));
        }
        Ok(id)
    }

    /// Refuses a Raft message that speaks for a node other than the caller.
    fn speaks_for(caller: NodeId, claimed: Option<NodeId>, what: &str) -> Result<(), Status> {
        if claimed == Some(caller) {
            return Ok(());
        }
        tracing::warn!(
            peer = caller,
            ?claimed,
            what,
            "refused a peer message that speaks for another node"
        );
        Err(Status::permission_denied(format!(
            "node {caller} sent {what} on behalf of {}",
            claimed.map_or("nobody".to_string(), |c| format!("node {c}"))
        )))
    }
}

#[tonic::async_trait]
impl Raft for PeerService {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let caller = self.caller(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&request.into_inner().data).map_err(undecodable)?;
        Self::speaks_for(caller, rpc.vote.leader_id().voted_for(), "entries")?;
        PeerResult::from_result(self.node.raft.append_entries(rpc).await).map(Response::new)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let caller = self.caller(&request)?;
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&request.into_inner().data).map_err(undecodable)?;
        Self::speaks_for(caller, rpc.vote.leader_id().voted_for(), "a snapshot")?;
        PeerResult::from_result(self.node.raft.install_snapshot(rpc).await).map(Response::new)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let caller = self.caller(&request)?;
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().data).map_err(undecodable)?;
        Self::speaks_for(caller, rpc.vote.leader_id().voted_for(), "a vote request")?;
        PeerResult::from_result(self.node.raft.vote(rpc).await).map(Response::new)
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.caller(&request)?;
        let command: Command = decode(&request.into_inner().data).map_err(undecodable)?;
        let proposed = self.node.propose_here(command).await;
        let data =
            crate::consensus::encode(&proposed).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(Blob { data }))
    }

    async fn read_index(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        self.caller(&request)?;
        match self.node.read_index_here().await {
            Ok(index) => Ok(Response::new(ReadIndexReply { index })),
            Err(ProposeOutcome::NotLeader(leader)) => Err(not_leader(leader)),
            Err(ProposeOutcome::Unavailable(why)) => Err(Status::unavailable(why)),
            Err(ProposeOutcome::Done { .. }) => {
                Err(Status::internal("unexpected read index reply"))
            }
        }
    }

    async fn node_status(&self, request: Request<Empty>) -> Result<Response<NodeState>, Status> {
        self.caller(&request)?;
        Ok(Response::new(self.node.local_state()))
    }

    async fn change_membership(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.caller(&request)?;
        super::membership::serve_forwarded(&self.node, &request.into_inner().data)
            .await
            .map(Response::new)
    }

    async fn campaign(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        let caller = self.caller(&request)?;
        super::handover::serve_campaign(&self.node, caller).await?;
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_read_index_names_the_leader_in_metadata() {
        let status = not_leader(Some(3));
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(crate::wire::leader(status.metadata()), Some(3));
        assert!(status.message().contains("node 3"), "{}", status.message());
        let status = not_leader(None);
        assert_eq!(crate::wire::leader(status.metadata()), None);
        assert!(!status.message().is_empty());
    }
}
