//! The Raft log's files: an append-only journal in preallocated segments.
//!
//! `<node dir>/wal/` holds segments named by sequence number (`00000000000000000001.wal`),
//! each preallocated with `fallocate`, so that it reads as zeros past its data and a write
//! into it changes no file size. A segment is a run of records, one per write:
//!
//! ```text
//! [payload length: u32][payload CRC32: u32][CRC32 of those 8 bytes: u32][payload][zeros]
//! ```
//!
//! padded with zeros to a multiple of 16 bytes, so that no header straddles two sectors.
//!
//! The log writer folds everything queued into one record, writes it with one `pwrite` and
//! makes it durable with one fdatasync. A payload is a run of ops, `[kind: u8][length:
//! u32][bytes]`: an entry, the vote, a truncation, a purge. Every integer is little-endian.
//! A new segment opens with the vote and the purge point as they stand, so that the segments
//! before it can be deleted once everything in them is purged.
//!
//! Recovery reads the segments in order and hands back every op. The data ends at the first
//! header with only zeros from it on. A record that does not check out is a torn write (one a
//! crash cut short before its fdatasync returned, so that nothing in it was acknowledged)
//! only if it is the last thing in the last segment, and either runs past the end of the
//! file or still holds a sector's worth of zeros that never reached the disk: the rule of
//! etcd's WAL. Its bytes are dropped. Anything else that does not check out is corruption,
//! and the node refuses to start rather than forget an entry it acknowledged.
//!
//! The commit index is kept beside the segments in `committed`, overwritten in place after
//! each durable write and never fsynced itself: losing it in a crash only means re-learning
//! it from the leader, and it never points past what the segments hold.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What one segment is preallocated to (a larger record gets a segment its own size).
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const HEADER: usize = 12;
/// Records start on this boundary, so that a header never straddles two sectors: a torn
/// write leaves a header whole or all zeros.
const ALIGN: usize = 16;
/// Zeros in a run this long, on a sector of a record that fails its checksum, mark the record
/// as torn rather than corrupt. Shorter runs occur in ordinary data.
const TORN_ZEROS_MIN: usize = 16;
const SECTOR: usize = 512;
/// The commit index file's fixed size: a length, then the encoded value, then zeros.
const COMMITTED_BYTES: usize = 64;

const ENTRY: u8 = 1;
const VOTE: u8 = 2;
const TRUNCATE: u8 = 3;
const PURGE: u8 = 4;

/// One change to the log, as written (`B` = `&[u8]`) and as read back (`B` = `Vec<u8>`).
/// The byte strings are the codec's (checksummed) encodings of the entry, vote or log id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalOp<B> {
    Entry {
        index: u64,
        bytes: B,
    },
    Vote(B),
    /// Every entry from this index on is gone.
    Truncate {
        from: u64,
    },
    /// Every entry up to this index is gone; `bytes` is the log id purged up to.
    Purge {
        upto: u64,
        bytes: B,
    },
}

/// The open journal: the segment being written, and what a new segment must start with.
pub struct Wal {
    dir: PathBuf,
    /// Sequence number → the highest entry index written in it, for deleting purged segments.
    segments: BTreeMap<u64, u64>,
    file: File,
    seq: u64,
    /// Where the next record goes in `file`, and how far `file` is preallocated.
    offset: u64,
    allocated: u64,
    vote: Option<Vec<u8>>,
    purge: Option<(u64, Vec<u8>)>,
    committed: File,
    /// Set by a failed write: the segment's tail is unknown, so nothing more is written.
    broken: Option<String>,
    /// Held for as long as the journal is open: a second process on the same directory fails.
    _lock: File,
}

/// What `Wal::open` found: the ops in the order written, and the stored commit index.
pub struct Replay {
    pub ops: Vec<WalOp<Vec<u8>>>,
    pub committed: Option<Vec<u8>>,
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// `len` rounded up to a multiple of `ALIGN`.
fn aligned(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// Opens a file of the journal, readable and writable by this user only (the log holds
/// password hashes).
fn open_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .open(path)
}

/// Makes `file` at least `len` bytes of allocated zeros.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: the descriptor is open for as long as `file` lives; the call reads no memory.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len as u64),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Takes `file`'s advisory lock, failing with `WouldBlock` if another open file holds it.
/// (`File::try_lock` would do, but is newer than the crate's minimum Rust.)
fn lock_exclusively(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` lives; the call reads no memory.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Makes a file's creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segments in `dir`, by sequence number.
fn list_segments(dir: &Path) -> io::Result<BTreeMap<u64, PathBuf>> {
    let mut segments = BTreeMap::new();
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            segments.insert(seq, path);
        }
    }
    Ok(segments)
}

/// How a segment's records end.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Only zeros from here on.
    Clean(usize),
    /// A torn write starts here; it and everything after it are dropped.
    Torn(usize),
}

/// The payloads of a segment's records, and where they end. `last` says whether this is the
/// newest segment, the only one a torn write can be in.
fn records(bytes: &[u8], last: bool) -> Result<(Vec<&[u8]>, End), String> {
    let mut payloads = Vec::new();
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        if all_zero(rest) {
            return Ok((payloads, End::Clean(at)));
        }
        let torn = |why: &str, torn: bool| {
            if last && torn {
                Ok(End::Torn(at))
            } else {
                Err(format!("{why} at byte {at}"))
            }
        };
        if rest.len() < HEADER {
            return torn("a record header cut short", true).map(|end| (payloads, end));
        }
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        if crc32(&rest[..8]) != word(8) {
            // A header that never reached the disk reads as zeros (it cannot straddle two
            // sectors), though the rest of its record may have; or the header did and the
            // rest did not.
            let unwritten = all_zero(&rest[..HEADER]) || all_zero(&rest[HEADER..]);
            let end = torn("a record header fails its checksum", unwritten)?;
            return Ok((payloads, end));
        }
        let len = word(0) as usize;
        let Some(payload) = rest.get(HEADER..HEADER + len) else {
            return torn("a record runs past the end of its segment", true)
                .map(|end| (payloads, end));
        };
        let next = (at + aligned(HEADER + len)).min(bytes.len());
        if crc32(payload) != word(4) {
            let looks_torn = all_zero(&bytes[next..]) && has_zero_sector(bytes, at, len);
            let end = torn("a record fails its checksum", looks_torn)?;
            return Ok((payloads, end));
        }
        payloads.push(payload);
        at = next;
    }
}

/// Whether a sector's share of the record at `at` (of `len` payload bytes) is all zeros: one
/// of at least `TORN_ZEROS_MIN` bytes, or the record's last share, however short.
fn has_zero_sector(bytes: &[u8], at: usize, len: usize) -> bool {
    let (start, end) = (at, at + HEADER + len);
    let mut sector = start - start % SECTOR;
    while sector < end {
        let from = sector.max(start);
        let to = (sector + SECTOR).min(end);
        let long_enough = to - from >= TORN_ZEROS_MIN || to == end;
        if long_enough && all_zero(&bytes[from..to]) {
            return true;
        }
        sector += SECTOR;
    }
    false
}

/// The ops in one record's payload.
fn ops(payload: &[u8]) -> Result<Vec<WalOp<Vec<u8>>>, String> {
    let mut ops = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (&kind, tail) = rest.split_first().ok_or("an empty op")?;
        let len = tail
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("an op's length cut short")?;
        let body = tail.get(4..4 + len).ok_or("an op runs past its record")?;
        rest = &tail[4 + len..];
        let index = || {
            body.get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                .ok_or("an op's index cut short")
        };
        ops.push(match kind {
            ENTRY => WalOp::Entry {
                index: index()?,
                bytes: body[8..].to_vec(),
            },
            VOTE => WalOp::Vote(body.to_vec()),
            TRUNCATE => WalOp::Truncate { from: index()? },
            PURGE => WalOp::Purge {
                upto: index()?,
                bytes: body[8..].to_vec(),
            },
            other => return Err(format!("an op of unknown kind {other}")),
        });
    }
    Ok(ops)
}

/// Appends one op to a payload being built.
fn push_op(payload: &mut Vec<u8>, op: &WalOp<&[u8]>) {
    let (kind, index, bytes): (u8, Option<u64>, &[u8]) = match op {
        WalOp::Entry { index, bytes } => (ENTRY, Some(*index), bytes),
        WalOp::Vote(bytes) => (VOTE, None, bytes),
        WalOp::Truncate { from } => (TRUNCATE, Some(*from), &[]),
        WalOp::Purge { upto, bytes } => (PURGE, Some(*upto), bytes),
    };
    let len = bytes.len() + if index.is_some() { 8 } else { 0 };
    payload.push(kind);
    payload.extend_from_slice(&(len as u32).to_le_bytes());
    if let Some(index) = index {
        payload.extend_from_slice(&index.to_le_bytes());
    }
    payload.extend_from_slice(bytes);
}

impl Wal {
    /// Opens the journal in `dir` (creating it if need be), reads back every op in it,
    /// drops a torn write at its tail, and readies the newest segment for appending.
    pub fn open(dir: &Path) -> io::Result<(Wal, Replay)> {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let lock = open_file(&dir.join("LOCK"), true)?;
        lock_exclusively(&lock).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "{} is in use by another process: is this node already running?",
                        dir.display()
                    ),
                )
            } else {
                e
            }
        })?;
        let committed = open_file(&dir.join("committed"), true)?;
        let stored_committed = read_committed(&committed)?;
        let paths = list_segments(dir)?;
        let mut replay = Replay {
            ops: Vec::new(),
            committed: stored_committed,
        };
        let mut segments = BTreeMap::new();
        let mut tail = None;
        let newest = paths.keys().next_back().copied();
        for (&seq, path) in &paths {
            let bytes = std::fs::read(path)?;
            let last = Some(seq) == newest;
            let (payloads, end) = records(&bytes, last)
                .map_err(|why| corrupt(format!("segment {}: {why}", path.display())))?;
            let mut highest = 0;
            for payload in payloads {
                for op in ops(payload)
                    .map_err(|why| corrupt(format!("segment {}: {why}", path.display())))?
                {
                    if let WalOp::Entry { index, .. } = op {
                        highest = highest.max(index);
                    }
                    replay.ops.push(op);
                }
            }
            segments.insert(seq, highest);
            if last {
                tail = Some((seq, end, bytes.len() as u64));
            }
        }
        let mut wal = match tail {
            Some((seq, end, len)) => Wal::resume(dir, seq, end, len, lock, committed, segments)?,
            None => Wal::fresh(dir, lock, committed)?,
        };
        for op in &replay.ops {
            wal.track(op);
        }
        Ok((wal, replay))
    }

    /// Readies segment `seq` for appending after its last good record, dropping a torn one.
    fn resume(
        dir: &Path,
        seq: u64,
        end: End,
        len: u64,
        lock: File,
        committed: File,
        segments: BTreeMap<u64, u64>,
    ) -> io::Result<Wal> {
        let file = open_file(&dir.join(segment_name(seq)), false)?;
        let offset = match end {
            End::Clean(at) => at as u64,
            End::Torn(at) => {
                tracing::warn!(
                    segment = seq,
                    at,
                    dropped = len - at as u64,
                    "dropped a torn write at the log's tail: it was never acknowledged"
                );
                file.set_len(at as u64)?;
                at as u64
            }
        };
        let allocated = len.max(SEGMENT_BYTES);
        preallocate(&file, allocated)?;
        file.sync_all()?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segments,
            file,
            seq,
            offset,
            allocated,
            vote: None,
            purge: None,
            committed,
            broken: None,
            _lock: lock,
        })
    }

    /// A journal with its first, empty segment.
    fn fresh(dir: &Path, lock: File, committed: File) -> io::Result<Wal> {
        let file = Wal::create_segment(dir, 1, SEGMENT_BYTES)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segments: BTreeMap::from([(1, 0)]),
            file,
            seq: 1,
            offset: 0,
            allocated: SEGMENT_BYTES,
            vote: None,
            purge: None,
            committed,
            broken: None,
            _lock: lock,
        })
    }

    fn create_segment(dir: &Path, seq: u64, len: u64) -> io::Result<File> {
        let path = dir.join(segment_name(seq));
        let file = open_file(&path, true)?;
        if let Err(e) = preallocate(&file, len).and_then(|()| file.sync_all()) {
            // Not left behind half made: the next start would read it as the newest segment.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        sync_dir(dir)?;
        Ok(file)
    }

    /// Keeps what a new segment must start with up to date.
    fn track<B: AsRef<[u8]>>(&mut self, op: &WalOp<B>) {
        match op {
            WalOp::Vote(bytes) => self.vote = Some(bytes.as_ref().to_vec()),
            WalOp::Purge { upto, bytes } => self.purge = Some((*upto, bytes.as_ref().to_vec())),
            WalOp::Entry { .. } | WalOp::Truncate { .. } => {}
        }
    }

    /// Writes `ops` as one record and returns once it is on disk (one fdatasync). After a
    /// purge, deletes the segments that hold nothing unpurged.
    pub fn write(&mut self, ops: &[WalOp<&[u8]>]) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!(
                "the log is not written to after an earlier failed write ({why})"
            )));
        }
        let result = self.write_record(ops);
        if let Err(e) = &result {
            self.broken = Some(e.to_string());
        }
        result
    }

    fn write_record(&mut self, ops: &[WalOp<&[u8]>]) -> io::Result<()> {
        let size: usize = ops.iter().map(op_size).sum();
        let head = if self.offset == 0 {
            self.checkpoint().len()
        } else {
            0
        };
        if self.offset + aligned(HEADER + head + size) as u64 > self.allocated {
            self.roll(self.checkpoint().len() + size)?;
        }
        // A segment's first record starts with the vote and the purge point, whether the
        // segment was just made or found empty on start (a crash right after making it), so
        // that the segments before it can go once everything in them is purged.
        let mut payload = if self.offset == 0 {
            self.checkpoint()
        } else {
            Vec::new()
        };
        payload.reserve(size);
        for op in ops {
            push_op(&mut payload, op);
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("a log write of over 4 GiB"))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32(&payload).to_le_bytes());
        let header_crc = crc32(&record[..8]);
        record.extend_from_slice(&header_crc.to_le_bytes());
        record.extend_from_slice(&payload);
        record.resize(aligned(record.len()), 0);
        self.file.write_all_at(&record, self.offset)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        let mut purged = None;
        for op in ops {
            if let WalOp::Entry { index, .. } = op {
                let highest = self.segments.entry(self.seq).or_default();
                *highest = (*highest).max(*index);
            }
            if let WalOp::Purge { upto, .. } = op {
                purged = Some(*upto);
            }
            self.track(op);
        }
        if let Some(upto) = purged {
            // The record is durable whatever happens here: a segment not deleted now is
            // deleted at a later purge.
            if let Err(e) = self.delete_purged(upto) {
                tracing::warn!(error = %e, "could not delete purged log segments");
            }
        }
        Ok(())
    }

    /// The ops a new segment starts with: the vote and the purge point as they stand.
    fn checkpoint(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        if let Some(vote) = &self.vote {
            push_op(&mut payload, &WalOp::Vote(vote.as_slice()));
        }
        if let Some((upto, bytes)) = &self.purge {
            push_op(
                &mut payload,
                &WalOp::Purge {
                    upto: *upto,
                    bytes: bytes.as_slice(),
                },
            );
        }
        payload
    }

    /// Moves to a new segment, big enough for a record of `size` payload bytes.
    fn roll(&mut self, size: usize) -> io::Result<()> {
        let len = SEGMENT_BYTES.max(aligned(HEADER + size) as u64);
        let seq = self.seq + 1;
        self.file = Wal::create_segment(&self.dir, seq, len)?;
        self.seq = seq;
        self.segments.insert(seq, 0);
        self.offset = 0;
        self.allocated = len;
        Ok(())
    }

    /// Deletes the oldest segments while everything in them is purged (never the current one).
    fn delete_purged(&mut self, upto: u64) -> io::Result<()> {
        let mut deleted = false;
        while let Some((&seq, &highest)) = self.segments.first_key_value() {
            if seq == self.seq || highest > upto {
                break;
            }
            std::fs::remove_file(self.dir.join(segment_name(seq)))?;
            self.segments.remove(&seq);
            deleted = true;
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Overwrites the stored commit index; not fsynced (see the module's comment). Call only
    /// after the entries it covers are written.
    pub fn save_committed(&self, bytes: &[u8]) -> io::Result<()> {
        if let Some(why) = &self.broken {
            // The entries it covers may be among those whose write failed.
            return Err(io::Error::other(format!(
                "the commit index is not written after a failed log write ({why})"
            )));
        }
        let mut block = [0u8; COMMITTED_BYTES];
        let len = bytes.len();
        if len + 4 > COMMITTED_BYTES {
            return Err(io::Error::other("a commit index too long to store"));
        }
        block[..4].copy_from_slice(&(len as u32).to_le_bytes());
        block[4..4 + len].copy_from_slice(bytes);
        self.committed.write_all_at(&block, 0)
    }

    /// The segments' sequence numbers, oldest first (for tests and diagnostics).
    pub fn segments(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }
}

fn op_size(op: &WalOp<&[u8]>) -> usize {
    5 + match op {
        WalOp::Entry { bytes, .. } | WalOp::Purge { bytes, .. } => 8 + bytes.len(),
        WalOp::Vote(bytes) => bytes.len(),
        WalOp::Truncate { .. } => 8,
    }
}

/// The stored commit index's bytes, if one was stored.
fn read_committed(file: &File) -> io::Result<Option<Vec<u8>>> {
    let mut block = Vec::new();
    io::Read::read_to_end(&mut &*file, &mut block)?;
    if all_zero(&block) {
        return Ok(None);
    }
    let len = block
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| corrupt("the commit index file is cut short".into()))?;
    block
        .get(4..4 + len)
        .map(|b| Some(b.to_vec()))
        .ok_or_else(|| corrupt("the commit index file is cut short".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, fill: u8, len: usize) -> (u64, Vec<u8>) {
        (index, vec![fill; len])
    }

    fn write_entries(wal: &mut Wal, entries: &[(u64, Vec<u8>)]) {
        let ops: Vec<_> = entries
            .iter()
            .map(|(index, bytes)| WalOp::Entry {
                index: *index,
                bytes: bytes.as_slice(),
            })
            .collect();
        wal.write(&ops).expect("write");
    }

    fn indices(replay: &Replay) -> Vec<u64> {
        replay
            .ops
            .iter()
            .filter_map(|op| match op {
                WalOp::Entry { index, .. } => Some(*index),
                _ => None,
            })
            .collect()
    }

    /// The newest segment's path and where its data ends (its last non-zero byte + 1).
    fn tail(dir: &Path) -> (PathBuf, usize) {
        let (_, path) = list_segments(dir)
            .expect("list")
            .pop_last()
            .expect("a segment");
        let bytes = std::fs::read(&path).expect("read");
        let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
        (path, end)
    }

    fn three_records(dir: &Path, last_len: usize) {
        let (mut wal, _) = Wal::open(dir).expect("open");
        write_entries(&mut wal, &[entry(1, 1, 100), entry(2, 2, 100)]);
        write_entries(&mut wal, &[entry(3, 3, 100)]);
        write_entries(&mut wal, &[entry(4, 4, last_len), entry(5, 5, 10)]);
    }

    #[test]
    fn what_is_written_is_read_back_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (mut wal, replay) = Wal::open(dir.path()).expect("open");
            assert!(replay.ops.is_empty() && replay.committed.is_none());
            wal.write(&[WalOp::Vote(b"v1")]).expect("vote");
            write_entries(&mut wal, &[entry(1, 1, 10), entry(2, 2, 10)]);
            wal.write(&[WalOp::Truncate { from: 2 }]).expect("truncate");
            wal.save_committed(b"c1").expect("committed");
        }
        let (_, replay) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(
            replay.ops,
            vec![
                WalOp::Vote(b"v1".to_vec()),
                WalOp::Entry {
                    index: 1,
                    bytes: vec![1; 10]
                },
                WalOp::Entry {
                    index: 2,
                    bytes: vec![2; 10]
                },
                WalOp::Truncate { from: 2 },
            ]
        );
        assert_eq!(replay.committed, Some(b"c1".to_vec()));
    }

    /// Goal: a write cut short mid-record (the file ends inside it) is dropped, everything
    /// before it is kept, and the journal appends after what it kept.
    #[test]
    fn a_torn_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("dir");
        three_records(dir.path(), 100);
        let (path, end) = tail(dir.path());
        let file = open_file(&path, false).expect("segment");
        file.set_len((end - 40) as u64).expect("truncate");
        drop(file);
        {
            let (mut wal, replay) = Wal::open(dir.path()).expect("recovers");
            assert_eq!(indices(&replay), vec![1, 2, 3]);
            write_entries(&mut wal, &[entry(4, 9, 10)]);
        }
        let (_, replay) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(indices(&replay), vec![1, 2, 3, 4]);
    }

    /// Goal: a record whose last sectors never reached the disk (zeros, as a preallocated
    /// file reads) is torn, and dropped.
    #[test]
    fn a_record_with_a_zeroed_sector_at_the_tail_is_torn() {
        let dir = tempfile::tempdir().expect("dir");
        three_records(dir.path(), 3_000);
        let (_, end) = tail(dir.path());
        zero_in_newest_segment(dir.path(), end - 1_500, 1_500);
        let (_, replay) = Wal::open(dir.path()).expect("recovers");
        assert_eq!(indices(&replay), vec![1, 2, 3]);
    }

    /// Goal: a flipped byte is corruption wherever it is, in the last record too: the
    /// journal refuses to open rather than drop an acknowledged entry.
    #[test]
    fn a_flipped_byte_is_corruption_not_a_torn_write() {
        for record in [0usize, 2] {
            let dir = tempfile::tempdir().expect("dir");
            three_records(dir.path(), 100);
            let (path, end) = tail(dir.path());
            let at = if record == 0 { 40 } else { end - 20 };
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[at] ^= 0x20;
            std::fs::write(&path, bytes).expect("write");
            let err = Wal::open(dir.path()).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(err.to_string().contains("checksum"), "{err}");
        }
    }

    /// Goal: new segments start with the vote and the purge point, and segments that hold
    /// only purged entries are deleted; what is left reads back the same.
    #[test]
    fn purged_segments_are_deleted_and_the_vote_survives_them() {
        let dir = tempfile::tempdir().expect("dir");
        let big = (SEGMENT_BYTES / 3) as usize;
        {
            let (mut wal, _) = Wal::open(dir.path()).expect("open");
            wal.write(&[WalOp::Vote(b"v1")]).expect("vote");
            for index in 1..=7 {
                write_entries(&mut wal, &[entry(index, index as u8, big)]);
            }
            assert!(wal.segments().len() >= 3, "{:?}", wal.segments());
            wal.write(&[WalOp::Purge {
                upto: 5,
                bytes: b"p5",
            }])
            .expect("purge");
            let left = wal.segments();
            assert!(left.len() <= 2, "{left:?}");
        }
        let (_, replay) = Wal::open(dir.path()).expect("reopen");
        assert!(replay.ops.contains(&WalOp::Vote(b"v1".to_vec())));
        assert_eq!(
            replay.ops.last(),
            Some(&WalOp::Purge {
                upto: 5,
                bytes: b"p5".to_vec()
            })
        );
        let kept = indices(&replay);
        assert!(kept.ends_with(&[6, 7]), "{kept:?}");
    }

    /// Overwrites `len` bytes at `at` in the newest segment with zeros: what a preallocated
    /// file reads where a write never reached the disk.
    fn zero_in_newest_segment(dir: &Path, at: usize, len: usize) {
        let (path, _) = tail(dir);
        let file = open_file(&path, false).expect("segment");
        file.write_all_at(&vec![0u8; len], at as u64).expect("zero");
    }

    /// Where each record of the newest segment starts.
    fn record_starts(dir: &Path) -> Vec<usize> {
        let (path, end) = tail(dir);
        let bytes = std::fs::read(path).expect("read");
        let mut starts = Vec::new();
        let mut at = 0;
        while at < end {
            starts.push(at);
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
            at += aligned(HEADER + len as usize);
        }
        starts
    }

    /// Goal: a record whose header never reached the disk (zeros, aligned so that it cannot
    /// be half written) while the rest of it did is torn, not corrupt.
    #[test]
    fn a_record_whose_header_never_landed_is_torn() {
        let dir = tempfile::tempdir().expect("dir");
        three_records(dir.path(), 3_000);
        let last = *record_starts(dir.path()).last().expect("records");
        assert_eq!(last % ALIGN, 0);
        zero_in_newest_segment(dir.path(), last, HEADER);
        let (_, replay) = Wal::open(dir.path()).expect("recovers");
        assert_eq!(indices(&replay), vec![1, 2, 3]);
    }

    /// Goal: a crash between making a segment and writing to it leaves an empty newest
    /// segment; the first record written there still carries the vote, so deleting the
    /// segments before it (once purged) keeps the vote.
    #[test]
    fn the_vote_survives_a_crash_between_making_a_segment_and_writing_it() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (mut wal, _) = Wal::open(dir.path()).expect("open");
            wal.write(&[WalOp::Vote(b"v7")]).expect("vote");
            write_entries(&mut wal, &[entry(1, 1, 10), entry(2, 2, 10)]);
        }
        // The crash: segment 2 made (preallocated, empty), nothing written to it.
        let empty = open_file(&dir.path().join(segment_name(2)), true).expect("segment 2");
        preallocate(&empty, SEGMENT_BYTES).expect("preallocate");
        drop(empty);
        {
            let (mut wal, replay) = Wal::open(dir.path()).expect("reopen");
            assert_eq!(indices(&replay), vec![1, 2]);
            write_entries(&mut wal, &[entry(3, 3, 10)]);
            wal.write(&[WalOp::Purge {
                upto: 2,
                bytes: b"p2",
            }])
            .expect("purge");
            assert_eq!(wal.segments(), vec![2], "segment 1 is purged");
        }
        let (_, replay) = Wal::open(dir.path()).expect("reopen");
        assert!(
            replay.ops.contains(&WalOp::Vote(b"v7".to_vec())),
            "the vote is gone: {:?}",
            replay.ops
        );
    }

    #[test]
    fn a_second_process_cannot_open_the_same_journal() {
        let dir = tempfile::tempdir().expect("dir");
        let _first = Wal::open(dir.path()).expect("open");
        let err = Wal::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("already running"), "{err}");
    }
}
