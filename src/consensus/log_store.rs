//! The Raft log and vote, on disk with group commit.
//!
//! openraft's `append` may return before the entries are durable, as long as it calls the
//! callback once they are. So `append` puts the entries in an in-memory view (which serves
//! every read at once) and hands their bytes to one writer thread. The writer takes everything
//! queued since its last commit and writes it in one redb transaction with one fsync, then
//! fires the callbacks: concurrent bookings share a log append and an fsync.
//!
//! Every write (append, vote, truncate, purge, committed) goes through that one queue, so
//! they reach the disk in the order they were issued; openraft requires that. A vote, a
//! truncation and a purge wait for their fsync before returning.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{decode, encode, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::limits;

pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Cheap to clone: clones share the log. openraft's log reader is such a clone.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<LogInner>,
}

/// The log store's interior, behind the `Arc` its clones share: the view and the writer thread.
struct LogInner {
    view: Mutex<View>,
    writer: Option<mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogInner {
    /// Lets the writer finish what is queued, then waits for it (it closes the database).
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the log holds, including what is queued but not yet on disk.
#[derive(Default)]
struct View {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
}

enum Op {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    Meta {
        key: &'static str,
        value: Vec<u8>,
        done: Option<oneshot::Sender<io::Result<()>>>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: u64,
        last_purged: Vec<u8>,
    },
}

fn storage_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

/// An error reading the log from disk.
fn read_error<E: ToString>(e: E) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Read, e.to_string())
}

/// A stored `what` that does not decode: the node refuses to start on it.
fn corrupt<E: ToString>(what: &str, e: E) -> StorageError {
    storage_error(
        ErrorSubject::Store,
        ErrorVerb::Read,
        format!(
            "the stored {what} is corrupt ({}); refusing to start",
            e.to_string()
        ),
    )
}

/// Creates the tables on first start, so that readers find them.
fn create_tables(db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(read_error)?;
    txn.open_table(LOG).map_err(read_error)?;
    txn.open_table(META).map_err(read_error)?;
    txn.commit().map_err(read_error)
}

/// Seeds an empty log for a node restored from a backup taken at `last`: the log is purged
/// up to it (the snapshot holds everything before), committed to it, and the node has voted
/// in its term, so its first election is in a later term and every new entry's id comes after
/// `last`. Refuses a log that holds anything.
pub fn seed_restored(db: &Database, last: LogId, vote: Vote<NodeId>) -> Result<(), StorageError> {
    create_tables(db)?;
    let view = load(db)?;
    if view.vote.is_some() || !view.entries.is_empty() || view.last_purged.is_some() {
        return Err(corrupt(
            "log",
            "it already holds a node's log; restore only into an empty data directory",
        ));
    }
    let txn = db.begin_write().map_err(read_error)?;
    {
        let mut meta = txn.open_table(META).map_err(read_error)?;
        for (key, value) in [
            (VOTE, encode(&vote)),
            (COMMITTED, encode(&Some(last))),
            (LAST_PURGED, encode(&Some(last))),
        ] {
            let value = value.map_err(encode_err)?;
            meta.insert(key, value.as_slice()).map_err(read_error)?;
        }
    }
    txn.commit().map_err(read_error)
}

/// What the log holds on disk: the vote, the commit and purge points, and the entries.
fn load(db: &Database) -> Result<View, StorageError> {
    let mut view = View::default();
    let txn = db.begin_read().map_err(read_error)?;
    let meta = txn.open_table(META).map_err(read_error)?;
    let get_meta = |key: &str| -> Result<Option<Vec<u8>>, StorageError> {
        Ok(meta
            .get(key)
            .map_err(read_error)?
            .map(|v| v.value().to_vec()))
    };
    if let Some(bytes) = get_meta(VOTE)? {
        view.vote = Some(decode(&bytes).map_err(|e| corrupt("vote", e))?);
    }
    if let Some(bytes) = get_meta(COMMITTED)? {
        view.committed = decode(&bytes).map_err(|e| corrupt("commit index", e))?;
    }
    if let Some(bytes) = get_meta(LAST_PURGED)? {
        view.last_purged = decode(&bytes).map_err(|e| corrupt("purge point", e))?;
    }
    let log = txn.open_table(LOG).map_err(read_error)?;
    view.entries = load_entries(&log, view.last_purged)?;
    Ok(view)
}

/// The entries of `log`, each decoded and at its index, with no hole after the purge point.
fn load_entries(
    log: &impl ReadableTable<u64, &'static [u8]>,
    last_purged: Option<LogId>,
) -> Result<BTreeMap<u64, Entry>, StorageError> {
    let mut entries = BTreeMap::new();
    let mut expected = last_purged.map(|id| id.index + 1);
    for item in log.iter().map_err(read_error)? {
        let (index, bytes) = item.map_err(read_error)?;
        let index = index.value();
        let entry: Entry =
            decode(bytes.value()).map_err(|e| corrupt(&format!("log entry {index}"), e))?;
        if expected.is_some_and(|want| want != index) || entry.log_id.index != index {
            return Err(corrupt(
                "log",
                format!("hole or misplaced entry at index {index}"),
            ));
        }
        expected = Some(index + 1);
        entries.insert(index, entry);
    }
    Ok(entries)
}

impl LogStore {
    /// Loads the log from `db` (checking every entry's checksum and that there is no hole)
    /// and starts the writer thread.
    pub fn open(db: Arc<Database>) -> Result<LogStore, StorageError> {
        create_tables(&db)?;
        let view = load(&db)?;
        let (writer, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(&db, queue))
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        Ok(LogStore {
            shared: Arc::new(LogInner {
                view: Mutex::new(view),
                writer: Some(writer),
                thread: Some(thread),
            }),
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        // A panic while holding this lock leaves the view consistent (every change is a
        // single map operation), so a poisoned lock can be used as it is.
        self.shared.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, op: Op) -> Result<(), StorageError> {
        let stopped = || {
            storage_error(
                ErrorSubject::Store,
                ErrorVerb::Write,
                "the log writer stopped",
            )
        };
        let writer = self.shared.writer.as_ref().ok_or_else(stopped)?;
        writer.send(op).map_err(|_| stopped())
    }

    async fn send_and_wait(
        &self,
        subject: ErrorSubject<NodeId>,
        op: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Op,
    ) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.send(op(done))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(storage_error(subject, ErrorVerb::Write, e)),
            Err(_) => Err(storage_error(
                subject,
                ErrorVerb::Write,
                "the log writer stopped",
            )),
        }
    }

    /// The highest log index this node knows committed (0 before any).
    pub fn committed_index(&self) -> u64 {
        self.view().committed.map_or(0, |c| c.index)
    }

    /// Whether this node has never voted nor logged anything: a fresh node.
    pub fn is_empty(&self) -> bool {
        let view = self.view();
        view.vote.is_none() && view.entries.is_empty() && view.last_purged.is_none()
    }
}

fn encode_err(e: postcard::Error) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let view = self.view();
        Ok(view
            .entries
            .range((start, end))
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let view = self.view();
        let last = view.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: view.last_purged,
            last_log_id: last.or(view.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let value = encode(vote).map_err(encode_err)?;
        self.send_and_wait(ErrorSubject::Vote, |done| Op::Meta {
            key: VOTE,
            value,
            done: Some(done),
        })
        .await?;
        self.view().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.view().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not waited for: losing the latest commit index in a crash only means re-learning it
        // from the leader; it never makes state go back, since it only ever grows.
        let value = encode(&committed).map_err(encode_err)?;
        self.view().committed = committed;
        self.send(Op::Meta {
            key: COMMITTED,
            value,
            done: None,
        })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.view().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        flushed: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut encoded = Vec::with_capacity(entries.size_hint().0);
        {
            let mut view = self.view();
            for entry in entries {
                encoded.push((entry.log_id.index, encode(&entry).map_err(encode_err)?));
                view.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(Op::Append {
            entries: encoded,
            flushed,
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(from = log_id.index, "truncating the log");
        self.view().entries.split_off(&log_id.index);
        self.send_and_wait(ErrorSubject::Logs, |done| Op::Truncate {
            from: log_id.index,
            done,
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(upto = log_id.index, "purging the log");
        let last_purged = encode(&Some(log_id)).map_err(encode_err)?;
        {
            let mut view = self.view();
            let kept = view.entries.split_off(&(log_id.index + 1));
            view.entries = kept;
            view.last_purged = Some(log_id);
        }
        // Not waited for: if the purge is lost in a crash, the entries are merely kept longer.
        self.send(Op::Purge {
            upto: log_id.index,
            last_purged,
        })
    }
}

/// The writer thread: one transaction and one fsync for everything queued meanwhile.
fn write_loop(db: &Database, queue: mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < limits::LOG_WRITE_BATCH_MAX {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = write_batch(db, &batch).map_err(|e| e.to_string());
        metrics::histogram!("ticket_log_fsync_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::error!(error = %e, "log write failed");
        }
        for op in batch {
            let outcome = || match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::other(e.clone())),
            };
            match op {
                Op::Append { flushed, .. } => flushed.log_io_completed(outcome()),
                Op::Meta {
                    done: Some(done), ..
                }
                | Op::Truncate { done, .. } => {
                    let _ = done.send(outcome());
                }
                Op::Meta { done: None, .. } | Op::Purge { .. } => {}
            }
        }
    }
}

fn write_batch(db: &Database, batch: &[Op]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        for op in batch {
            match op {
                Op::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        log.insert(index, bytes.as_slice())?;
                    }
                }
                Op::Meta { key, value, .. } => {
                    meta.insert(*key, value.as_slice())?;
                }
                Op::Truncate { from, .. } => {
                    log.retain_in((Bound::Included(*from), Bound::Unbounded), |_, _| false)?;
                }
                Op::Purge { upto, last_purged } => {
                    log.retain_in(..=*upto, |_, _| false)?;
                    meta.insert(LAST_PURGED, last_purged.as_slice())?;
                }
            }
        }
    }
    // redb's default durability is Immediate: the commit returns after fsync.
    txn.commit()?;
    Ok(())
}
