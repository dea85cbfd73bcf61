//! Exactly-once for the client library's requests, whatever the load: client sessions with
//! sequence numbers (the Raft dissertation, §6.3).
//!
//! A request id of the form `~SESSION.SEQ.ACKED` (hex) names a client session (a random
//! 64-bit number a client picks when it starts), the request's number in it, and the lowest
//! number the client still awaits an answer for. The state keeps, for each (user, session),
//! the outcomes of the requests the client has not yet acknowledged: a retry finds its first
//! outcome however many other requests went by, and an acknowledged outcome is forgotten at
//! once. So what is remembered is bounded by clients and what they have in flight, not by
//! time or by the rate of bookings.
//!
//! A session ends when it has been idle for `SESSION_IDLE_MS` of log time, far longer than
//! any client's retry window (`limits` checks that). While `SESSIONS_MAX` sessions are open,
//! a new one is refused rather than an open one forgotten: forgetting could let a retry act
//! twice, refusing cannot.
//!
//! Any other request id is remembered among the last `DEDUPE_ENTRIES_MAX` (the free-form
//! table in `state.rs`), as ids chosen by people and scripts always were.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::request_id::SessionKey;
use crate::domain::{Outcome, Rejection};
use crate::limits;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Session {
    /// Log time of the last request seen.
    last_ms: u64,
    /// Requests numbered below this were acknowledged: their outcomes are gone.
    acked: u64,
    /// Outcomes of the requests not yet acknowledged, by number.
    outcomes: BTreeMap<u64, Outcome>,
}

/// The open sessions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sessions {
    open: BTreeMap<(String, u64), Session>,
    /// (last used, user, session): the idlest first.
    by_use: BTreeSet<(u64, String, u64)>,
}

impl Sessions {
    /// What is known of request `key` of `scope`'s session: its first outcome if it has
    /// been answered; None if it is new (and there is room for it); a rejection if it may
    /// not be carried out.
    pub(super) fn recall(
        &mut self,
        scope: &str,
        key: &SessionKey,
        now_ms: u64,
    ) -> Result<Option<Outcome>, Rejection> {
        self.expire(now_ms);
        let id = (scope.to_string(), key.session);
        let Some(session) = self.open.get(&id) else {
            if self.open.len() >= limits::SESSIONS_MAX {
                return Err(Rejection::Busy(format!(
                    "the cluster has {} client sessions open, the most it keeps; one closes \
                     after {} minutes idle: try again later",
                    self.open.len(),
                    limits::SESSION_IDLE_MS / 60_000
                )));
            }
            return Ok(None);
        };
        if let Some(first) = session.outcomes.get(&key.seq) {
            let first = first.clone();
            self.touch(id, key.acked, now_ms);
            return Ok(Some(first));
        }
        if key.seq < session.acked {
            return Err(Rejection::Invalid(format!(
                "request {} was answered already, and its client said it had the answer",
                key.format()
            )));
        }
        if session.outcomes.len() >= limits::SESSION_OUTCOMES_MAX {
            return Err(Rejection::Busy(format!(
                "this client has {} requests answered but not acknowledged, the most a \
                 session keeps",
                session.outcomes.len()
            )));
        }
        Ok(None)
    }

    /// Keeps the outcome of request `key` (new: `recall` said so) for its retries.
    pub(super) fn remember(
        &mut self,
        scope: &str,
        key: &SessionKey,
        outcome: Outcome,
        now_ms: u64,
    ) {
        let id = (scope.to_string(), key.session);
        self.open
            .entry(id.clone())
            .or_default()
            .outcomes
            .insert(key.seq, outcome);
        self.touch(id, key.acked, now_ms);
    }

    /// Marks the session used now and forgets what its client acknowledged.
    fn touch(&mut self, id: (String, u64), acked: u64, now_ms: u64) {
        let Some(session) = self.open.get_mut(&id) else {
            return;
        };
        self.by_use.remove(&(session.last_ms, id.0.clone(), id.1));
        session.last_ms = session.last_ms.max(now_ms);
        if acked > session.acked {
            session.acked = acked;
            session.outcomes = session.outcomes.split_off(&acked);
        }
        self.by_use.insert((session.last_ms, id.0, id.1));
    }

    /// Closes the sessions idle for `SESSION_IDLE_MS` or longer at log time `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some((last_ms, scope, session)) = self.by_use.first().cloned() {
            if now_ms.saturating_sub(last_ms) < limits::SESSION_IDLE_MS {
                break;
            }
            self.by_use.pop_first();
            self.open.remove(&(scope, session));
        }
    }

    /// The table's invariants: one use entry per session, within the bounds.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.open.len() != self.by_use.len() || self.open.len() > limits::SESSIONS_MAX {
            return Err(format!(
                "{} sessions open, {} in the use order",
                self.open.len(),
                self.by_use.len()
            ));
        }
        for ((scope, id), session) in &self.open {
            if !self.by_use.contains(&(session.last_ms, scope.clone(), *id)) {
                return Err(format!("session {id:x} of {scope} is not in the use order"));
            }
            let early = session
                .outcomes
                .keys()
                .next()
                .is_some_and(|&s| s < session.acked);
            if early || session.outcomes.len() > limits::SESSION_OUTCOMES_MAX {
                return Err(format!(
                    "session {id:x} of {scope} keeps acknowledged outcomes"
                ));
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: u64, seq: u64, acked: u64) -> SessionKey {
        SessionKey {
            session,
            seq,
            acked,
        }
    }

    /// The point of sessions: an unacknowledged outcome survives any number of other
    /// requests, of other sessions or of the same one.
    #[test]
    fn a_retry_finds_its_outcome_however_many_requests_went_by() {
        let mut s = Sessions::default();
        let first = key(1, 1, 1);
        assert_eq!(s.recall("ann", &first, 0), Ok(None));
        s.remember("ann", &first, Outcome::UserChanged, 0);
        for n in 0..(limits::DEDUPE_ENTRIES_MAX as u64 / 100) {
            let other = key(2 + n % 50, 1 + n, 1 + n);
            assert_eq!(s.recall("bob", &other, n), Ok(None));
            s.remember("bob", &other, Outcome::UserAdded, n);
        }
        for n in 2..1_000 {
            s.remember("ann", &key(1, n, 1), Outcome::UserAdded, 10);
        }
        assert_eq!(s.recall("ann", &first, 20), Ok(Some(Outcome::UserChanged)));
        // Bob's sessions keep only what is not acknowledged: one outcome each.
        s.check().expect("invariants");
        assert_eq!(s.len(), 51);
    }

    #[test]
    fn an_acknowledged_outcome_is_forgotten_and_its_replay_refused() {
        let mut s = Sessions::default();
        s.remember("ann", &key(7, 1, 1), Outcome::UserChanged, 0);
        s.remember("ann", &key(7, 2, 1), Outcome::UserAdded, 0);
        assert_eq!(s.recall("ann", &key(7, 3, 2), 0), Ok(None));
        s.remember("ann", &key(7, 3, 2), Outcome::UserAdded, 0);
        assert!(matches!(
            s.recall("ann", &key(7, 1, 1), 0),
            Err(Rejection::Invalid(_))
        ));
        assert_eq!(
            s.recall("ann", &key(7, 2, 2), 0),
            Ok(Some(Outcome::UserAdded))
        );
        // Another user's session of the same number is another session.
        assert_eq!(s.recall("bob", &key(7, 1, 1), 0), Ok(None));
        s.check().expect("invariants");
    }

    #[test]
    fn idle_sessions_close_and_a_full_table_refuses_new_ones() {
        let mut s = Sessions::default();
        s.remember("ann", &key(1, 1, 1), Outcome::UserChanged, 0);
        let idle = limits::SESSION_IDLE_MS;
        assert_eq!(
            s.recall("ann", &key(1, 1, 1), idle - 1),
            Ok(Some(Outcome::UserChanged))
        );
        assert_eq!(s.recall("bob", &key(2, 1, 1), 2 * idle), Ok(None));
        assert_eq!(s.len(), 0, "ann's session was idle for the whole window");

        let mut s = Sessions::default();
        for n in 0..limits::SESSIONS_MAX as u64 {
            s.remember("ann", &key(n, 1, 1), Outcome::UserChanged, 0);
        }
        assert!(matches!(
            s.recall("ann", &key(u64::MAX, 1, 1), 1),
            Err(Rejection::Busy(_))
        ));
        // An open session goes on.
        assert_eq!(s.recall("ann", &key(3, 2, 2), 1), Ok(None));
        s.check().expect("invariants");
    }
}
