//! openraft wiring: the type configuration, the on-disk log and vote, the state machine with
//! its snapshots, and the peer network.
//!
//! Storage is two parts per node, in `<data_dir>/node<ID>/`: `wal/` (the log, the vote and the
//! commit index, in an append-only journal of our own: `wal.rs`) and `snapshot.redb` (the
//! latest snapshot, in redb). The log is a journal rather than a database because its writes
//! are appends that must be durable before a booking is acknowledged: one `pwrite` and one
//! fdatasync of a preallocated file cost a third of a redb commit here. Every value stored
//! carries a CRC32 of its bytes, checked when read: a flipped byte stops the node with an error
//! rather than letting it serve corrupt state.

// openraft's storage traits fix the error type (`StorageError`, a large enum); our helpers
// return it as it is rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod backup;
pub mod changes;
mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod wal;

use std::io::Cursor;

use crate::domain::{Batch, Outcome};

openraft::declare_raft_types!(
    /// The types this application runs openraft with.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
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

/// Opens (or creates) the node's snapshot database, refusing clearly when another process has it.
pub fn open_db(
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<std::sync::Arc<redb::Database>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
    let path = dir.join(name);
    // redb caches up to 1 GiB of pages a database by default. The OS page cache still holds
    // what this one lets go.
    match redb::Database::builder()
        .set_cache_size(crate::limits::STORE_CACHE_BYTES)
        .create(&path)
    {
        Ok(db) => {
            // The log holds password hashes: readable by this user only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| anyhow::anyhow!("cannot restrict {}: {e}", path.display()))?;
            Ok(std::sync::Arc::new(db))
        }
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(anyhow::anyhow!(
            "{} is in use by another process: is this node already running?",
            path.display()
        )),
        Err(e) => Err(anyhow::anyhow!("cannot open {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;

    struct OnDisk;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for OnDisk {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = LogStore::open(dir.path())?;
            let sm = StateMachineStore::open(open_db(dir.path(), "snapshot.redb").expect("sm db"))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log stores and state machines, at the pinned
    /// version: ordering, truncation, purging, vote and snapshot semantics.
    #[test]
    fn storage_passes_openraft_conformance_suite() -> Result<(), StorageError> {
        Suite::test_all(OnDisk)
    }

    /// What was acknowledged survives reopening, and the log has no hole.
    #[tokio::test]
    async fn appended_entries_and_vote_survive_a_reopen() {
        use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
        use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, Vote};

        let dir = tempfile::tempdir().expect("temp dir");
        let entries: Vec<Entry> = (1..=5)
            .map(|index| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Blank,
            })
            .collect();
        {
            let mut log = LogStore::open(dir.path()).expect("open");
            log.save_vote(&Vote::new(1, 1)).await.expect("vote");
            // Returns once the append callback has fired, that is once it is on disk.
            log.blocking_append(entries.clone()).await.expect("append");
        }
        let mut log = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(1, 1)));
        assert_eq!(log.try_get_log_entries(1..=5).await.expect("read"), entries);
    }
}
