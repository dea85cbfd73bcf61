//! Which seats each apply touched, for watchers (`WatchSeats`): a bounded journal of recent
//! change sets by applied index, and a broadcast of new ones.
//!
//! Not replicated and not stored: every node builds its own from what it applies. A change
//! set names seats, not their new state; a watcher reads the state when it sends, so it can
//! never show a seat older than the index it reports. After a restart or a snapshot install
//! the journal starts again, and a watcher asking for changes older than it holds gets the
//! whole seat map instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::limits;

/// The seats touched by the commands applied up to `index` (since the previous set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub index: u64,
    /// The state was replaced whole (a snapshot was installed): every seat may have changed.
    pub reset: bool,
    /// (event, seat id), each at most once.
    pub seats: Vec<(String, String)>,
}

struct Journal {
    sets: VecDeque<Arc<ChangeSet>>,
    /// Every change after this index, up to the newest set, is in `sets`.
    start: u64,
    /// Seat changes in `sets`, all told.
    seats: usize,
}

pub struct Changes {
    journal: Mutex<Journal>,
    tx: broadcast::Sender<Arc<ChangeSet>>,
}

/// What a watcher resuming after an index gets from the journal.
pub enum Since {
    /// The sets after the index, oldest first.
    Sets(Vec<Arc<ChangeSet>>),
    /// The journal no longer reaches back that far: read the whole map.
    TooOld,
}

impl Changes {
    /// A journal that starts at `index`: the state already applied is not in it.
    pub fn new(index: u64) -> Changes {
        let (tx, _) = broadcast::channel(limits::WATCH_BROADCAST_SETS);
        Changes {
            journal: Mutex::new(Journal {
                sets: VecDeque::new(),
                start: index,
                seats: 0,
            }),
            tx,
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        // Nothing panics while holding it, so a poisoned lock is still whole.
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a set and tells every watcher. Call after the state shows it.
    pub fn publish(&self, set: ChangeSet) {
        let set = Arc::new(set);
        {
            let mut journal = self.journal();
            if set.reset {
                journal.sets.clear();
                journal.start = set.index;
                journal.seats = 0;
            } else {
                journal.sets.push_back(set.clone());
                journal.seats += set.seats.len();
                // Bounded by sets and by seats: a set of one entry may name thousands.
                while journal.sets.len() > limits::WATCH_JOURNAL_SETS
                    || journal.seats > limits::WATCH_JOURNAL_SEATS
                {
                    let Some(old) = journal.sets.pop_front() else {
                        break;
                    };
                    journal.start = old.index;
                    journal.seats -= old.seats.len();
                }
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(set);
    }

    /// New sets from now on. Subscribe before reading the journal or the state, so nothing
    /// published in between is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeSet>> {
        self.tx.subscribe()
    }

    /// The sets after `index`.
    pub fn since(&self, index: u64) -> Since {
        let journal = self.journal();
        if index < journal.start {
            return Since::TooOld;
        }
        Since::Sets(
            journal
                .sets
                .iter()
                .filter(|set| set.index > index)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(index: u64, seat: &str) -> ChangeSet {
        ChangeSet {
            index,
            reset: false,
            seats: vec![("demo".into(), seat.into())],
        }
    }

    fn indexes(since: Since) -> Option<Vec<u64>> {
        match since {
            Since::Sets(sets) => Some(sets.iter().map(|s| s.index).collect()),
            Since::TooOld => None,
        }
    }

    #[test]
    fn a_watcher_resumes_from_any_index_the_journal_still_holds() {
        let changes = Changes::new(10);
        changes.publish(set(12, "S1"));
        changes.publish(set(15, "S2"));
        assert_eq!(indexes(changes.since(10)), Some(vec![12, 15]));
        assert_eq!(indexes(changes.since(12)), Some(vec![15]));
        assert_eq!(indexes(changes.since(15)), Some(vec![]));
        // Before the journal began: only the whole map can bring the watcher up to date.
        assert_eq!(indexes(changes.since(9)), None);
    }

    #[test]
    fn the_journal_is_bounded_and_forgets_the_oldest() {
        let changes = Changes::new(0);
        let n = limits::WATCH_JOURNAL_SETS as u64 + 5;
        for i in 1..=n {
            changes.publish(set(i, "S1"));
        }
        assert_eq!(indexes(changes.since(4)), None);
        let kept = indexes(changes.since(5)).expect("index 5 is the journal's start");
        assert_eq!(kept.len(), limits::WATCH_JOURNAL_SETS);
    }

    #[test]
    fn the_journal_is_bounded_by_the_seats_it_names_too() {
        let changes = Changes::new(0);
        let big = |index: u64| ChangeSet {
            index,
            reset: false,
            seats: (0..limits::WATCH_JOURNAL_SEATS / 2)
                .map(|n| ("demo".to_string(), format!("S{n}")))
                .collect(),
        };
        for i in 1..=3 {
            changes.publish(big(i));
        }
        // Three halves are more than the bound: the oldest went.
        assert_eq!(indexes(changes.since(0)), None);
        assert_eq!(indexes(changes.since(1)), Some(vec![2, 3]));
        // One set larger than the whole bound is not kept either.
        changes.publish(ChangeSet {
            index: 4,
            reset: false,
            seats: vec![("demo".into(), "S1".into()); limits::WATCH_JOURNAL_SEATS + 1],
        });
        assert_eq!(indexes(changes.since(3)), None);
        assert_eq!(indexes(changes.since(4)), Some(vec![]));
    }

    #[test]
    fn a_reset_empties_the_journal_and_reaches_watchers() {
        let changes = Changes::new(0);
        let mut rx = changes.subscribe();
        changes.publish(set(3, "S1"));
        changes.publish(ChangeSet {
            index: 40,
            reset: true,
            seats: Vec::new(),
        });
        assert_eq!(indexes(changes.since(3)), None);
        assert_eq!(indexes(changes.since(40)), Some(vec![]));
        assert_eq!(rx.try_recv().map(|s| s.index), Ok(3));
        assert!(rx.try_recv().is_ok_and(|s| s.reset));
    }
}
