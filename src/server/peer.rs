//! Inbound peer traffic: openraft's RPCs and the application's own peer calls.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::node::{Node, Proposed};
use crate::consensus::decode;
use crate::consensus::network::Reply;
use crate::domain::Command;
use crate::pb::raft::v1::raft_server::Raft;
use crate::pb::raft::v1::{Blob, Empty, NodeState, ReadIndexReply};

pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    pub fn new(node: Arc<Node>) -> PeerService {
        PeerService { node }
    }
}

fn undecodable(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable peer message: {e}"))
}

#[tonic::async_trait]
impl Raft for PeerService {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc = decode(&request.into_inner().data).map_err(undecodable)?;
        Reply::from_result(self.node.raft.append_entries(rpc).await).map(Response::new)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc = decode(&request.into_inner().data).map_err(undecodable)?;
        Reply::from_result(self.node.raft.install_snapshot(rpc).await).map(Response::new)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc = decode(&request.into_inner().data).map_err(undecodable)?;
        Reply::from_result(self.node.raft.vote(rpc).await).map(Response::new)
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let command: Command = decode(&request.into_inner().data).map_err(undecodable)?;
        let proposed = self.node.propose_here(command).await;
        let data =
            crate::consensus::encode(&proposed).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(Blob { data }))
    }

    async fn read_index(&self, _: Request<Empty>) -> Result<Response<ReadIndexReply>, Status> {
        match self.node.read_index_here().await {
            Ok(index) => Ok(Response::new(ReadIndexReply { index })),
            // FAILED_PRECONDITION with the leader's id (or nothing) as the message.
            Err(Proposed::NotLeader(leader)) => Err(Status::failed_precondition(
                leader.map(|l| l.to_string()).unwrap_or_default(),
            )),
            Err(Proposed::Unavailable(why)) => Err(Status::unavailable(why)),
            Err(Proposed::Done { .. }) => Err(Status::internal("unexpected read index reply")),
        }
    }

    async fn node_status(&self, _: Request<Empty>) -> Result<Response<NodeState>, Status> {
        Ok(Response::new(self.node.local_state()))
    }
}
