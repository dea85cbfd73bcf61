//! A backup: the applied state at one log index, as a file `ticket backup` writes and
//! `ticket restore` seeds new nodes from.
//!
//! The file is `ticket-backup v1\n`, the SHA-256 of the rest (32 bytes), then the postcard
//! encoding of [`Backup`] behind its CRC32 (as every stored value is). Either check failing
//! refuses the file; so does a version this build does not know.
//!
//! A restored node starts from the backup as its snapshot: its log purged and committed up
//! to the backup's log id, its vote in that id's term (so that the new cluster's first
//! election is in a later term, and every new entry's id comes after the backup's), and the
//! membership of the new cluster, not the old one's. What it does not carry: token keys and
//! certificates (files on each node, never in the state), so tokens of the old cluster are
//! not valid in the new one.

use std::collections::BTreeMap;
use std::path::Path;

use openraft::{BasicNode, Membership, Vote};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{decode, encode, LogId, NodeId};
use crate::domain::State;

const MAGIC: &[u8] = b"ticket-backup v1\n";
/// 2: the state keeps client sessions (`domain::state::sessions`); a version 1 file's state
/// does not decode as this build's.
const VERSION: u32 = 2;

/// The first field of every version's body, read before the rest.
#[derive(Deserialize)]
struct Header {
    version: u32,
}

/// What a backup file holds.
#[derive(Serialize, Deserialize, Debug)]
pub struct Backup {
    pub version: u32,
    /// The log id the state reflects: every command up to it, none after.
    pub last_applied: LogId,
    /// When it was taken (the serving node's clock, ms since 1970).
    pub taken_at_ms: u64,
    pub state: State,
}

/// The same, borrowing the state, so a node encodes it without copying it first.
#[derive(Serialize)]
struct BackupRef<'a> {
    version: u32,
    last_applied: LogId,
    taken_at_ms: u64,
    state: &'a State,
}

/// Why a file is not a backup this build can restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a ticket backup (it does not start with {:?})", String::from_utf8_lossy(MAGIC).trim())]
    NotABackup,
    #[error("the backup is corrupt: its SHA-256 does not match its contents")]
    Digest,
    #[error("the backup is corrupt: {0}")]
    Decode(String),
    #[error("the backup is of version {0}; this build restores version {VERSION}")]
    Version(u32),
    #[error("the state has applied nothing yet: there is nothing to back up")]
    Empty,
}

/// The backup file of `state` as of `last_applied`.
pub fn encode_file(
    state: &State,
    last_applied: Option<LogId>,
    taken_at_ms: u64,
) -> Result<Vec<u8>, BackupError> {
    let last_applied = last_applied.ok_or(BackupError::Empty)?;
    let body = encode(&BackupRef {
        version: VERSION,
        last_applied,
        taken_at_ms,
        state,
    })
    .map_err(|e| BackupError::Decode(e.to_string()))?;
    let mut file = Vec::with_capacity(MAGIC.len() + 32 + body.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&Sha256::digest(&body));
    file.extend_from_slice(&body);
    Ok(file)
}

/// Reads a backup file, checking its digest, its checksum and its version.
pub fn decode_file(bytes: &[u8]) -> Result<Backup, BackupError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(BackupError::NotABackup)?;
    if rest.len() < 32 {
        return Err(BackupError::Digest);
    }
    let (digest, body) = rest.split_at(32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(BackupError::Digest);
    }
    let header: Header = decode(body).map_err(|e| BackupError::Decode(e.to_string()))?;
    if header.version != VERSION {
        return Err(BackupError::Version(header.version));
    }
    decode(body).map_err(|e| BackupError::Decode(e.to_string()))
}

/// Seeds the empty data directory `dir` of node `id` from `backup`, as a member of a new
/// cluster of `members` (id → peer address). Refuses a directory that holds a node already.
pub fn seed(
    dir: &Path,
    id: NodeId,
    members: BTreeMap<NodeId, BasicNode>,
    backup: Backup,
) -> anyhow::Result<()> {
    for file in ["log.redb", super::log_store::WAL_DIR, "snapshot.redb"] {
        if dir.join(file).exists() {
            anyhow::bail!(
                "{} holds a node already ({file}); restore only into an empty data directory",
                dir.display()
            );
        }
    }
    let voters = members
        .keys()
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    let membership = Membership::new(vec![voters], members);
    let last = backup.last_applied;
    let sm = super::open_db(dir, "snapshot.redb")?;
    super::state_machine::seed_restored(sm, last, membership, backup.state)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A vote for itself in the backup's term: never granted to anyone, so harmless, and it
    // makes the node's first election one term later.
    let vote = Vote::new(last.leader_id.term, id);
    super::log_store::seed_restored(dir, last, vote).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Vec<u8> {
        let state = State::default();
        let last = openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 42);
        encode_file(&state, Some(last), 1_000).expect("encode")
    }

    #[test]
    fn a_backup_reads_back_with_its_log_id() {
        let backup = decode_file(&file()).expect("decode");
        assert_eq!(backup.last_applied.index, 42);
        assert_eq!(backup.last_applied.leader_id.term, 3);
        assert_eq!(backup.taken_at_ms, 1_000);
    }

    #[test]
    fn any_flipped_byte_or_cut_is_refused() {
        let good = file();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(decode_file(&bad).is_err(), "byte {i} flipped was accepted");
        }
        assert!(decode_file(&good[..good.len() - 1]).is_err());
        assert!(matches!(
            decode_file(b"something else"),
            Err(BackupError::NotABackup)
        ));
        assert!(matches!(
            encode_file(&State::default(), None, 0),
            Err(BackupError::Empty)
        ));
    }

    /// A file of another version is refused as such, before its state is decoded (an older
    /// build's state does not decode as this one's).
    #[test]
    fn another_version_is_refused_by_its_number() {
        let body = encode(&(1u32, "a state of another shape")).expect("encode");
        let mut old = MAGIC.to_vec();
        old.extend_from_slice(&Sha256::digest(&body));
        old.extend_from_slice(&body);
        match decode_file(&old) {
            Err(e @ BackupError::Version(1)) => {
                assert!(e.to_string().contains("version 1"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
