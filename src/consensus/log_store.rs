//! The Raft log and vote, on disk with group commit.
//!
//! openraft's `append` may return before the entries are durable, as long as it calls the
//! callback once they are. So `append` puts the entries in an in-memory view (which serves
//! every read at once) and hands their bytes to one writer thread. The writer takes everything
//! queued since its last write and writes it to the journal (`wal.rs`) as one record with one
//! fdatasync, then fires the callbacks: concurrent bookings share a log append and an fsync.
//!
//! Every write (append, vote, truncate, purge, committed) goes through that one queue, so
//! they reach the disk in the order they were issued; openraft requires that. A vote and a
//! truncation wait for their fsync before returning.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError, Vote,
};
use tokio::sync::oneshot;

use super::wal::{Replay, Wal, WalOp};
use super::{decode, encode, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::limits;

/// The journal's folder in a node's data directory.
pub const WAL_DIR: &str = "wal";

/// Cheap to clone: clones share the log. openraft's log reader is such a clone.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<LogInner>,
}

/// The log store's interior, behind the `Arc` its clones share: the view and the writer thread.
struct LogInner {
    view: Mutex<View>,
    /// Bytes of entries appended since this process opened the log.
    appended: AtomicU64,
    writer: Option<mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogInner {
    /// Lets the writer finish what is queued, then waits for it (it closes the journal).
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
    entries: BTreeMap<u64, Stored>,
    /// The entries that also keep their decoded form, ascending: the newest appended, up to
    /// [`limits::LOG_DECODED_BYTES_MAX`] of them as stored.
    decoded: VecDeque<u64>,
    decoded_bytes: usize,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
}

/// An entry as the view keeps it: encoded, as it is on disk, and decoded too while it is
/// among the newest. A booking's command is some 70 bytes encoded and several times that
/// decoded (each string an allocation of its own), and the log holds up to
/// `snapshot_log_bytes` of them, so older entries are kept encoded only and decoded when
/// read. The newest are the ones read at once, by replication and apply, and decoding on each
/// of those reads cost a fifth of the batch rate.
struct Stored {
    log_id: LogId,
    bytes: Arc<[u8]>,
    entry: Option<Entry>,
}

impl View {
    /// Adds an entry just appended, decoded, letting the oldest decoded ones go to their
    /// stored form past the bound.
    fn push(&mut self, entry: Entry, bytes: Arc<[u8]>) {
        let index = entry.log_id.index;
        self.decoded_bytes += bytes.len();
        self.decoded.push_back(index);
        let stored = Stored {
            log_id: entry.log_id,
            bytes,
            entry: Some(entry),
        };
        if let Some(replaced) = self.entries.insert(index, stored) {
            self.forget_decoded(&replaced);
        }
        while self.decoded_bytes > limits::LOG_DECODED_BYTES_MAX && self.decoded.len() > 1 {
            let Some(oldest) = self.decoded.pop_front() else {
                break;
            };
            if let Some(stored) = self.entries.get_mut(&oldest) {
                if stored.entry.take().is_some() {
                    self.decoded_bytes -= stored.bytes.len();
                }
            }
        }
    }

    /// Accounts for an entry that left the view (truncated, purged or replaced).
    fn forget_decoded(&mut self, gone: &Stored) {
        if gone.entry.is_some() {
            self.decoded_bytes -= gone.bytes.len();
        }
    }

    /// Removes every entry from `from` on.
    fn truncate(&mut self, from: u64) {
        for (_, gone) in self.entries.split_off(&from) {
            self.forget_decoded(&gone);
        }
        while self.decoded.back().is_some_and(|&i| i >= from) {
            self.decoded.pop_back();
        }
    }

    /// Removes every entry up to `upto`.
    fn purge(&mut self, upto: u64) {
        let kept = match upto.checked_add(1) {
            Some(after) => self.entries.split_off(&after),
            None => BTreeMap::new(),
        };
        for (_, gone) in std::mem::replace(&mut self.entries, kept) {
            self.forget_decoded(&gone);
        }
        while self.decoded.front().is_some_and(|&i| i <= upto) {
            self.decoded.pop_front();
        }
    }
}

enum Op {
    Append {
        entries: Vec<(u64, Arc<[u8]>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    Vote {
        value: Vec<u8>,
        done: oneshot::Sender<io::Result<()>>,
    },
    Committed {
        value: Vec<u8>,
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

impl Op {
    /// Roughly what the op adds to a write, to bound one write's size.
    fn bytes(&self) -> usize {
        match self {
            Op::Append { entries, .. } => entries.iter().map(|(_, e)| e.len() + 13).sum(),
            Op::Vote { value, .. } | Op::Committed { value } => value.len(),
            Op::Truncate { .. } | Op::Purge { .. } => 32,
        }
    }
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

/// Opens the journal in the node directory `dir`, refusing a directory whose log is in the
/// format of an earlier build.
fn open_wal(dir: &Path) -> Result<(Wal, Replay), StorageError> {
    if dir.join("log.redb").exists() {
        return Err(storage_error(
            ErrorSubject::Store,
            ErrorVerb::Read,
            format!(
                "{} holds a log in an earlier build's format (log.redb), which this build \
                 does not read; start the node on an empty directory (it catches up from the \
                 others) or restore a backup into one",
                dir.display()
            ),
        ));
    }
    Wal::open(&dir.join(WAL_DIR)).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => corrupt("log", e),
        _ => read_error(e),
    })
}

/// Seeds an empty log for a node restored from a backup taken at `last`: the log is purged
/// up to it (the snapshot holds everything before), committed to it, and the node has voted
/// in its term, so its first election is in a later term and every new entry's id comes after
/// `last`. Refuses a log that holds anything.
pub fn seed_restored(dir: &Path, last: LogId, vote: Vote<NodeId>) -> Result<(), StorageError> {
    let (mut wal, replay) = open_wal(dir)?;
    if !replay.ops.is_empty() || replay.committed.is_some() {
        return Err(corrupt(
            "log",
            "it already holds a node's log; restore only into an empty data directory",
        ));
    }
    let vote = encode(&vote).map_err(encode_err)?;
    let last_purged = encode(&Some(last)).map_err(encode_err)?;
    wal.write(&[
        WalOp::Vote(vote.as_slice()),
        WalOp::Purge {
            upto: last.index,
            bytes: last_purged.as_slice(),
        },
    ])
    .and_then(|()| wal.save_committed(&last_purged))
    .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))
}

/// The log as the journal's ops leave it: the vote, the commit and purge points, and the
/// entries, each decoded and at its index, with no hole after the purge point.
fn replay(replay: Replay) -> Result<View, StorageError> {
    let mut view = View::default();
    for op in replay.ops {
        match op {
            WalOp::Vote(bytes) => {
                view.vote = Some(decode(&bytes).map_err(|e| corrupt("vote", e))?);
            }
            WalOp::Truncate { from } => view.truncate(from),
            WalOp::Purge { upto, bytes } => {
                view.last_purged = decode(&bytes).map_err(|e| corrupt("purge point", e))?;
                if upto == u64::MAX {
                    return Err(corrupt("purge point", upto));
                }
                view.purge(upto);
            }
            WalOp::Entry { index, bytes } => {
                if view.last_purged.is_some_and(|p| index <= p.index) {
                    continue;
                }
                let entry: Entry =
                    decode(&bytes).map_err(|e| corrupt(&format!("log entry {index}"), e))?;
                if entry.log_id.index != index {
                    return Err(corrupt("log", format!("misplaced entry at index {index}")));
                }
                // Kept in its stored form only: what a restarted node reads first is what its
                // peers lack, or nothing.
                let stored = Stored {
                    log_id: entry.log_id,
                    bytes: Arc::from(bytes),
                    entry: None,
                };
                if let Some(replaced) = view.entries.insert(index, stored) {
                    view.forget_decoded(&replaced);
                }
            }
        }
    }
    if let Some(bytes) = replay.committed {
        view.committed = decode(&bytes).map_err(|e| corrupt("commit index", e))?;
    }
    // The commit index is written after the entries it covers, so it points past the log's
    // end only if the disk lost a write it said was durable. The entries past the end are
    // re-learned from the leader, and the commit index with them.
    let last = view.entries.values().next_back().map(|e| e.log_id);
    let last = last.or(view.last_purged);
    if view.committed.map(|c| c.index) > last.map(|l| l.index) {
        tracing::warn!(
            committed = ?view.committed,
            last = ?last,
            "the commit index points past the log's end; it is re-learned from the leader"
        );
        view.committed = last;
    }
    let mut expected = view.last_purged.map(|id| id.index.checked_add(1));
    for &index in view.entries.keys() {
        if expected.is_some_and(|want| want != Some(index)) {
            return Err(corrupt("log", format!("hole before index {index}")));
        }
        expected = Some(index.checked_add(1));
    }
    Ok(view)
}

impl LogStore {
    /// Loads the log from the node directory `dir` (checking every record's and entry's
    /// checksum and that there is no hole) and starts the writer thread.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        let (wal, stored) = open_wal(dir)?;
        let view = replay(stored)?;
        let (writer, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(wal, queue))
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        Ok(LogStore {
            shared: Arc::new(LogInner {
                view: Mutex::new(view),
                appended: AtomicU64::new(0),
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

    /// Bytes of entries (as stored) appended since the log was opened: it only grows.
    pub fn appended_bytes(&self) -> u64 {
        self.shared.appended.load(Ordering::Relaxed)
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
        // Those kept only as stored are decoded after the lock is let go: appends need not
        // wait for a reader.
        let found: Vec<Result<Entry, Arc<[u8]>>> = self
            .view()
            .entries
            .range((start, end))
            .map(|(_, e)| e.entry.clone().ok_or_else(|| e.bytes.clone()))
            .collect();
        found
            .into_iter()
            .map(|e| e.or_else(|bytes| decode(&bytes).map_err(read_error)))
            .collect()
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
        self.send_and_wait(ErrorSubject::Vote, |done| Op::Vote { value, done })
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
        self.send(Op::Committed { value })
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
        let mut bytes = 0;
        {
            let mut view = self.view();
            for entry in entries {
                let stored: Arc<[u8]> = encode(&entry).map_err(encode_err)?.into();
                bytes += stored.len() as u64;
                encoded.push((entry.log_id.index, stored.clone()));
                view.push(entry, stored);
            }
        }
        self.shared.appended.fetch_add(bytes, Ordering::Relaxed);
        self.send(Op::Append {
            entries: encoded,
            flushed,
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(from = log_id.index, "truncating the log");
        self.view().truncate(log_id.index);
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
            view.purge(log_id.index);
            view.last_purged = Some(log_id);
        }
        // Not waited for: if the purge is lost in a crash, the entries are merely kept longer.
        self.send(Op::Purge {
            upto: log_id.index,
            last_purged,
        })
    }
}

/// The writer thread: one record and one fdatasync for everything queued meanwhile.
fn write_loop(mut wal: Wal, queue: mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < limits::LOG_WRITE_BATCH_MAX && bytes < limits::LOG_WRITE_BYTES_MAX {
            match queue.try_recv() {
                Ok(op) => {
                    bytes += op.bytes();
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = write_batch(&mut wal, &batch).map_err(|e| e.to_string());
        if batch.iter().any(|op| !matches!(op, Op::Committed { .. })) {
            // A batch of commit indexes alone makes no fsync: not counted as one.
            metrics::histogram!("ticket_log_fsync_seconds").record(started.elapsed().as_secs_f64());
        }
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
                Op::Vote { done, .. } | Op::Truncate { done, .. } => {
                    let _ = done.send(outcome());
                }
                Op::Committed { .. } | Op::Purge { .. } => {}
            }
        }
    }
}

/// Writes a batch as one journal record, then the newest commit index in it: after the
/// record, so that it never points past entries that are not yet on disk.
fn write_batch(wal: &mut Wal, batch: &[Op]) -> io::Result<()> {
    let mut ops = Vec::with_capacity(batch.len());
    let mut committed = None;
    for op in batch {
        match op {
            Op::Append { entries, .. } => {
                ops.extend(entries.iter().map(|(index, bytes)| WalOp::Entry {
                    index: *index,
                    bytes: &bytes[..],
                }));
            }
            Op::Vote { value, .. } => ops.push(WalOp::Vote(value.as_slice())),
            Op::Committed { value } => committed = Some(value),
            Op::Truncate { from, .. } => ops.push(WalOp::Truncate { from: *from }),
            Op::Purge { upto, last_purged } => ops.push(WalOp::Purge {
                upto: *upto,
                bytes: last_purged.as_slice(),
            }),
        }
    }
    if !ops.is_empty() {
        wal.write(&ops)?;
    }
    match committed {
        Some(value) => wal.save_committed(value),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::domain::Command;

    /// An entry of about `size` bytes as stored.
    fn entry(index: u64, size: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(vec![Command::Reserve {
                request_id: format!("{index}-{}", "x".repeat(size)),
                actor: "ana".into(),
                event: "hall".into(),
                seats: vec!["A1".into()],
                now_ms: index,
            }]),
        }
    }

    /// The decoded bytes the view counts are those of the entries that keep a decoded form.
    fn check_accounting(view: &View) {
        let decoded: Vec<u64> = view
            .entries
            .iter()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(&i, _)| i)
            .collect();
        let bytes: usize = view
            .entries
            .values()
            .filter(|s| s.entry.is_some())
            .map(|s| s.bytes.len())
            .sum();
        assert_eq!(Vec::from(view.decoded.clone()), decoded);
        assert_eq!(view.decoded_bytes, bytes);
        assert!(bytes <= limits::LOG_DECODED_BYTES_MAX);
    }

    /// Goal: past its bound the log keeps the oldest entries in their stored form only, and
    /// every entry still reads back as appended, across a truncation and a purge; after a
    /// reopen every entry reads back from its stored form.
    #[tokio::test]
    async fn older_entries_are_kept_stored_and_still_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let size = 64 * 1024;
        let count = (limits::LOG_DECODED_BYTES_MAX / size) as u64 * 3 / 2;
        let entries: Vec<Entry> = (1..=count).map(|i| entry(i, size)).collect();
        let mut log = LogStore::open(dir.path()).expect("open");
        log.blocking_append(entries.clone()).await.expect("append");
        {
            let view = log.view();
            check_accounting(&view);
            assert!(view.entries.get(&1).is_some_and(|s| s.entry.is_none()));
            assert!(view.entries.get(&count).is_some_and(|s| s.entry.is_some()));
        }
        let read = log.try_get_log_entries(1..=count).await.expect("read");
        assert_eq!(read, entries);

        log.truncate(entries[count as usize - 10].log_id)
            .await
            .expect("truncate");
        log.purge(entries[9].log_id).await.expect("purge");
        check_accounting(&log.view());
        let kept = &entries[10..count as usize - 10];
        let read = log.try_get_log_entries(..).await.expect("read");
        assert_eq!(read, kept);
        drop(log);

        let mut log = LogStore::open(dir.path()).expect("reopen");
        check_accounting(&log.view());
        let read = log.try_get_log_entries(..).await.expect("read");
        assert_eq!(read, kept);
    }
}
