//! A recorded history of booking operations, and the checker that judges it.
//!
//! Each seat is a register: a reservation is a compare-and-set free → holder, a cancel is
//! holder → free. Operations carry their invoke and completion times (microseconds since the
//! run began) and an outcome: `Ok` (acknowledged), `Failed` (a definite refusal: it did not
//! happen) or `Unknown` (a timeout or a lost connection: it may or may not have happened).
//! The checker never answers "unknown": a history passes or it shows violations, each with the
//! few events that prove it.
//!
//! What it checks, per seat:
//! - `double-sale`: two acknowledged reservations of one seat with no cancel that could have
//!   come between them;
//! - `lost-write`: an acknowledged reservation missing at the end with no cancel to explain it;
//! - `cancel-undone`: a seat back in a booking after an acknowledged cancel removed it;
//! - `phantom`: a seat held by a booking no reservation (acknowledged or unknown) asked for;
//! - `stale-read`: a linearizable read that misses a reservation acknowledged before it began;
//! - `vanished`: something a read showed, gone later with no cancel to explain it;
//! - `index-backwards`: a client's linearizable reads going back in applied index;
//! - `duplicate-request`: one request id acknowledged with two different bookings (or holds);
//! - `diverged`: nodes that disagree on the final state.
//!
//! Checkout adds holds: a held seat is read as holding `hd-N`, and a confirmed hold is the
//! booking `bk-N`, so it is a reservation to every rule above (a held seat is no phantom, a
//! hold seen and then gone is not vanished once it may have ended, a linearizable read must
//! show a hold acknowledged before it that cannot have ended). The rules of its own are in
//! `checker/checkout.rs`: `confirmed-late`, `expired-confirmed`, `double-hold`,
//! `lost-confirm` and `double-check-in`.

use std::collections::{BTreeMap, BTreeSet};

mod checkout;

pub use checkout::{CheckedIn, Confirmed, HoldAsk, HoldGiven};

pub type Micros = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Ok(T),
    Failed(String),
    Unknown(String),
}

impl<T> Outcome<T> {
    pub fn ok(&self) -> Option<&T> {
        match self {
            Outcome::Ok(value) => Some(value),
            _ => None,
        }
    }

    /// Ok or unknown: it may have taken effect.
    pub fn maybe_happened(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// Who holds a seat.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holding {
    pub user: String,
    pub booking: String,
}

/// The held seats of the event as one read saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub applied_index: u64,
    pub held: BTreeMap<String, Holding>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelTarget {
    Seats(Vec<String>),
    Booking(String),
}

#[derive(Clone, Debug)]
pub enum Op {
    Reserve {
        user: String,
        request_id: String,
        seats: Vec<String>,
        /// The booking id.
        result: Outcome<String>,
    },
    Cancel {
        user: String,
        request_id: String,
        target: CancelTarget,
        /// The seats freed.
        result: Outcome<Vec<String>>,
    },
    Read {
        linearizable: bool,
        result: Outcome<Snapshot>,
    },
    /// Checkout. Extend, release and check-in carry no request id: the client picks a fresh
    /// one per call (and keeps it over that call's retries). The lengths asked for and the
    /// door's name are there for the excerpts: the rules go by what the replies said.
    Hold {
        user: String,
        request_id: String,
        ask: HoldAsk,
        #[allow(dead_code)]
        duration_ms: u64,
        result: Outcome<HoldGiven>,
    },
    Extend {
        user: String,
        hold: String,
        #[allow(dead_code)]
        duration_ms: u64,
        /// The hold's new expiry (log time, Unix ms).
        result: Outcome<u64>,
    },
    Release {
        user: String,
        hold: String,
        /// The seats given back.
        result: Outcome<Vec<String>>,
    },
    Confirm {
        user: String,
        request_id: String,
        hold: String,
        result: Outcome<Confirmed>,
    },
    CheckIn {
        #[allow(dead_code)]
        door: String,
        booking: String,
        seat: String,
        result: Outcome<CheckedIn>,
    },
}

impl Op {
    /// Whether it was acknowledged, and whether it was refused (neither: unknown).
    fn ended(&self) -> (bool, bool) {
        fn of<T>(result: &Outcome<T>) -> (bool, bool) {
            (result.ok().is_some(), !result.maybe_happened())
        }
        match self {
            Op::Reserve { result, .. } => of(result),
            Op::Cancel { result, .. } => of(result),
            Op::Read { result, .. } => of(result),
            Op::Hold { result, .. } => of(result),
            Op::Extend { result, .. } => of(result),
            Op::Release { result, .. } => of(result),
            Op::Confirm { result, .. } => of(result),
            Op::CheckIn { result, .. } => of(result),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub client: usize,
    pub invoke: Micros,
    pub complete: Micros,
    pub op: Op,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// The state after the faults healed, read linearizably.
    pub final_state: Snapshot,
    /// Each node's own state once it caught up, by node id.
    pub final_by_node: BTreeMap<u64, Snapshot>,
    /// Every ticket of a standing booking at the end, by (booking, seat): its check-in, if any.
    pub final_tickets: BTreeMap<(String, String), Option<CheckedIn>>,
    /// How the history's times relate to log time.
    pub clock: Clock,
}

/// Log time is the nodes' wall clock (made monotonic by the state), and the nodes run on the
/// machine that records the history: a command's log time is at least the wall-clock time
/// the client invoked it. Event times are monotonic microseconds since the run began; this
/// says which Unix time that began at, and how far the two clocks may have drifted apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    pub origin_unix_us: u64,
    pub slack_us: u64,
}

impl Clock {
    /// The Unix time (µs) at event time `t`.
    fn unix_us(&self, t: Micros) -> u64 {
        self.origin_unix_us.saturating_add(t)
    }

    /// The event time at which the wall clock read `unix_ms`, moved earlier by the slack:
    /// nothing recorded before it can have seen log time reach `unix_ms`.
    fn before_unix_ms(&self, unix_ms: u64) -> Micros {
        unix_ms
            .saturating_mul(1000)
            .saturating_sub(self.origin_unix_us)
            .saturating_sub(self.slack_us)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub seat: String,
    pub detail: String,
    /// Indices into `History::events`: the minimal piece of history that shows it.
    pub events: Vec<usize>,
}

/// Counts for the one-line summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
}

impl History {
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for event in &self.events {
            counts.ops += 1;
            let (ok, failed) = event.op.ended();
            match (ok, failed) {
                (true, _) => counts.ok += 1,
                (false, true) => counts.failed += 1,
                (false, false) => counts.unknown += 1,
            }
        }
        counts
    }

    /// The events shown, one a line, for a violation report.
    pub fn excerpt(&self, violation: &Violation) -> String {
        let mut out = format!(
            "violation {} on seat {}: {}\n",
            violation.rule, violation.seat, violation.detail
        );
        for &i in &violation.events {
            if let Some(e) = self.events.get(i) {
                out.push_str(&format!(
                    "  #{i} client {} [{} .. {}] us: {:?}\n",
                    e.client, e.invoke, e.complete, e.op
                ));
            }
        }
        out
    }
}

/// An acknowledged reservation of one seat (or a confirmed hold: a booking too). A request id
/// retried after it took effect is one reservation: it may have taken effect from the first
/// attempt's invoke, and was known to have by the first acknowledgement.
struct Acked<'a> {
    index: usize,
    invoke: Micros,
    complete: Micros,
    user: &'a str,
    booking: &'a str,
    via: Via,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Reserve,
    Confirm,
}

/// A cancel that may have taken effect, and what it may have freed.
struct MaybeCancel<'a> {
    index: usize,
    event: &'a Event,
    target: &'a CancelTarget,
    ok: bool,
}

impl MaybeCancel<'_> {
    /// Whether it may have taken effect between `after` and `before` (times).
    fn may_fall_between(&self, after: Micros, before: Micros) -> bool {
        self.event.complete > after && self.event.invoke < before
    }
}

/// A request as its attempts (events with one request id) tell it.
type RequestKey<'a> = (&'static str, &'a str, &'a str);

/// Per request: the earliest invoke of an attempt that may have happened, and the first
/// acknowledgement (the event that completed first among the acknowledged ones).
#[derive(Default)]
struct Requests<'a> {
    first_invoke: BTreeMap<RequestKey<'a>, Micros>,
    first_ok: BTreeMap<RequestKey<'a>, usize>,
}

impl<'a> Requests<'a> {
    fn of(history: &'a History) -> Requests<'a> {
        let mut requests = Requests::default();
        for (i, event) in history.events.iter().enumerate() {
            let Some(key) = request_key(&event.op) else {
                continue;
            };
            let (ok, failed) = event.op.ended();
            if !failed {
                let t = requests.first_invoke.entry(key).or_insert(event.invoke);
                *t = (*t).min(event.invoke);
            }
            if ok {
                let first = requests.first_ok.entry(key).or_insert(i);
                if history.events[*first].complete > event.complete {
                    *first = i;
                }
            }
        }
        requests
    }

    /// Whether event `i` is the first acknowledgement of its request.
    fn is_first_ok(&self, i: usize, op: &'a Op) -> bool {
        request_key(op).is_some_and(|key| self.first_ok.get(&key) == Some(&i))
    }

    /// When the request of `op` (recorded at `invoke`) may first have taken effect.
    fn first_invoke(&self, op: &'a Op, invoke: Micros) -> Micros {
        request_key(op)
            .and_then(|key| self.first_invoke.get(&key).copied())
            .unwrap_or(invoke)
    }
}

/// The request an operation is an attempt of, for those whose request id the client chose.
fn request_key(op: &Op) -> Option<RequestKey<'_>> {
    match op {
        Op::Reserve {
            user, request_id, ..
        } => Some(("reserve", user, request_id)),
        Op::Hold {
            user, request_id, ..
        } => Some(("hold", user, request_id)),
        Op::Confirm {
            user, request_id, ..
        } => Some(("confirm", user, request_id)),
        _ => None,
    }
}

struct Index<'a> {
    /// Acknowledged reservations by seat, in order of acknowledgement.
    acked: BTreeMap<&'a str, Vec<Acked<'a>>>,
    cancels: Vec<MaybeCancel<'a>>,
    /// Cancels that may have happened, by (user, seat) and by (user, booking).
    cancels_by_seat: BTreeMap<(&'a str, &'a str), Vec<usize>>,
    cancels_by_booking: BTreeMap<(&'a str, &'a str), Vec<usize>>,
    /// Every (user, seat) a reservation or hold that may have happened asked for.
    asked: BTreeMap<(&'a str, &'a str), Vec<usize>>,
    /// Users with a hold of the best seats that may have happened without saying which.
    asked_any: BTreeSet<&'a str>,
    /// Bookings acknowledged, by id: the event index.
    bookings: BTreeMap<&'a str, usize>,
    /// Acknowledged holds, by id.
    holds: checkout::Holds<'a>,
    requests: Requests<'a>,
}

impl<'a> Index<'a> {
    /// The cancels that may have freed `seat` from `booking` of `user`.
    fn cancels_of<'s>(
        &'s self,
        seat: &'s str,
        user: &'s str,
        booking: &'s str,
    ) -> impl Iterator<Item = &'s MaybeCancel<'a>> + 's {
        let by_seat = self
            .cancels_by_seat
            .get(&(user, seat))
            .into_iter()
            .flatten();
        let by_booking = self
            .cancels_by_booking
            .get(&(user, booking))
            .into_iter()
            .flatten();
        by_seat.chain(by_booking).map(|&i| &self.cancels[i])
    }

    fn ask(&mut self, user: &'a str, seats: &'a [String], i: usize) {
        for seat in seats {
            self.asked.entry((user, seat.as_str())).or_default().push(i);
        }
    }

    /// One acknowledged booking of `seats` (the first acknowledgement of its request).
    fn book(
        &mut self,
        i: usize,
        event: &'a Event,
        acked: (&'a str, &'a str, Via),
        seats: &'a [String],
    ) {
        let (user, booking, via) = acked;
        self.bookings.insert(booking, i);
        let invoke = self.requests.first_invoke(&event.op, event.invoke);
        for seat in seats {
            self.acked.entry(seat.as_str()).or_default().push(Acked {
                index: i,
                invoke,
                complete: event.complete,
                user,
                booking,
                via,
            });
        }
    }
}

fn index(history: &History) -> Index<'_> {
    let requests = Requests::of(history);
    let mut ix = Index {
        acked: BTreeMap::new(),
        cancels: Vec::new(),
        cancels_by_seat: BTreeMap::new(),
        cancels_by_booking: BTreeMap::new(),
        asked: BTreeMap::new(),
        asked_any: BTreeSet::new(),
        bookings: BTreeMap::new(),
        holds: checkout::Holds::of(history, &requests),
        requests,
    };
    for (i, event) in history.events.iter().enumerate() {
        let first_ok = ix.requests.is_first_ok(i, &event.op);
        match &event.op {
            Op::Reserve {
                user,
                seats,
                result,
                ..
            } => {
                if result.maybe_happened() {
                    ix.ask(user, seats, i);
                }
                if let Outcome::Ok(booking) = result {
                    if first_ok {
                        ix.book(i, event, (user, booking, Via::Reserve), seats);
                    }
                }
            }
            Op::Hold {
                user, ask, result, ..
            } => match (ask, result) {
                (_, Outcome::Ok(given)) => ix.ask(user, &given.seats, i),
                (HoldAsk::Seats(seats), Outcome::Unknown(_)) => ix.ask(user, seats, i),
                (HoldAsk::Best(_), Outcome::Unknown(_)) => {
                    ix.asked_any.insert(user);
                }
                (_, Outcome::Failed(_)) => {}
            },
            Op::Confirm {
                user,
                result: Outcome::Ok(confirmed),
                ..
            } if first_ok => {
                let acked = (user.as_str(), confirmed.booking.as_str(), Via::Confirm);
                ix.book(i, event, acked, &confirmed.seats);
            }
            Op::Cancel {
                user,
                target,
                result,
                ..
            } if result.maybe_happened() => {
                let n = ix.cancels.len();
                match target {
                    CancelTarget::Seats(seats) => {
                        for seat in seats {
                            ix.cancels_by_seat.entry((user, seat)).or_default().push(n);
                        }
                    }
                    CancelTarget::Booking(b) => {
                        ix.cancels_by_booking.entry((user, b)).or_default().push(n);
                    }
                }
                ix.cancels.push(MaybeCancel {
                    index: i,
                    event,
                    target,
                    ok: result.ok().is_some(),
                });
            }
            _ => {}
        }
    }
    for acked in ix.acked.values_mut() {
        acked.sort_by_key(|a| a.complete);
    }
    ix
}

/// A state observed: a read's (`event` is its index) or the final one (`event` is None).
struct Observation<'a> {
    event: Option<usize>,
    invoke: Micros,
    complete: Micros,
    linearizable: bool,
    snapshot: &'a Snapshot,
}

/// Every observation, the final state last; sorted by invoke.
fn observations(history: &History) -> Vec<Observation<'_>> {
    let mut out: Vec<Observation> = history
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.op {
            Op::Read {
                linearizable,
                result: Outcome::Ok(snapshot),
            } => Some(Observation {
                event: Some(i),
                invoke: e.invoke,
                complete: e.complete,
                linearizable: *linearizable,
                snapshot,
            }),
            _ => None,
        })
        .collect();
    out.sort_by_key(|o| o.invoke);
    out.push(Observation {
        event: None,
        invoke: Micros::MAX - 1,
        complete: Micros::MAX,
        linearizable: true,
        snapshot: &history.final_state,
    });
    out
}

/// Where one holding of one seat was seen.
struct Seen {
    /// The observation (position in the sorted list) that completed first showing it.
    first: usize,
    /// The linearizable observation with the latest invoke showing it.
    last_linearizable: Option<usize>,
}

fn seen<'a>(observations: &'a [Observation]) -> BTreeMap<(&'a str, &'a Holding), Seen> {
    let mut seen: BTreeMap<(&str, &Holding), Seen> = BTreeMap::new();
    for (n, o) in observations.iter().enumerate() {
        for (seat, holding) in &o.snapshot.held {
            let entry = seen.entry((seat.as_str(), holding)).or_insert(Seen {
                first: n,
                last_linearizable: None,
            });
            if o.complete < observations[entry.first].complete {
                entry.first = n;
            }
            if o.linearizable {
                entry.last_linearizable = Some(n);
            }
        }
    }
    seen
}

pub fn check(history: &History) -> Vec<Violation> {
    let ix = index(history);
    let observations = observations(history);
    let seen = seen(&observations);
    let mut violations = Vec::new();
    duplicate_requests(history, &mut violations);
    double_sales(&ix, &mut violations);
    lost_writes(history, &ix, &mut violations);
    cancels_undone(&ix, &observations, &seen, &mut violations);
    phantoms(&ix, &observations, &seen, &mut violations);
    stale_reads(&ix, &observations, &mut violations);
    vanished(&ix, &observations, &seen, &mut violations);
    index_backwards(history, &mut violations);
    diverged(history, &mut violations);
    checkout::check(history, &ix, &observations, &mut violations);
    violations
}

fn duplicate_requests(history: &History, out: &mut Vec<Violation>) {
    // The first acknowledged outcome of each (kind, user, request id), as text.
    let mut first: BTreeMap<(&str, &str, &str), (usize, String)> = BTreeMap::new();
    for (i, event) in history.events.iter().enumerate() {
        let (kind, user, request_id, outcome, seat) = match &event.op {
            Op::Reserve {
                user,
                request_id,
                seats,
                result: Outcome::Ok(booking),
            } => ("reserve", user, request_id, booking.clone(), seats.first()),
            Op::Cancel {
                user,
                request_id,
                result: Outcome::Ok(freed),
                ..
            } => ("cancel", user, request_id, freed.join(","), freed.first()),
            Op::Hold {
                user,
                request_id,
                result: Outcome::Ok(given),
                ..
            } => (
                "hold",
                user,
                request_id,
                given.id.clone(),
                given.seats.first(),
            ),
            Op::Confirm {
                user,
                request_id,
                result: Outcome::Ok(confirmed),
                ..
            } => (
                "confirm",
                user,
                request_id,
                confirmed.booking.clone(),
                confirmed.seats.first(),
            ),
            _ => continue,
        };
        match first.entry((kind, user, request_id)) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert((i, outcome));
            }
            std::collections::btree_map::Entry::Occupied(entry) if entry.get().1 != outcome => {
                let (j, earlier) = entry.get();
                out.push(Violation {
                    rule: "duplicate-request",
                    seat: seat.cloned().unwrap_or_default(),
                    detail: format!(
                        "{kind} {request_id} of {user} acknowledged as {earlier} and as {outcome}"
                    ),
                    events: vec![*j, i],
                });
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
        }
    }
}

fn double_sales(ix: &Index, out: &mut Vec<Violation>) {
    for (seat, acked) in &ix.acked {
        for (n, a) in acked.iter().enumerate() {
            for b in &acked[n + 1..] {
                if a.booking == b.booking {
                    continue;
                }
                // a before b needs a cancel of a in between, or b before a a cancel of b.
                let a_then_b = ix
                    .cancels_of(seat, a.user, a.booking)
                    .any(|c| c.may_fall_between(a.invoke, b.complete));
                let b_then_a = ix
                    .cancels_of(seat, b.user, b.booking)
                    .any(|c| c.may_fall_between(b.invoke, a.complete));
                if !a_then_b && !b_then_a {
                    out.push(Violation {
                        rule: "double-sale",
                        seat: seat.to_string(),
                        detail: format!(
                            "acknowledged to {} ({}) and to {} ({}) with no cancel between",
                            a.user, a.booking, b.user, b.booking
                        ),
                        events: vec![a.index, b.index],
                    });
                }
            }
        }
    }
}

fn lost_writes(history: &History, ix: &Index, out: &mut Vec<Violation>) {
    for (seat, acked) in &ix.acked {
        for a in acked {
            let held = history.final_state.held.get(*seat);
            if held.is_some_and(|h| h.booking == a.booking) {
                continue;
            }
            let explained = ix
                .cancels_of(seat, a.user, a.booking)
                .any(|c| c.event.complete > a.invoke);
            if !explained {
                // A confirmed hold lost is the checkout's own rule; a reservation lost, the
                // original one.
                let (rule, what) = match a.via {
                    Via::Reserve => ("lost-write", "acknowledged"),
                    Via::Confirm => ("lost-confirm", "confirmed"),
                };
                out.push(Violation {
                    rule,
                    seat: seat.to_string(),
                    detail: format!(
                        "{} {what} to {} is not in the final state (held: {held:?}) and was never cancelled",
                        a.booking, a.user
                    ),
                    events: vec![a.index],
                });
            }
        }
    }
}

fn cancels_undone(
    ix: &Index,
    observations: &[Observation],
    seen: &BTreeMap<(&str, &Holding), Seen>,
    out: &mut Vec<Violation>,
) {
    for ((seat, holding), where_seen) in seen {
        let Some(last) = where_seen.last_linearizable else {
            continue;
        };
        let o = &observations[last];
        for c in ix.cancels_of(seat, &holding.user, &holding.booking) {
            if !c.ok || o.invoke <= c.event.complete {
                continue;
            }
            let undone = match c.target {
                CancelTarget::Booking(b) => *b == holding.booking,
                // The seat is back in a booking acknowledged before the cancel began: the
                // cancel removed that very booking's hold on it.
                CancelTarget::Seats(_) => ix.acked.get(seat).is_some_and(|acked| {
                    acked
                        .iter()
                        .any(|a| a.booking == holding.booking && a.complete < c.event.invoke)
                }),
            };
            if undone {
                let mut events = vec![c.index];
                events.extend(o.event);
                events.extend(ix.bookings.get(holding.booking.as_str()));
                out.push(Violation {
                    rule: "cancel-undone",
                    seat: seat.to_string(),
                    detail: format!(
                        "{} of {} is back after an acknowledged cancel",
                        holding.booking, holding.user
                    ),
                    events,
                });
            }
        }
    }
}

fn phantoms(
    ix: &Index,
    observations: &[Observation],
    seen: &BTreeMap<(&str, &Holding), Seen>,
    out: &mut Vec<Violation>,
) {
    for ((seat, holding), where_seen) in seen {
        let user = holding.user.as_str();
        if !ix.asked.contains_key(&(user, *seat)) && !ix.asked_any.contains(user) {
            out.push(Violation {
                rule: "phantom",
                seat: seat.to_string(),
                detail: format!(
                    "held by {} ({}) though {} never asked for it",
                    holding.user, holding.booking, holding.user
                ),
                events: observations[where_seen.first].event.into_iter().collect(),
            });
        }
    }
}

fn stale_reads(ix: &Index, observations: &[Observation], out: &mut Vec<Violation>) {
    for o in observations
        .iter()
        .filter(|o| o.linearizable && o.event.is_some())
    {
        for (seat, acked) in &ix.acked {
            // Walk back from the last reservation acknowledged before the read began: each
            // one the read misses needs a cancel that may precede the read; one it shows
            // ends the walk (older ones were cancelled before it, or are double sales).
            let before = acked.partition_point(|a| a.complete < o.invoke);
            for a in acked[..before].iter().rev() {
                if o.snapshot
                    .held
                    .get(*seat)
                    .is_some_and(|h| h.booking == a.booking)
                {
                    break;
                }
                let explained = ix
                    .cancels_of(seat, a.user, a.booking)
                    .any(|c| c.event.invoke < o.complete);
                if !explained {
                    out.push(Violation {
                        rule: "stale-read",
                        seat: seat.to_string(),
                        detail: format!(
                            "a linearizable read at index {} misses {} of {}, acknowledged before it began",
                            o.snapshot.applied_index, a.booking, a.user
                        ),
                        events: [Some(a.index), o.event].into_iter().flatten().collect(),
                    });
                    break;
                }
            }
        }
    }
}

fn vanished(
    ix: &Index,
    observations: &[Observation],
    seen: &BTreeMap<(&str, &Holding), Seen>,
    out: &mut Vec<Violation>,
) {
    for ((seat, holding), where_seen) in seen {
        let earlier = &observations[where_seen.first];
        // Any cancel that may free it excuses every observation that completes after the
        // cancel began; a hold, anything that may end it.
        let cancelled_from = ix
            .cancels_of(seat, &holding.user, &holding.booking)
            .map(|c| c.event.invoke)
            .min()
            .unwrap_or(Micros::MAX);
        let excused_from = cancelled_from.min(ix.holds.may_end_from(&holding.booking));
        let from = observations.partition_point(|o| o.invoke <= earlier.complete);
        let gone = observations[from..]
            .iter()
            .filter(|o| o.linearizable && o.complete <= excused_from)
            .find(|o| o.snapshot.held.get(*seat) != Some(*holding));
        if let Some(later) = gone {
            out.push(Violation {
                rule: "vanished",
                seat: seat.to_string(),
                detail: format!(
                    "{} of {} was seen at index {}, then gone at index {} with no cancel",
                    holding.booking,
                    holding.user,
                    earlier.snapshot.applied_index,
                    later.snapshot.applied_index
                ),
                events: [earlier.event, later.event].into_iter().flatten().collect(),
            });
        }
    }
}

fn index_backwards(history: &History, out: &mut Vec<Violation>) {
    let mut by_client: BTreeMap<usize, Vec<(usize, &Event, u64)>> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        if let Op::Read {
            linearizable: true,
            result: Outcome::Ok(snapshot),
        } = &e.op
        {
            by_client
                .entry(e.client)
                .or_default()
                .push((i, e, snapshot.applied_index));
        }
    }
    for reads in by_client.values() {
        for (i, a, index_a) in reads {
            for (j, b, index_b) in reads {
                if a.complete < b.invoke && index_b < index_a {
                    out.push(Violation {
                        rule: "index-backwards",
                        seat: String::new(),
                        detail: format!("client {} read index {index_a}, then {index_b}", a.client),
                        events: vec![*i, *j],
                    });
                }
            }
        }
    }
}

fn diverged(history: &History, out: &mut Vec<Violation>) {
    for (node, state) in &history.final_by_node {
        if state.held != history.final_state.held {
            let differs = history
                .final_state
                .held
                .keys()
                .chain(state.held.keys())
                .find(|seat| history.final_state.held.get(*seat) != state.held.get(*seat))
                .cloned()
                .unwrap_or_default();
            out.push(Violation {
                rule: "diverged",
                seat: differs.clone(),
                detail: format!(
                    "node {node} holds {:?}, the cluster {:?}",
                    state.held.get(&differs),
                    history.final_state.held.get(&differs)
                ),
                events: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made histories: each rule must reject the history it names, and accept the
    //! histories that differ only by what explains them.

    use super::*;

    fn holding(user: &str, booking: &str) -> Holding {
        Holding {
            user: user.into(),
            booking: booking.into(),
        }
    }

    fn reserve(
        client: usize,
        t: (u64, u64),
        user: &str,
        seat: &str,
        result: Outcome<String>,
    ) -> Event {
        Event {
            client,
            invoke: t.0,
            complete: t.1,
            op: Op::Reserve {
                user: user.into(),
                request_id: format!("r-{user}-{seat}-{}", t.0),
                seats: vec![seat.into()],
                result,
            },
        }
    }

    fn cancel(
        client: usize,
        t: (u64, u64),
        user: &str,
        seat: &str,
        result: Outcome<Vec<String>>,
    ) -> Event {
        Event {
            client,
            invoke: t.0,
            complete: t.1,
            op: Op::Cancel {
                user: user.into(),
                request_id: format!("c-{user}-{seat}-{}", t.0),
                target: CancelTarget::Seats(vec![seat.into()]),
                result,
            },
        }
    }

    fn read(client: usize, t: (u64, u64), index: u64, held: &[(&str, &str, &str)]) -> Event {
        Event {
            client,
            invoke: t.0,
            complete: t.1,
            op: Op::Read {
                linearizable: true,
                result: Outcome::Ok(state(index, held)),
            },
        }
    }

    fn state(index: u64, held: &[(&str, &str, &str)]) -> Snapshot {
        Snapshot {
            applied_index: index,
            held: held
                .iter()
                .map(|(seat, user, booking)| (seat.to_string(), holding(user, booking)))
                .collect(),
        }
    }

    fn rules(history: &History) -> Vec<&'static str> {
        check(history).into_iter().map(|v| v.rule).collect()
    }

    fn ok(b: &str) -> Outcome<String> {
        Outcome::Ok(b.into())
    }

    #[test]
    fn a_clean_history_passes() {
        let history = History {
            events: vec![
                reserve(0, (0, 10), "ana", "A1", ok("bk-1")),
                read(1, (20, 30), 5, &[("A1", "ana", "bk-1")]),
                cancel(0, (40, 50), "ana", "A1", Outcome::Ok(vec!["A1".into()])),
                reserve(1, (60, 70), "bo", "A1", ok("bk-2")),
                reserve(2, (61, 71), "cy", "A1", Outcome::Failed("taken".into())),
            ],
            final_state: state(9, &[("A1", "bo", "bk-2")]),
            final_by_node: BTreeMap::from([(1, state(9, &[("A1", "bo", "bk-2")]))]),
            ..History::default()
        };
        assert_eq!(rules(&history), Vec::<&str>::new());
        assert_eq!(
            history.counts(),
            Counts {
                ops: 5,
                ok: 4,
                failed: 1,
                unknown: 0
            }
        );
    }

    /// A retry of an acknowledged request returns the first outcome, even after a cancel:
    /// it is the same reservation, not a second sale of the seat.
    #[test]
    fn a_retry_after_a_cancel_is_not_a_second_sale() {
        let mut retry = reserve(0, (60, 70), "ana", "A1", ok("bk-1"));
        let mut first = reserve(0, (0, 10), "ana", "A1", ok("bk-1"));
        for e in [&mut first, &mut retry] {
            if let Op::Reserve { request_id, .. } = &mut e.op {
                *request_id = "r1".into();
            }
        }
        let history = History {
            events: vec![
                first,
                cancel(0, (20, 30), "ana", "A1", Outcome::Ok(vec!["A1".into()])),
                retry,
                reserve(1, (80, 90), "bo", "A1", ok("bk-2")),
            ],
            final_state: state(9, &[("A1", "bo", "bk-2")]),
            ..History::default()
        };
        assert_eq!(rules(&history), Vec::<&str>::new());
    }

    #[test]
    fn a_lost_write_is_caught() {
        let history = History {
            events: vec![reserve(0, (0, 10), "ana", "A1", ok("bk-1"))],
            final_state: state(9, &[]),
            ..History::default()
        };
        assert_eq!(rules(&history), vec!["lost-write"]);
        // An unknown cancel by the holder explains it.
        let mut explained = history.clone();
        explained.events.push(cancel(
            0,
            (20, 30),
            "ana",
            "A1",
            Outcome::Unknown("timeout".into()),
        ));
        assert_eq!(rules(&explained), Vec::<&str>::new());
        // Someone else's cancel does not.
        let mut other = history;
        other.events.push(cancel(
            1,
            (20, 30),
            "bo",
            "A1",
            Outcome::Ok(vec!["A1".into()]),
        ));
        assert_eq!(rules(&other), vec!["lost-write"]);
    }

    #[test]
    fn a_double_holder_is_caught() {
        let history = History {
            events: vec![
                reserve(0, (0, 10), "ana", "A1", ok("bk-1")),
                reserve(1, (20, 30), "bo", "A1", ok("bk-2")),
            ],
            final_state: state(9, &[("A1", "bo", "bk-2")]),
            ..History::default()
        };
        let found = rules(&history);
        assert!(found.contains(&"double-sale"), "{found:?}");
        // A cancel of ana's that may fall between them explains both.
        let mut explained = history.clone();
        explained.events.push(cancel(
            0,
            (12, 25),
            "ana",
            "A1",
            Outcome::Ok(vec!["A1".into()]),
        ));
        assert_eq!(rules(&explained), Vec::<&str>::new());
        // A cancel that began after bo's reservation was acknowledged cannot.
        let mut late = history;
        late.events.push(cancel(
            0,
            (40, 50),
            "ana",
            "A1",
            Outcome::Ok(vec!["A1".into()]),
        ));
        assert!(rules(&late).contains(&"double-sale"));
    }

    #[test]
    fn a_stale_read_is_caught() {
        let history = History {
            events: vec![
                reserve(0, (0, 10), "ana", "A1", ok("bk-1")),
                read(1, (20, 30), 3, &[]),
            ],
            final_state: state(9, &[("A1", "ana", "bk-1")]),
            ..History::default()
        };
        assert_eq!(rules(&history), vec!["stale-read"]);
        // A stale (opt-in) read may lag.
        let mut opt_in = history.clone();
        if let Op::Read { linearizable, .. } = &mut opt_in.events[1].op {
            *linearizable = false;
        }
        assert_eq!(rules(&opt_in), Vec::<&str>::new());
        // A read that began before the reservation was acknowledged may miss it.
        let mut concurrent = history;
        concurrent.events[1].invoke = 5;
        assert_eq!(rules(&concurrent), Vec::<&str>::new());
    }

    #[test]
    fn an_undone_cancel_is_caught() {
        let history = History {
            events: vec![
                reserve(0, (0, 10), "ana", "A1", ok("bk-1")),
                cancel(0, (20, 30), "ana", "A1", Outcome::Ok(vec!["A1".into()])),
            ],
            final_state: state(9, &[("A1", "ana", "bk-1")]),
            ..History::default()
        };
        assert_eq!(rules(&history), vec!["cancel-undone"]);
        // A stale (opt-in) read after the cancel may still show the seat held.
        let mut lagging = history.clone();
        lagging.final_state = state(9, &[]);
        let mut stale = read(1, (40, 50), 3, &[("A1", "ana", "bk-1")]);
        if let Op::Read { linearizable, .. } = &mut stale.op {
            *linearizable = false;
        }
        lagging.events.push(stale);
        assert_eq!(rules(&lagging), Vec::<&str>::new());
        // Booking the seat again afterwards is not the cancel coming back.
        let mut again = history;
        again
            .events
            .push(reserve(0, (40, 50), "ana", "A1", ok("bk-7")));
        again.final_state = state(9, &[("A1", "ana", "bk-7")]);
        assert_eq!(rules(&again), Vec::<&str>::new());
    }

    #[test]
    fn a_phantom_and_a_vanished_value_are_caught() {
        let phantom = History {
            events: vec![read(0, (0, 10), 4, &[("A1", "eve", "bk-9")])],
            final_state: state(9, &[("A1", "eve", "bk-9")]),
            ..History::default()
        };
        assert!(rules(&phantom).contains(&"phantom"));
        // An unknown reservation explains a holding seen later.
        let mut unknown = phantom.clone();
        unknown.events.insert(
            0,
            reserve(0, (0, 5), "eve", "A1", Outcome::Unknown("timeout".into())),
        );
        assert_eq!(rules(&unknown), Vec::<&str>::new());
        // Seen, then gone at the end with no cancel.
        let mut vanished = unknown;
        vanished.final_state = state(9, &[]);
        assert_eq!(rules(&vanished), vec!["vanished"]);
    }

    #[test]
    fn duplicates_index_regressions_and_divergence_are_caught() {
        let mut first = reserve(0, (0, 10), "ana", "A1", ok("bk-1"));
        let mut retry = reserve(0, (20, 30), "ana", "A2", ok("bk-2"));
        for e in [&mut first, &mut retry] {
            if let Op::Reserve { request_id, .. } = &mut e.op {
                *request_id = "same".into();
            }
        }
        let history = History {
            events: vec![
                first,
                retry,
                read(
                    1,
                    (40, 50),
                    8,
                    &[("A1", "ana", "bk-1"), ("A2", "ana", "bk-2")],
                ),
                read(
                    1,
                    (60, 70),
                    7,
                    &[("A1", "ana", "bk-1"), ("A2", "ana", "bk-2")],
                ),
            ],
            final_state: state(9, &[("A1", "ana", "bk-1"), ("A2", "ana", "bk-2")]),
            final_by_node: BTreeMap::from([(3, state(9, &[("A1", "ana", "bk-1")]))]),
            ..History::default()
        };
        let found = rules(&history);
        for rule in ["duplicate-request", "index-backwards", "diverged"] {
            assert!(found.contains(&rule), "{rule} not in {found:?}");
        }
    }
}
