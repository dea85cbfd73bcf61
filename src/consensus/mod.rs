//! openraft wiring: the type configuration, the on-disk log and vote, the state machine with
//! its snapshots, and the peer network.
//!
//! Storage is one redb database per node (`<data_dir>/node<ID>/ticket.redb`). Every value
//! stored carries a CRC32 of its bytes, checked when read: a flipped byte stops the node with
//! an error rather than letting it serve corrupt state.

mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use crate::domain::{Command, Outcome};

openraft::declare_raft_types!(
    /// The types this application runs openraft with.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

pub use codec::{decode, encode};
pub use log_store::LogStore;
pub use state_machine::StateMachineStore;

/// Opens (or creates) a node's database, refusing clearly when another process has it.
pub fn open_db(dir: &std::path::Path) -> anyhow::Result<std::sync::Arc<redb::Database>> {
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display())
    })?;
    let path = dir.join("ticket.redb");
    match redb::Database::create(&path) {
        Ok(db) => Ok(std::sync::Arc::new(db)),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(anyhow::anyhow!(
            "{} is in use by another process: is this node already running?",
            path.display()
        )),
        Err(e) => Err(anyhow::anyhow!("cannot open {}: {e}", path.display())),
    }
}
