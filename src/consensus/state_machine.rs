//! The booking state machine as openraft sees it, and its snapshots.
//!
//! The state lives in memory behind a lock that is never held across an await. It is made
//! durable by the log (replayed on start up to the saved commit index) and by snapshots,
//! which are written to the node's redb database with a checksum and replace the previous
//! one. The request-id table is part of the state and so of every snapshot.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageIOError, StoredMembership,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::changes::{ChangeSet, Changes};
use super::{decode, encode, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::domain::{Outcome, State};

const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
const SNAPSHOT_META: &str = "meta";
const SNAPSHOT_DATA: &str = "data";

/// The state with what openraft needs to know about it.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    pub state: State,
}

/// Cheap to clone: clones share the state. The snapshot builder is such a clone.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<MachineInner>,
}

/// The state machine store's interior, behind the `Arc` its clones share.
struct MachineInner {
    db: Arc<Database>,
    applied: RwLock<Applied>,
    /// The last applied log index, for readers waiting to catch up to a read index.
    applied_index: watch::Sender<u64>,
    /// The seats each apply touched, for watchers.
    changes: Changes,
    snapshots_built: AtomicU64,
}

fn storage_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

/// The fatal error for a command whose apply panicked: the node stops with the log index and
/// the command's kind, and says what to do (the panic message itself went to the log).
/// Commands applied in one call, by command, outcome and reason: counted as they are
/// applied, and added to `ticket_commands_applied_total` once per call, outside the lock.
#[derive(Default)]
struct Tally(Vec<((&'static str, &'static str, &'static str), u64)>);

impl Tally {
    fn count(&mut self, command: &crate::domain::Command, outcome: &Outcome) {
        let reason = match outcome {
            Outcome::Rejected(why) => why.kind(),
            _ => "none",
        };
        let key = (command.kind(), outcome.kind(), reason);
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key, 1)),
        }
    }

    fn record(self) {
        for ((command, outcome, reason), n) in self.0 {
            metrics::counter!(
                "ticket_commands_applied_total",
                "command" => command,
                "outcome" => outcome,
                "reason" => reason
            )
            .increment(n);
        }
    }
}

fn apply_failed(log_id: LogId, command: &crate::domain::Command) -> StorageError {
    let why = format!(
        "applying the {} command at log index {} panicked (a bug in apply): this node stops \
         instead of serving a state it could not finish; report it with the node's log",
        command.kind(),
        log_id.index
    );
    tracing::error!(index = log_id.index, kind = command.kind(), "{why}");
    storage_error(ErrorSubject::Apply(log_id), ErrorVerb::Write, why)
}

impl StateMachineStore {
    /// Loads the latest snapshot, if any, checking its checksum.
    pub fn open(db: Arc<Database>) -> Result<StateMachineStore, StorageError> {
        let err = |e: &dyn ToString| {
            storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e.to_string())
        };
        {
            let txn = db.begin_write().map_err(|e| err(&e))?;
            txn.open_table(SNAPSHOT).map_err(|e| err(&e))?;
            txn.commit().map_err(|e| err(&e))?;
        }
        let applied = match read_snapshot(&db)? {
            Some(stored) => decode::<Applied>(&stored.data).map_err(|e| {
                storage_error(
                    ErrorSubject::Snapshot(None),
                    ErrorVerb::Read,
                    format!("the stored snapshot is corrupt ({e}); refusing to start"),
                )
            })?,
            None => Applied::default(),
        };
        let index = applied.last_applied.map_or(0, |id| id.index);
        Ok(StateMachineStore {
            shared: Arc::new(MachineInner {
                db,
                applied: RwLock::new(applied),
                applied_index: watch::Sender::new(index),
                changes: Changes::new(index),
                snapshots_built: AtomicU64::new(0),
            }),
        })
    }

    /// Read access to the applied state. Hold it briefly: apply waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        // apply never panics half-way through a change, so a poisoned lock is still whole.
        self.shared
            .applied
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn applied_index(&self) -> u64 {
        *self.shared.applied_index.borrow()
    }

    /// Waits until the state has applied `index`, or the deadline passes.
    pub async fn wait_applied(&self, index: u64, deadline: tokio::time::Instant) -> bool {
        let mut rx = self.shared.applied_index.subscribe();
        let result =
            tokio::time::timeout_at(deadline, rx.wait_for(|&applied| applied >= index)).await;
        matches!(result, Ok(Ok(_)))
    }

    /// The seat changes this node applies, for `WatchSeats`.
    pub fn changes(&self) -> &Changes {
        &self.shared.changes
    }

    fn set_applied_index(&self, index: u64) {
        // send_replace: an installed snapshot may move the index anywhere; waiters re-check.
        self.shared.applied_index.send_replace(index);
    }
}

/// Adds the seats a command's outcome reserved or freed. A replayed retry names seats too;
/// watchers read their current state, so that costs a resend, never a wrong seat.
fn touched_seats(outcomes: &[Outcome], touched: &mut Vec<(String, String)>) {
    for outcome in outcomes {
        match outcome {
            Outcome::Reserved(booking) | Outcome::Confirmed(booking) => touched.extend(
                booking
                    .seats
                    .iter()
                    .map(|seat| (booking.event.clone(), seat.clone())),
            ),
            Outcome::Held(hold) | Outcome::HoldExtended(hold) => touched.extend(
                hold.seats
                    .iter()
                    .map(|seat| (hold.event.clone(), seat.clone())),
            ),
            Outcome::Cancelled { event, seats } | Outcome::HoldReleased { event, seats } => {
                touched.extend(seats.iter().map(|seat| (event.clone(), seat.clone())))
            }
            _ => {}
        }
    }
}

/// A stored snapshot: its encoded metadata and its encoded data.
struct StoredSnapshot {
    meta: Vec<u8>,
    data: Vec<u8>,
}

fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, StorageError> {
    let err = |e: &dyn ToString| {
        storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e.to_string())
    };
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let table = txn.open_table(SNAPSHOT).map_err(|e| err(&e))?;
    let meta = table.get(SNAPSHOT_META).map_err(|e| err(&e))?;
    let data = table.get(SNAPSHOT_DATA).map_err(|e| err(&e))?;
    Ok(match (meta, data) {
        (Some(meta), Some(data)) => Some(StoredSnapshot {
            meta: meta.value().to_vec(),
            data: data.value().to_vec(),
        }),
        _ => None,
    })
}

/// Replaces the stored snapshot, durably (one transaction, fsynced on commit), unless the one
/// stored is of a later log index; whether it did.
async fn write_snapshot(
    db: Arc<Database>,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
) -> Result<bool, StorageError> {
    let err = |e: &dyn ToString| snapshot_write_error(e.to_string());
    let last = meta.last_log_id;
    let meta = encode(meta).map_err(|e| err(&e))?;
    tokio::task::spawn_blocking(move || store_snapshot(&db, last, &meta, &data))
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))
}

/// A failure to store a snapshot, as openraft wants it told.
fn snapshot_write_error(why: String) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, why)
}

/// Replaces the stored snapshot with encoded `meta` and `data`, taken at `last`, in one
/// transaction; whether it did. A stored snapshot of a later index stays: a snapshot built
/// here is encoded while apply goes on, and meanwhile the leader may have sent a newer one,
/// been installed and had the log purged up to it. Storing the older one over it would leave
/// a node that restarts with a gap between its snapshot and its log.
fn store_snapshot(
    db: &Database,
    last: Option<LogId>,
    meta: &[u8],
    data: &[u8],
) -> Result<bool, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(SNAPSHOT).map_err(|e| e.to_string())?;
        let stored = match table.get(SNAPSHOT_META).map_err(|e| e.to_string())? {
            Some(bytes) => Some(
                decode::<SnapshotMeta<NodeId, BasicNode>>(bytes.value())
                    .map_err(|e| format!("the stored snapshot: {e}"))?,
            ),
            None => None,
        };
        if stored.is_some_and(|stored| stored.last_log_id > last) {
            return Ok(false);
        }
        table
            .insert(SNAPSHOT_META, meta)
            .map_err(|e| e.to_string())?;
        table
            .insert(SNAPSHOT_DATA, data)
            .map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(true)
}

impl StateMachineStore {
    /// Encodes the applied state with `encode_state`, returning its bytes and the log id it
    /// reflects. Only a copy is taken under the read lock (cheap: see `build_snapshot`), so
    /// apply does not wait for the encoding.
    pub fn encode_applied<T>(&self, encode_state: impl FnOnce(&State, Option<LogId>) -> T) -> T {
        let (state, last_applied) = {
            let applied = self.read();
            (applied.state.clone(), applied.last_applied)
        };
        encode_state(&state, last_applied)
    }
}

/// Seeds an empty state machine store with `state` as of `last`, under `membership`: the
/// snapshot a restored node starts from. Refuses a store that holds a snapshot already.
pub fn seed_restored(
    db: Arc<Database>,
    last: LogId,
    membership: openraft::Membership<NodeId, BasicNode>,
    state: State,
) -> Result<(), StorageError> {
    let err = |e: &dyn ToString| snapshot_write_error(e.to_string());
    {
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(SNAPSHOT).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
    }
    if read_snapshot(&db)?.is_some() {
        return Err(err(
            &"it already holds a snapshot; restore only into an empty data directory",
        ));
    }
    let membership = StoredMembership::new(Some(last), membership);
    let applied = Applied {
        last_applied: Some(last),
        membership: membership.clone(),
        state,
    };
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: membership,
        snapshot_id: format!("{}-{}-restored", last.leader_id.term, last.index),
    };
    let data = encode(&applied).map_err(|e| err(&e))?;
    let meta = encode(&meta).map_err(|e| err(&e))?;
    store_snapshot(&db, Some(last), &meta, &data).map_err(|e| err(&e))?;
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let err = |e: &dyn ToString| {
            storage_error(
                ErrorSubject::Snapshot(None),
                ErrorVerb::Write,
                e.to_string(),
            )
        };
        // Under the read lock only a copy is taken: the bookings, the state's bulk, are shared
        // by chunks copy-on-write, so the copy costs a pointer per thousand bookings. Apply
        // goes on while the copy is encoded, off the runtime's threads.
        let started = std::time::Instant::now();
        let copy = self.read().clone();
        let copied = started.elapsed();
        let (last_log_id, membership) = (copy.last_applied, copy.membership.clone());
        let data = tokio::task::spawn_blocking(move || encode(&copy))
            .await
            .map_err(|e| err(&e))?
            .map_err(|e| err(&e))?;
        let n = self.shared.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{n}", id.leader_id.term, id.index),
            None => format!("0-0-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership: membership,
            snapshot_id,
        };
        let encoded = started.elapsed();
        if !write_snapshot(self.shared.db.clone(), &meta, data.clone()).await? {
            tracing::info!(
                index = ?last_log_id.map(|id| id.index),
                "snapshot built, but a later one was installed meanwhile: that one stays"
            );
        }
        metrics::gauge!("ticket_raft_snapshot_bytes").set(data.len() as f64);
        tracing::info!(
            index = ?last_log_id.map(|id| id.index),
            bytes = data.len(),
            copy_us = copied.as_micros() as u64,
            encode_ms = (encoded - copied).as_millis() as u64,
            write_ms = (started.elapsed() - encoded).as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let applied = self.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut outcomes = Vec::with_capacity(entries.size_hint().0);
        let mut touched = Vec::new();
        let mut tally = Tally::default();
        let last = {
            let mut applied = self
                .shared
                .applied
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let outcome = match entry.payload {
                    // Leader blanks and membership changes carry no commands.
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => {
                        let mut results = Vec::with_capacity(batch.len());
                        for command in &batch {
                            // apply is total (property-tested); should it ever panic anyway,
                            // stop this node saying where, rather than unwind through openraft.
                            let state = &mut applied.state;
                            let result =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    // Seats whose holds ran out before the command, too.
                                    state.apply_noting(command, &mut touched)
                                }));
                            match result {
                                Ok(outcome) => {
                                    tally.count(command, &outcome);
                                    results.push(outcome);
                                }
                                Err(_) => return Err(apply_failed(entry.log_id, command)),
                            }
                        }
                        results
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Vec::new()
                    }
                };
                touched_seats(&outcome, &mut touched);
                outcomes.push(outcome);
            }
            applied.last_applied
        };
        tally.record();
        if let Some(last) = last {
            self.set_applied_index(last.index);
            if !touched.is_empty() {
                touched.sort_unstable();
                touched.dedup();
                self.shared.changes.publish(ChangeSet {
                    index: last.index,
                    reset: false,
                    seats: touched,
                });
            }
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut installed: Applied = decode(&data).map_err(|e| {
            storage_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                format!("received a corrupt snapshot: {e}"),
            )
        })?;
        installed.last_applied = meta.last_log_id;
        installed.membership = meta.last_membership.clone();
        metrics::gauge!("ticket_raft_snapshot_bytes").set(data.len() as f64);
        // openraft installs only a snapshot past what is applied, so none stored is later.
        write_snapshot(self.shared.db.clone(), meta, data).await?;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        *self
            .shared
            .applied
            .write()
            .unwrap_or_else(|e| e.into_inner()) = installed;
        self.set_applied_index(index);
        self.shared.changes.publish(ChangeSet {
            index,
            reset: true,
            seats: Vec::new(),
        });
        tracing::info!(index, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(StoredSnapshot { meta, data }) = read_snapshot(&self.shared.db)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta<NodeId, BasicNode> = decode(&meta)
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    /// A snapshot's encoded metadata at `index`, and its log id.
    fn meta_at(index: u64) -> (Option<LogId>, Vec<u8>) {
        let last = Some(LogId::new(CommittedLeaderId::new(1, 1), index));
        let meta: SnapshotMeta<NodeId, BasicNode> = SnapshotMeta {
            last_log_id: last,
            last_membership: StoredMembership::default(),
            snapshot_id: format!("s{index}"),
        };
        (last, encode(&meta).expect("encode"))
    }

    fn stored_index(db: &Database) -> Option<u64> {
        let stored = read_snapshot(db).expect("read")?;
        let meta: SnapshotMeta<NodeId, BasicNode> = decode(&stored.meta).expect("meta");
        meta.last_log_id.map(|id| id.index)
    }

    /// Goal: a snapshot built from a copy taken before a later one was installed never takes
    /// the later one's place: what is stored only moves forward.
    #[test]
    fn a_stored_snapshot_is_never_replaced_by_an_older_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = super::super::open_db(dir.path(), "snapshot.redb").expect("db");
        for (index, stored, then) in [
            (10, true, 10),
            (5, false, 10),
            (10, true, 10),
            (20, true, 20),
        ] {
            let (last, meta) = meta_at(index);
            assert_eq!(
                store_snapshot(&db, last, &meta, b"data"),
                Ok(stored),
                "{index}"
            );
            assert_eq!(stored_index(&db), Some(then), "{index}");
        }
    }
}
