//! The request ids a client gives its writes when the caller names none: the ids of one
//! client session (`domain::request_id::SessionKey`), so that a retry is recognised however many
//! other bookings the cluster takes meanwhile.
//!
//! Each id carries the lowest number still awaiting its answer: the cluster forgets every
//! outcome below it. An id's number stays "awaited" until the `RequestId` is dropped, that
//! is, until the call that used it has ended, retries and all.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::request_id::SessionKey;

/// One client session: shared by a client's clones.
#[derive(Debug)]
pub(super) struct Session {
    id: u64,
    next: AtomicU64,
    awaited: Mutex<BTreeSet<u64>>,
}

impl Session {
    pub(super) fn new() -> Arc<Session> {
        Arc::new(Session {
            id: rand::random(),
            next: AtomicU64::new(1),
            awaited: Mutex::default(),
        })
    }

    /// The next request's id; its number is awaited until the id is dropped.
    pub(super) fn begin(self: &Arc<Session>) -> RequestId {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let acked = match self.awaited.lock() {
            Ok(mut awaited) => {
                awaited.insert(seq);
                awaited.first().copied().unwrap_or(seq)
            }
            // A panic while holding the lock: acknowledge nothing from now on, which only
            // keeps more outcomes.
            Err(_) => 1,
        };
        let key = SessionKey {
            session: self.id,
            seq,
            acked,
        };
        RequestId {
            session: self.clone(),
            seq,
            text: key.format(),
        }
    }
}

/// A request id in use; dropping it says its answer has arrived.
pub struct RequestId {
    session: Arc<Session>,
    seq: u64,
    text: String,
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl Drop for RequestId {
    fn drop(&mut self) {
        if let Ok(mut awaited) = self.session.awaited.lock() {
            awaited.remove(&self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_acknowledge_what_is_no_longer_awaited() {
        let session = Session::new();
        let read = |id: &RequestId| SessionKey::parse(id).expect("a session id");
        let first = session.begin();
        let second = session.begin();
        assert_eq!((read(&first).seq, read(&first).acked), (1, 1));
        assert_eq!((read(&second).seq, read(&second).acked), (2, 1));
        drop(first);
        let third = session.begin();
        assert_eq!((read(&third).seq, read(&third).acked), (3, 2));
        drop(second);
        drop(third);
        let fourth = session.begin();
        assert_eq!((read(&fourth).seq, read(&fourth).acked), (4, 4));
        assert_eq!(read(&fourth).session, session.id);
        assert!(crate::domain::validate::request_id(&fourth).is_ok());
    }
}
