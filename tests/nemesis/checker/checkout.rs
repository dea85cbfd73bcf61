//! The checkout's rules: holds that run out by log time, their confirmation, extension and
//! release, and tickets checked in at the door.
//!
//! A hold's reply gives log time exactly: `created_at_ms` is the log time the hold was made
//! at, `expires_at_ms` when it runs out (an extension only moves it later, up to
//! `latest_expiry_ms`). A confirm's reply carries no log time of the confirm (its booking's
//! `created_at_ms` is the hold's), so the confirm's log time is bounded below by the wall
//! clock when its request was first sent (see [`Clock`]).
//!
//! What it checks, per seat and hold:
//! - `confirmed-late`: a confirm acknowledged though its request was first sent at or after
//!   the latest expiry its hold can have had;
//! - `expired-confirmed`: a confirm acknowledged after its hold was seen over: a refusal
//!   saying it expired (or was released), an acknowledged release, or a linearizable read
//!   without it, all before the confirm was first sent;
//! - `double-hold`: a hold made on a seat while another hold of it (or that hold's booking)
//!   can neither have run out, nor been released, nor cancelled;
//! - `lost-confirm`: a confirmed booking missing at the end and never cancelled (found by
//!   `lost_writes`, with the reservations; a confirmed hold is a booking to every rule there);
//! - `double-check-in`: a ticket accepted at the door twice, or said to be checked in at two
//!   different times (by the acceptance, a refusal of a second scan, or the final tickets);
//! - and, as a `stale-read`, a linearizable read that misses a hold acknowledged before it
//!   began which cannot have ended yet.

use std::collections::BTreeMap;

use super::{Clock, Event, History, Index, Micros, Observation, Op, Outcome, Requests, Violation};

/// What a hold asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldAsk {
    Seats(Vec<String>),
    /// The best this many seats the cluster finds.
    Best(u32),
}

/// A hold as its reply gave it (log times, Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldGiven {
    pub id: String,
    pub seats: Vec<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub latest_expiry_ms: u64,
}

/// The booking a confirm's reply gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmed {
    pub booking: String,
    pub seats: Vec<String>,
}

/// A ticket's check-in: when (log time, Unix ms) and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedIn {
    pub at_ms: u64,
    pub by: String,
}

/// The booking a hold becomes once confirmed: `hd-7` is `bk-7`.
fn booking_of(hold: &str) -> String {
    format!("bk-{}", hold.strip_prefix("hd-").unwrap_or(hold))
}

/// Whether a refusal says the hold was over when it was refused.
fn says_ended(why: &str) -> bool {
    why.contains("expired at") || why.contains("was released")
}

/// Everything the history says of one acknowledged hold.
pub(super) struct HoldFacts<'a> {
    /// The hold's first acknowledgement.
    index: usize,
    user: &'a str,
    given: &'a HoldGiven,
    /// When its request may first have taken effect, and when it was known to have.
    first_invoke: Micros,
    acked: Micros,
    /// Extensions that may have happened (event index and event), with the new expiry if
    /// acknowledged.
    extends: Vec<(usize, &'a Event, Option<u64>)>,
    /// Releases and confirms that may have happened.
    releases: Vec<&'a Event>,
    confirm_tries: Vec<&'a Event>,
    /// Acknowledged releases, and refusals saying the hold was over: event indices.
    released: Vec<usize>,
    refused_ended: Vec<usize>,
    /// Acknowledged confirms (the first acknowledgement of each request): the event index,
    /// and when the request was first sent.
    confirms: Vec<(usize, Micros)>,
}

impl HoldFacts<'_> {
    /// The latest expiry the hold can have had: an extension of unknown outcome may have
    /// taken it as far as its maximum.
    fn expiry_max_ms(&self) -> u64 {
        self.extends
            .iter()
            .map(|(_, _, acked)| acked.unwrap_or(self.given.latest_expiry_ms))
            .fold(self.given.expires_at_ms, u64::max)
    }

    /// The expiry it had at least for a command sent at `t`: extensions acknowledged before
    /// `t` come before that command in the log.
    fn expiry_at_least_ms(&self, t: Micros) -> u64 {
        self.extends
            .iter()
            .filter(|(_, e, _)| e.complete < t)
            .filter_map(|(_, _, acked)| *acked)
            .fold(self.given.expires_at_ms, u64::max)
    }

    /// When it may first have ended (or turned into a booking): a release or confirm sent,
    /// or log time reaching its first expiry.
    fn may_end_from(&self, clock: &Clock) -> Micros {
        self.releases
            .iter()
            .chain(&self.confirm_tries)
            .map(|e| e.invoke)
            .fold(clock.before_unix_ms(self.given.expires_at_ms), Micros::min)
    }
}

/// Every acknowledged hold, by id.
pub(super) struct Holds<'a> {
    by_id: BTreeMap<&'a str, HoldFacts<'a>>,
    clock: Clock,
}

impl<'a> Holds<'a> {
    pub(super) fn of(history: &'a History, requests: &Requests<'a>) -> Holds<'a> {
        let mut by_id: BTreeMap<&str, HoldFacts> = BTreeMap::new();
        for (i, event) in history.events.iter().enumerate() {
            let Op::Hold {
                user,
                result: Outcome::Ok(given),
                ..
            } = &event.op
            else {
                continue;
            };
            if !requests.is_first_ok(i, &event.op) {
                continue;
            }
            by_id.entry(given.id.as_str()).or_insert(HoldFacts {
                index: i,
                user,
                given,
                first_invoke: requests.first_invoke(&event.op, event.invoke),
                acked: event.complete,
                extends: Vec::new(),
                releases: Vec::new(),
                confirm_tries: Vec::new(),
                released: Vec::new(),
                refused_ended: Vec::new(),
                confirms: Vec::new(),
            });
        }
        for (i, event) in history.events.iter().enumerate() {
            let (user, hold, ended) = match &event.op {
                Op::Extend {
                    user, hold, result, ..
                } => (user, hold, refused_ended(result)),
                Op::Release { user, hold, result } => (user, hold, refused_ended(result)),
                Op::Confirm {
                    user, hold, result, ..
                } => (user, hold, refused_ended(result)),
                _ => continue,
            };
            // Only the holder's own requests act on a hold (anyone else's are refused).
            let Some(facts) = by_id.get_mut(hold.as_str()).filter(|f| f.user == user) else {
                continue;
            };
            if ended {
                facts.refused_ended.push(i);
            }
            match &event.op {
                Op::Extend { result, .. } if result.maybe_happened() => {
                    facts.extends.push((i, event, result.ok().copied()));
                }
                Op::Release { result, .. } if result.maybe_happened() => {
                    facts.releases.push(event);
                    if result.ok().is_some() {
                        facts.released.push(i);
                    }
                }
                Op::Confirm { result, .. } if result.maybe_happened() => {
                    facts.confirm_tries.push(event);
                    if result.ok().is_some() && requests.is_first_ok(i, &event.op) {
                        let first = requests.first_invoke(&event.op, event.invoke);
                        facts.confirms.push((i, first));
                    }
                }
                _ => {}
            }
        }
        Holds {
            by_id,
            clock: history.clock,
        }
    }

    /// When the holding `id` of a read may first have gone: never for a booking, at once for
    /// a hold no reply named (nothing is known of its length), else when it may first end.
    pub(super) fn may_end_from(&self, id: &str) -> Micros {
        if !id.starts_with("hd-") {
            return Micros::MAX;
        }
        self.by_id
            .get(id)
            .map_or(0, |facts| facts.may_end_from(&self.clock))
    }
}

fn refused_ended<T>(result: &Outcome<T>) -> bool {
    matches!(result, Outcome::Failed(why) if says_ended(why))
}

pub(super) fn check(
    history: &History,
    ix: &Index,
    observations: &[Observation],
    out: &mut Vec<Violation>,
) {
    confirmed_late(&ix.holds, out);
    expired_confirmed(history, &ix.holds, observations, out);
    double_holds(history, ix, out);
    stale_hold_reads(&ix.holds, observations, out);
    double_check_ins(history, out);
}

fn confirmed_late(holds: &Holds, out: &mut Vec<Violation>) {
    for (id, facts) in &holds.by_id {
        let expiry_max_ms = facts.expiry_max_ms();
        for &(i, first) in &facts.confirms {
            let sent_unix_us = holds.clock.unix_us(first);
            if sent_unix_us >= expiry_max_ms.saturating_mul(1000) + holds.clock.slack_us {
                let mut events = vec![facts.index];
                events.extend(facts.extends.iter().map(|(j, _, _)| *j));
                events.push(i);
                out.push(Violation {
                    rule: "confirmed-late",
                    seat: facts.given.seats.first().cloned().unwrap_or_default(),
                    detail: format!(
                        "{id} of {} confirmed by a request first sent at {} ms (Unix), though it \
                         expired at {} ms at the latest",
                        facts.user,
                        sent_unix_us / 1000,
                        expiry_max_ms
                    ),
                    events,
                });
            }
        }
    }
}

fn expired_confirmed(
    history: &History,
    holds: &Holds,
    observations: &[Observation],
    out: &mut Vec<Violation>,
) {
    for (id, facts) in &holds.by_id {
        let booking = booking_of(id);
        for &(i, first) in &facts.confirms {
            let before = |j: &usize| history.events[*j].complete < first;
            let said = facts
                .refused_ended
                .iter()
                .chain(&facts.released)
                .copied()
                .find(|j| before(j));
            // A linearizable read between the hold and the confirm without the hold on one
            // of its seats, nor the booking it becomes.
            let unseen = observations
                .iter()
                .filter(|o| o.linearizable && o.invoke > facts.acked && o.complete < first)
                .find(|o| {
                    facts.given.seats.iter().any(|seat| {
                        o.snapshot.held.get(seat).is_none_or(|h| {
                            h.user != facts.user || (h.booking != *id && h.booking != booking)
                        })
                    })
                })
                .and_then(|o| o.event);
            let Some(seen_over) = said.or(unseen) else {
                continue;
            };
            let how = if said.is_some() {
                "said over (expired or released)"
            } else {
                "missing from a linearizable read"
            };
            out.push(Violation {
                rule: "expired-confirmed",
                seat: facts.given.seats.first().cloned().unwrap_or_default(),
                detail: format!(
                    "{id} of {} was {how} before the confirm that booked it as {booking} was sent",
                    facts.user
                ),
                events: vec![facts.index, seen_over, i],
            });
        }
    }
}

/// Whether hold `a` of `seat` may have ended (or its booking been cancelled) before hold `b`
/// took the seat, `a` coming first in the log.
fn ended_before(ix: &Index, seat: &str, a: &HoldFacts, b: &HoldFacts, history: &History) -> bool {
    let confirmed = a
        .confirms
        .iter()
        .any(|&(i, _)| history.events[i].complete < b.first_invoke);
    // A confirmed hold does not run out; one not known confirmed may have.
    let expired = !confirmed && b.given.created_at_ms >= a.expiry_at_least_ms(b.first_invoke);
    let released = a.releases.iter().any(|e| e.invoke < b.acked);
    let cancelled = ix
        .cancels_of(seat, a.user, &booking_of(&a.given.id))
        .any(|c| c.event.invoke < b.acked);
    expired || released || cancelled
}

fn double_holds(history: &History, ix: &Index, out: &mut Vec<Violation>) {
    let mut by_seat: BTreeMap<&str, Vec<&HoldFacts>> = BTreeMap::new();
    for facts in ix.holds.by_id.values() {
        for seat in &facts.given.seats {
            by_seat.entry(seat.as_str()).or_default().push(facts);
        }
    }
    for (seat, mut holds) in by_seat {
        holds.sort_by_key(|f| (f.given.created_at_ms, f.index));
        for (n, a) in holds.iter().enumerate() {
            for b in &holds[n + 1..] {
                // Log time never goes back: the earlier in log time came first in the log;
                // made at the same log time, either may have.
                let same_time = a.given.created_at_ms == b.given.created_at_ms;
                let a_then_b = ended_before(ix, seat, a, b, history);
                let b_then_a = same_time && ended_before(ix, seat, b, a, history);
                if !a_then_b && !b_then_a {
                    out.push(Violation {
                        rule: "double-hold",
                        seat: seat.to_string(),
                        detail: format!(
                            "{} of {} (made at {} ms, expiring at {} ms) and {} of {} (made at {} ms) \
                             held it at once",
                            a.given.id,
                            a.user,
                            a.given.created_at_ms,
                            a.given.expires_at_ms,
                            b.given.id,
                            b.user,
                            b.given.created_at_ms
                        ),
                        events: vec![a.index, b.index],
                    });
                }
            }
        }
    }
}

fn stale_hold_reads(holds: &Holds, observations: &[Observation], out: &mut Vec<Violation>) {
    for (id, facts) in &holds.by_id {
        let may_end_from = facts.may_end_from(&holds.clock);
        let missed = observations
            .iter()
            .filter(|o| o.linearizable && o.event.is_some())
            .filter(|o| o.invoke > facts.acked && o.complete < may_end_from)
            .find_map(|o| {
                let seat = facts.given.seats.iter().find(|seat| {
                    o.snapshot
                        .held
                        .get(*seat)
                        .is_none_or(|h| h.user != facts.user || h.booking != *id)
                })?;
                Some((o, seat))
            });
        if let Some((o, seat)) = missed {
            out.push(Violation {
                rule: "stale-read",
                seat: seat.clone(),
                detail: format!(
                    "a linearizable read at index {} misses {id} of {}, acknowledged before it \
                     began and not over before it ended",
                    o.snapshot.applied_index, facts.user
                ),
                events: [Some(facts.index), o.event].into_iter().flatten().collect(),
            });
        }
    }
}

/// A check-in as a person at the door reads it: `at 14:03:12 UTC by door`.
fn check_in_text(at_ms: u64, by: &str) -> String {
    format!("at {} by {by}", ticket::domain::clock_text(at_ms))
}

/// What a refused second scan says of the first: `at 14:03:12 UTC by door`.
fn already_text(why: &str) -> Option<&str> {
    const SAID: &str = "checked in already, ";
    why.find(SAID).map(|at| &why[at + SAID.len()..])
}

fn double_check_ins(history: &History, out: &mut Vec<Violation>) {
    let mut tickets: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, event) in history.events.iter().enumerate() {
        if let Op::CheckIn { booking, seat, .. } = &event.op {
            tickets.entry((booking, seat)).or_default().push(i);
        }
    }
    for ((booking, seat), scans) in tickets {
        let last = history
            .final_tickets
            .get(&(booking.to_string(), seat.to_string()))
            .and_then(Option::as_ref);
        if let Some((detail, events)) = checked_in_twice(history, &scans, last) {
            out.push(Violation {
                rule: "double-check-in",
                seat: seat.to_string(),
                detail: format!("the ticket for {seat} of {booking} {detail}"),
                events,
            });
        }
    }
}

/// Whether the scans of one ticket (event indices) and its final check-in show it accepted
/// twice: two acceptances, or two accounts of when it was checked in that disagree.
fn checked_in_twice(
    history: &History,
    scans: &[usize],
    last: Option<&CheckedIn>,
) -> Option<(String, Vec<usize>)> {
    let mut accepted: Vec<(usize, &CheckedIn)> = Vec::new();
    // Every account of when it was checked in, to the second: the event saying it (None for
    // the final tickets) and what it says.
    let mut accounts: Vec<(Option<usize>, String)> = Vec::new();
    for &i in scans {
        match &history.events[i].op {
            Op::CheckIn {
                result: Outcome::Ok(done),
                ..
            } => {
                accepted.push((i, done));
                accounts.push((Some(i), check_in_text(done.at_ms, &done.by)));
            }
            Op::CheckIn {
                result: Outcome::Failed(why),
                ..
            } => {
                if let Some(text) = already_text(why) {
                    accounts.push((Some(i), text.to_string()));
                }
            }
            _ => {}
        }
    }
    if let [(first, _), (second, _), ..] = accepted[..] {
        return Some(("was accepted at the door twice".into(), vec![first, second]));
    }
    if let (Some(&(i, done)), Some(last)) = (accepted.first(), last) {
        if done != last {
            let detail = format!(
                "was accepted at {} ms by {}, and is checked in at {} ms by {} at the end",
                done.at_ms, done.by, last.at_ms, last.by
            );
            return Some((detail, vec![i]));
        }
    }
    if let Some(last) = last {
        accounts.push((None, check_in_text(last.at_ms, &last.by)));
    }
    let (first, first_text) = accounts.first()?;
    let (other, other_text) = accounts.iter().find(|(_, text)| text != first_text)?;
    let detail = format!(
        "was checked in {first_text} and {other_text}{}",
        if other.is_none() { " (at the end)" } else { "" }
    );
    Some((detail, first.iter().chain(other).copied().collect()))
}

impl History {
    /// The checkout's part of the summary: how many of each operation were acknowledged
    /// (and refused, for confirms and check-ins, where refusals are part of the test).
    pub fn checkout_counts(&self) -> String {
        #[derive(Default)]
        struct Tally {
            ok: usize,
            refused: usize,
        }
        let mut tally: BTreeMap<&str, Tally> = BTreeMap::new();
        for event in &self.events {
            let kind = match &event.op {
                Op::Hold { .. } => "holds",
                Op::Extend { .. } => "extends",
                Op::Release { .. } => "releases",
                Op::Confirm { .. } => "confirms",
                Op::CheckIn { .. } => "check-ins",
                _ => continue,
            };
            let (ok, refused) = event.op.ended();
            let t = tally.entry(kind).or_default();
            t.ok += usize::from(ok);
            t.refused += usize::from(refused);
        }
        tally
            .iter()
            .map(|(kind, t)| format!("{kind} ok={} refused={}", t.ok, t.refused))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made checkout histories. Times are µs from a run that began at Unix time 0, so
    //! an event at 1_500_000 µs is at log time 1500 ms. Each bad history breaks one rule,
    //! and the history that differs by what explains it passes.

    use super::super::{check, Holding, Snapshot};
    use super::*;
    use ticket::domain::Rejection;

    fn at(client: usize, t: (u64, u64), op: Op) -> Event {
        Event {
            client,
            invoke: t.0,
            complete: t.1,
            op,
        }
    }

    /// `user` holds `seats` as `id`, made at log time `made_ms` for `length_ms` (at most
    /// twice that with extensions).
    fn hold(
        t: (u64, u64),
        user: &str,
        id: &str,
        seats: &[&str],
        made_ms: u64,
        length_ms: u64,
    ) -> Event {
        at(
            0,
            t,
            Op::Hold {
                user: user.into(),
                request_id: format!("h-{id}"),
                ask: HoldAsk::Seats(seats.iter().map(|s| s.to_string()).collect()),
                duration_ms: length_ms,
                result: Outcome::Ok(HoldGiven {
                    id: id.into(),
                    seats: seats.iter().map(|s| s.to_string()).collect(),
                    created_at_ms: made_ms,
                    expires_at_ms: made_ms + length_ms,
                    latest_expiry_ms: made_ms + 2 * length_ms,
                }),
            },
        )
    }

    fn confirm(
        t: (u64, u64),
        user: &str,
        request_id: &str,
        hold: &str,
        result: Outcome<&[&str]>,
    ) -> Event {
        let result = match result {
            Outcome::Ok(seats) => Outcome::Ok(Confirmed {
                booking: booking_of(hold),
                seats: seats.iter().map(|s| s.to_string()).collect(),
            }),
            Outcome::Failed(why) => Outcome::Failed(why),
            Outcome::Unknown(why) => Outcome::Unknown(why),
        };
        at(
            0,
            t,
            Op::Confirm {
                user: user.into(),
                request_id: request_id.into(),
                hold: hold.into(),
                result,
            },
        )
    }

    fn extend(t: (u64, u64), user: &str, hold: &str, result: Outcome<u64>) -> Event {
        at(
            0,
            t,
            Op::Extend {
                user: user.into(),
                hold: hold.into(),
                duration_ms: 1_000,
                result,
            },
        )
    }

    fn release(t: (u64, u64), user: &str, hold: &str, seats: &[&str]) -> Event {
        at(
            0,
            t,
            Op::Release {
                user: user.into(),
                hold: hold.into(),
                result: Outcome::Ok(seats.iter().map(|s| s.to_string()).collect()),
            },
        )
    }

    fn scan(t: (u64, u64), booking: &str, seat: &str, result: Outcome<CheckedIn>) -> Event {
        at(
            9,
            t,
            Op::CheckIn {
                door: "door".into(),
                booking: booking.into(),
                seat: seat.into(),
                result,
            },
        )
    }

    fn read(t: (u64, u64), index: u64, held: &[(&str, &str, &str)]) -> Event {
        at(
            1,
            t,
            Op::Read {
                linearizable: true,
                result: Outcome::Ok(state(index, held)),
            },
        )
    }

    fn state(index: u64, held: &[(&str, &str, &str)]) -> Snapshot {
        Snapshot {
            applied_index: index,
            held: held
                .iter()
                .map(|(seat, user, booking)| {
                    let holding = Holding {
                        user: user.to_string(),
                        booking: booking.to_string(),
                    };
                    (seat.to_string(), holding)
                })
                .collect(),
        }
    }

    fn history(events: Vec<Event>, held: &[(&str, &str, &str)]) -> History {
        History {
            events,
            final_state: state(99, held),
            ..History::default()
        }
    }

    fn rules(history: &History) -> Vec<&'static str> {
        check(history).into_iter().map(|v| v.rule).collect()
    }

    fn checked_in(at_ms: u64) -> CheckedIn {
        CheckedIn {
            at_ms,
            by: "door".into(),
        }
    }

    /// The refusal of a second scan, worded as the cluster words it.
    fn scanned_already(booking: &str, seat: &str, at_ms: u64) -> Outcome<CheckedIn> {
        let why = Rejection::AlreadyCheckedIn {
            seat: seat.into(),
            booking: booking.into(),
            at_ms,
            by: "door".into(),
        };
        Outcome::Failed(format!("FailedPrecondition: {why}"))
    }

    fn expired(hold: &str, at_ms: u64) -> String {
        let why = Rejection::HoldExpired {
            hold: hold.into(),
            at_ms,
        };
        format!("FailedPrecondition: {why}")
    }

    #[test]
    fn a_clean_checkout_history_passes() {
        let mut history = history(
            vec![
                // ana holds A1, is seen holding it, extends, confirms; the door checks the
                // ticket in, and a second scan is refused.
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_005, 2_000),
                read(
                    (1_100_000, 1_110_000),
                    5,
                    &[("A1", "ana", "hd-1"), ("A2", "bo", "hd-2")],
                ),
                extend((1_200_000, 1_210_000), "ana", "hd-1", Outcome::Ok(3_500)),
                confirm(
                    (3_000_000, 3_010_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
                read((3_100_000, 3_110_000), 9, &[("A1", "ana", "bk-1")]),
                scan(
                    (3_200_000, 3_210_000),
                    "bk-1",
                    "A1",
                    Outcome::Ok(checked_in(3_205)),
                ),
                scan(
                    (3_300_000, 3_310_000),
                    "bk-1",
                    "A1",
                    scanned_already("bk-1", "A1", 3_205),
                ),
                // bo's hold of A2 lapses: seen, then gone after its expiry; the late confirm
                // is refused; cy holds A2 once it is free, and releases it.
                hold((1_000_000, 1_020_000), "bo", "hd-2", &["A2"], 1_010, 1_000),
                read(
                    (1_500_000, 1_510_000),
                    7,
                    &[("A1", "ana", "hd-1"), ("A2", "bo", "hd-2")],
                ),
                read((2_100_000, 2_110_000), 8, &[("A1", "ana", "hd-1")]),
                confirm(
                    (2_200_000, 2_210_000),
                    "bo",
                    "c2",
                    "hd-2",
                    Outcome::Failed(expired("hd-2", 2_010)),
                ),
                hold((2_300_000, 2_310_000), "cy", "hd-3", &["A2"], 2_305, 2_000),
                release((2_400_000, 2_410_000), "cy", "hd-3", &["A2"]),
            ],
            &[("A1", "ana", "bk-1")],
        );
        history
            .final_tickets
            .insert(("bk-1".into(), "A1".into()), Some(checked_in(3_205)));
        assert_eq!(check(&history), Vec::new());
        assert_eq!(
            history.checkout_counts(),
            "check-ins ok=1 refused=1, confirms ok=1 refused=1, extends ok=1 refused=0, \
             holds ok=3 refused=0, releases ok=1 refused=0"
        );
    }

    #[test]
    fn a_confirm_sent_after_the_expiry_is_caught() {
        let late = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_000, 1_000),
                confirm(
                    (2_100_000, 2_110_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
            ],
            &[("A1", "ana", "bk-1")],
        );
        assert_eq!(rules(&late), vec!["confirmed-late"]);
        // An extension acknowledged before explains it.
        let mut extended = late.clone();
        extended.events.insert(
            1,
            extend((1_500_000, 1_510_000), "ana", "hd-1", Outcome::Ok(2_500)),
        );
        assert_eq!(rules(&extended), Vec::<&str>::new());
        // So does one of unknown outcome: it may have taken the hold to its maximum.
        let mut maybe = late.clone();
        maybe.events.insert(
            1,
            extend(
                (1_500_000, 1_510_000),
                "ana",
                "hd-1",
                Outcome::Unknown("timeout".into()),
            ),
        );
        assert_eq!(rules(&maybe), Vec::<&str>::new());
        // The request's first attempt, sent before the expiry, may be the one that took.
        let mut retried = late;
        retried.events.insert(
            1,
            confirm(
                (1_900_000, 2_050_000),
                "ana",
                "c1",
                "hd-1",
                Outcome::Unknown("timeout".into()),
            ),
        );
        assert_eq!(rules(&retried), Vec::<&str>::new());
    }

    #[test]
    fn a_confirm_after_the_hold_was_seen_over_is_caught() {
        // Refused as expired, then confirmed by another request, before the expiry the
        // reply gave (so not late by the clock: by the log's own word).
        let refused = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_000, 1_000),
                confirm(
                    (1_500_000, 1_510_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Failed(expired("hd-1", 1_500)),
                ),
                confirm(
                    (1_600_000, 1_610_000),
                    "ana",
                    "c2",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
            ],
            &[("A1", "ana", "bk-1")],
        );
        assert_eq!(rules(&refused), vec!["expired-confirmed"]);
        // Seen free by a linearizable read, then confirmed; an extension of unknown outcome
        // keeps the confirm from being late by the clock.
        let unseen = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_000, 1_000),
                extend(
                    (1_500_000, 1_510_000),
                    "ana",
                    "hd-1",
                    Outcome::Unknown("timeout".into()),
                ),
                read((2_100_000, 2_110_000), 8, &[]),
                confirm(
                    (2_500_000, 2_510_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
            ],
            &[("A1", "ana", "bk-1")],
        );
        assert_eq!(rules(&unseen), vec!["expired-confirmed"]);
        // Without the read, nothing shows the hold was over.
        let mut unread = unseen;
        unread.events.remove(2);
        assert_eq!(rules(&unread), Vec::<&str>::new());
    }

    #[test]
    fn two_live_holds_of_one_seat_are_caught() {
        let both = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_005, 2_000),
                hold(
                    (1_490_000, 1_510_000),
                    "bo",
                    "hd-2",
                    &["A1", "A2"],
                    1_500,
                    2_000,
                ),
            ],
            &[],
        );
        assert_eq!(rules(&both), vec!["double-hold"]);
        // ana's release, sent before bo's hold was acknowledged, explains it.
        let mut released = both.clone();
        released
            .events
            .insert(1, release((1_200_000, 1_300_000), "ana", "hd-1", &["A1"]));
        assert_eq!(rules(&released), Vec::<&str>::new());
        // So does ana's hold having run out (at 3005) by the log time bo's was made.
        let mut lapsed = both;
        lapsed.events[1] = hold((3_000_000, 3_010_000), "bo", "hd-2", &["A1"], 3_005, 2_000);
        assert_eq!(rules(&lapsed), Vec::<&str>::new());
    }

    #[test]
    fn an_acknowledged_confirm_lost_is_caught() {
        let lost = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_005, 2_000),
                confirm(
                    (1_500_000, 1_510_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
            ],
            &[],
        );
        assert_eq!(rules(&lost), vec!["lost-confirm"]);
        // A cancel of the booking of unknown outcome explains it.
        let mut cancelled = lost;
        cancelled.events.push(at(
            0,
            (1_600_000, 1_700_000),
            Op::Cancel {
                user: "ana".into(),
                request_id: "x1".into(),
                target: super::super::CancelTarget::Booking("bk-1".into()),
                result: Outcome::Unknown("timeout".into()),
            },
        ));
        assert_eq!(rules(&cancelled), Vec::<&str>::new());
    }

    #[test]
    fn a_ticket_accepted_twice_is_caught() {
        let twice = history(
            vec![
                scan(
                    (1_000_000, 1_010_000),
                    "bk-1",
                    "A1",
                    Outcome::Ok(checked_in(1_005)),
                ),
                scan(
                    (2_000_000, 2_010_000),
                    "bk-1",
                    "A1",
                    Outcome::Ok(checked_in(2_005)),
                ),
            ],
            &[],
        );
        assert_eq!(rules(&twice), vec!["double-check-in"]);
        // A second scan refused, but saying another check-in time than the one accepted:
        // a scan whose outcome was unknown was accepted as well.
        let mut other_time = twice.clone();
        other_time.events[1] = scan(
            (5_000_000, 5_010_000),
            "bk-1",
            "A1",
            scanned_already("bk-1", "A1", 4_000),
        );
        assert_eq!(rules(&other_time), vec!["double-check-in"]);
        // The final tickets disagreeing with the acceptance.
        let mut at_the_end = twice.clone();
        at_the_end.events.truncate(1);
        at_the_end
            .final_tickets
            .insert(("bk-1".into(), "A1".into()), Some(checked_in(4_000)));
        assert_eq!(rules(&at_the_end), vec!["double-check-in"]);
        // One acceptance, a refusal that names it, and the same at the end: right.
        let mut once = twice;
        once.events[1] = scan(
            (2_000_000, 2_010_000),
            "bk-1",
            "A1",
            scanned_already("bk-1", "A1", 1_005),
        );
        once.final_tickets
            .insert(("bk-1".into(), "A1".into()), Some(checked_in(1_005)));
        assert_eq!(rules(&once), Vec::<&str>::new());
    }

    #[test]
    fn a_confirmed_hold_reserved_again_is_a_double_sale() {
        let history = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_005, 2_000),
                confirm(
                    (1_100_000, 1_110_000),
                    "ana",
                    "c1",
                    "hd-1",
                    Outcome::Ok(&["A1"]),
                ),
                at(
                    2,
                    (1_200_000, 1_210_000),
                    Op::Reserve {
                        user: "bo".into(),
                        request_id: "r1".into(),
                        seats: vec!["A1".into()],
                        result: Outcome::Ok("bk-2".into()),
                    },
                ),
            ],
            &[("A1", "ana", "bk-1")],
        );
        let found = rules(&history);
        assert!(found.contains(&"double-sale"), "{found:?}");
    }

    /// A hold of the best seats names none: if its outcome is unknown, it explains any seat
    /// its user is seen holding.
    #[test]
    fn a_best_hold_of_unknown_outcome_may_hold_any_seat() {
        let seen = history(
            vec![read((2_000_000, 2_010_000), 5, &[("C5", "dan", "hd-7")])],
            &[],
        );
        assert_eq!(rules(&seen), vec!["phantom"]);
        let mut asked = seen;
        asked.events.insert(
            0,
            at(
                3,
                (1_000_000, 1_500_000),
                Op::Hold {
                    user: "dan".into(),
                    request_id: "b1".into(),
                    ask: HoldAsk::Best(2),
                    duration_ms: 1_000,
                    result: Outcome::Unknown("timeout".into()),
                },
            ),
        );
        assert_eq!(rules(&asked), Vec::<&str>::new());
    }

    #[test]
    fn a_hold_missing_before_it_can_have_ended_is_caught() {
        // Never seen: a stale read.
        let missed = history(
            vec![
                hold((1_000_000, 1_010_000), "ana", "hd-1", &["A1"], 1_005, 2_000),
                read((1_500_000, 1_510_000), 5, &[]),
            ],
            &[],
        );
        assert_eq!(rules(&missed), vec!["stale-read"]);
        // Seen, then gone: vanished too.
        let mut gone = missed.clone();
        gone.events
            .insert(1, read((1_100_000, 1_110_000), 4, &[("A1", "ana", "hd-1")]));
        assert_eq!(rules(&gone), vec!["vanished", "stale-read"]);
        // A release sent before the read explains both; so does the read ending after the
        // hold's expiry.
        let mut released = gone;
        released
            .events
            .insert(2, release((1_400_000, 1_450_000), "ana", "hd-1", &["A1"]));
        assert_eq!(rules(&released), Vec::<&str>::new());
        let mut after = missed;
        after.events[1] = read((3_000_000, 3_010_000), 5, &[]);
        assert_eq!(rules(&after), Vec::<&str>::new());
    }
}
