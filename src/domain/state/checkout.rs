//! Checkout: holds that expire by log time, their confirmation, extension and release; the
//! best available seats; price categories; tickets checked in at the door.
//!
//! A hold is a booking that is not confirmed yet: it takes its seats in the event's seat
//! slots, counts against the per-user limit, and has a number from the same counter, so hold
//! `hd-7` confirmed is booking `bk-7`. It runs out at a log time (`State::clock_ms`): every
//! command first ends the holds whose expiry it has reached (`advance_clock`), so a late
//! confirm finds its hold over, and a hold or reserve of its seats finds them free, on every
//! node alike. Nothing here reads a clock.
//!
//! What it does not do: decide a hold's length (the node does, from cluster.toml, within
//! `limits::HOLD_MS_MAX`), sign tickets (the node does, with its token key), or sweep on a
//! timer (the leader proposes `Command::Sweep` when a hold is due).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{BookingRecord, BookingStatus, Category, CheckIn, EventRecord, State};
use crate::domain::best::{self, Split, Spot};
use crate::domain::validate::{self, format_hold_id, Invalid};
use crate::domain::{
    BestAsk, BookingView, CategorySpec, CheckInView, Command, HoldTarget, HoldView, Outcome,
    Rejection, Role, SeatMap,
};
use crate::limits;

/// How a hold that is no longer live ended (a confirmed one is a booking, and says so).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum HoldEnd {
    Expired { at_ms: u64, user: String },
    Released { at_ms: u64, user: String },
}

impl HoldEnd {
    fn user(&self) -> &str {
        match self {
            HoldEnd::Expired { user, .. } | HoldEnd::Released { user, .. } => user,
        }
    }
}

/// Recently ended holds, oldest forgotten first past `limits::HOLDS_ENDED_KEPT`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct EndedHolds {
    ends: BTreeMap<u64, HoldEnd>,
    order: VecDeque<u64>,
}

impl EndedHolds {
    fn insert(&mut self, number: u64, end: HoldEnd) {
        if self.order.len() >= limits::HOLDS_ENDED_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.ends.remove(&oldest);
            }
        }
        if self.ends.insert(number, end).is_none() {
            self.order.push_back(number);
        }
    }

    fn get(&self, number: u64) -> Option<&HoldEnd> {
        self.ends.get(&number)
    }

    fn check(&self) -> Result<(), String> {
        if self.order.len() != self.ends.len() || self.ends.len() > limits::HOLDS_ENDED_KEPT {
            return Err(format!(
                "{} ended holds in an order of {}",
                self.ends.len(),
                self.order.len()
            ));
        }
        Ok(())
    }
}

impl State {
    /// Runs a checked checkout command that is not a replay (see `State::execute`).
    pub(super) fn execute_checkout(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Hold {
                actor,
                event,
                target,
                duration_ms,
                max_ms,
                ..
            } => self
                .hold(actor, event, target, *duration_ms, *max_ms)
                .map_or_else(Outcome::Rejected, Outcome::Held),
            Command::ConfirmHold {
                actor,
                hold,
                payment_ref,
                ..
            } => self
                .confirm_hold(actor, *hold, payment_ref.as_deref())
                .map_or_else(Outcome::Rejected, Outcome::Confirmed),
            Command::ExtendHold {
                actor,
                hold,
                duration_ms,
                ..
            } => self
                .extend_hold(actor, *hold, *duration_ms)
                .map_or_else(Outcome::Rejected, Outcome::HoldExtended),
            Command::ReleaseHold { actor, hold, .. } => self
                .release_hold(actor, *hold)
                .map_or_else(Outcome::Rejected, |(event, seats)| Outcome::HoldReleased {
                    event,
                    seats,
                }),
            Command::CheckIn {
                actor,
                event,
                seat,
                booking,
                ..
            } => self
                .check_in(actor, event, seat, *booking)
                .map_or_else(Outcome::Rejected, Outcome::CheckedIn),
            // The clock moved before the command ran; nothing else to do.
            Command::Sweep { .. } => Outcome::Swept { expired: 0 },
            _ => Outcome::Rejected(Rejection::Invalid(format!(
                "{} is not a checkout command",
                command.kind()
            ))),
        }
    }

    /// Moves log time to `now` if that is later, and ends every hold it has reached. Returns
    /// how many ended; their seats are added to `touched`.
    pub(crate) fn advance_clock(&mut self, now: u64, touched: &mut Vec<(String, String)>) -> u32 {
        self.clock_ms = self.clock_ms.max(now);
        let mut expired: u32 = 0;
        while let Some(&(at_ms, number)) = self.expiries.first() {
            if at_ms > self.clock_ms {
                break;
            }
            self.expiries.pop_first();
            if let Some((event, seats, user)) = self.end_hold(number) {
                touched.extend(seats.into_iter().map(|seat| (event.clone(), seat)));
                self.ended.insert(number, HoldEnd::Expired { at_ms, user });
            }
            expired = expired.saturating_add(1);
        }
        expired
    }

    /// Frees the seats of hold `number` (the caller keeps `expiries` right). Returns the
    /// event, the seats freed and the holder.
    fn end_hold(&mut self, number: u64) -> Option<(String, Vec<String>, String)> {
        let booking = self.bookings.get(number)?;
        let (event_name, user) = (booking.event.to_string(), booking.user.to_string());
        let pairs: Vec<(u64, u32)> = booking.seats.iter().map(|&s| (number, s)).collect();
        let event = self.events.get_mut(&event_name)?;
        if event
            .check_held(&event_name, &pairs, &self.bookings)
            .is_err()
        {
            return None;
        }
        let freed = event.free(pairs, &mut self.bookings);
        Some((event_name, freed, user))
    }

    pub(super) fn hold(
        &mut self,
        actor: &str,
        event_name: &str,
        target: &HoldTarget,
        duration_ms: u64,
        max_ms: u64,
    ) -> Result<HoldView, Rejection> {
        let indices = match target {
            HoldTarget::Seats(seats) => self.free_seats_named(actor, event_name, seats)?,
            HoldTarget::Best(ask) => {
                self.known_user(actor)?;
                self.best_seats(actor, event_name, ask)?
            }
        };
        let now = self.clock_ms;
        let expires_at_ms = now.saturating_add(duration_ms);
        if expires_at_ms <= now {
            // Only a clock at the end of u64 gets here.
            return Err(Rejection::HoldTooLong {
                asked_ms: duration_ms,
                max_ms: u64::MAX - now,
            });
        }
        let latest_ms = now.saturating_add(max_ms).max(expires_at_ms);
        let status = BookingStatus::Held {
            expires_at_ms,
            latest_ms,
        };
        let (_, number) = self.take_seats(actor, event_name, indices, status)?;
        self.hold_view(number)
            .ok_or_else(|| Rejection::Invalid("the hold just made is missing".into()))
    }

    /// The seats best available for `ask` in `event_name` (see [`best::choose`]). When no
    /// category is asked for, a category whose own per-person limit leaves `actor` too few
    /// seats is passed over for the rest; only when nothing else fits is the choice made
    /// without that, so the refusal names the limit rather than "no seats".
    fn best_seats(
        &self,
        actor: &str,
        event_name: &str,
        ask: &BestAsk,
    ) -> Result<Vec<u32>, Rejection> {
        let event = self
            .events
            .get(event_name)
            .ok_or_else(|| Rejection::UnknownEvent(event_name.to_string()))?;
        let wanted = match &ask.category {
            Some(name) => {
                Some(
                    event
                        .category_index(name)
                        .ok_or_else(|| Rejection::UnknownCategory {
                            event: event_name.to_string(),
                            category: name.clone(),
                        })?,
                )
            }
            None => None,
        };
        let short: Vec<bool> = event
            .categories
            .iter()
            .map(|c| {
                let held = c.held.get(actor).copied().unwrap_or(0);
                wanted.is_none()
                    && c.max_seats_per_user > 0
                    && c.max_seats_per_user.saturating_sub(held) < ask.count
            })
            .collect();
        let choose = |pass_over_short: bool| {
            let spot = |i: u32| match event.holders.get(i as usize) {
                Some(None) => {
                    let category = event.category_of(i);
                    let in_category = wanted.is_none_or(|w| category == Some(w));
                    let affordable = ask.max_price_minor.is_none_or(|m| event.price_at(i) <= m);
                    let allowed = !pass_over_short
                        || category.is_none_or(|c| !short.get(c).copied().unwrap_or(false));
                    if in_category && affordable && allowed {
                        Spot::Free
                    } else {
                        Spot::FreeOther
                    }
                }
                _ => Spot::Taken,
            };
            let split = if ask.split {
                Split::Allowed
            } else {
                Split::Never
            };
            let map = &event.map;
            best::choose(map.rows(), map.seats_per_row(), spot, ask.count, split)
        };
        let passed_over = short.iter().any(|&s| s);
        let chosen = match passed_over {
            true => choose(true).or_else(|| choose(false)),
            false => choose(false),
        };
        chosen.ok_or_else(|| Rejection::NoSeats {
            event: event_name.to_string(),
            count: ask.count,
            together: !ask.split,
            category: ask.category.clone(),
        })
    }

    /// The live hold `number`, if `actor` may act on it (its holder; an admin too when
    /// `admin_may`); otherwise why not: someone else's, confirmed, expired, released, unknown.
    fn live_hold(&self, actor: &str, number: u64, admin_may: bool) -> Result<(), Rejection> {
        let id = format_hold_id(number);
        let may = |user: &str| user == actor || (admin_may && self.is_admin(Some(actor)));
        if let Some(booking) = self.bookings.get(number) {
            if !may(&booking.user) {
                return Err(Rejection::NotYourHold(id));
            }
            return match booking.status {
                BookingStatus::Held { expires_at_ms, .. } if expires_at_ms <= self.clock_ms => {
                    Err(Rejection::HoldExpired {
                        hold: id,
                        at_ms: expires_at_ms,
                    })
                }
                BookingStatus::Held { .. } => Ok(()),
                BookingStatus::Confirmed => Err(Rejection::HoldConfirmed {
                    hold: id,
                    booking: validate::format_booking_id(number),
                }),
            };
        }
        match self.ended.get(number) {
            Some(end) if !may(end.user()) => Err(Rejection::NotYourHold(id)),
            Some(HoldEnd::Expired { at_ms, .. }) => Err(Rejection::HoldExpired {
                hold: id,
                at_ms: *at_ms,
            }),
            Some(HoldEnd::Released { .. }) => Err(Rejection::HoldReleased(id)),
            None => Err(Rejection::UnknownHold(id)),
        }
    }

    pub(super) fn confirm_hold(
        &mut self,
        actor: &str,
        number: u64,
        payment_ref: Option<&str>,
    ) -> Result<BookingView, Rejection> {
        self.known_user(actor)?;
        self.live_hold(actor, number, false)?;
        let booking = self
            .bookings
            .get_mut(number)
            .ok_or_else(|| Rejection::UnknownHold(format_hold_id(number)))?;
        if let BookingStatus::Held { expires_at_ms, .. } = booking.status {
            self.expiries.remove(&(expires_at_ms, number));
        }
        booking.status = BookingStatus::Confirmed;
        booking.payment_ref = payment_ref.map(Box::from);
        self.booking(number)
            .ok_or_else(|| Rejection::Invalid("the booking just confirmed is missing".into()))
    }

    pub(super) fn extend_hold(
        &mut self,
        actor: &str,
        number: u64,
        duration_ms: u64,
    ) -> Result<HoldView, Rejection> {
        self.known_user(actor)?;
        self.live_hold(actor, number, false)?;
        let now = self.clock_ms;
        let booking = self
            .bookings
            .get_mut(number)
            .ok_or_else(|| Rejection::UnknownHold(format_hold_id(number)))?;
        let BookingStatus::Held {
            expires_at_ms,
            latest_ms,
        } = booking.status
        else {
            return Err(Rejection::Invalid("a live hold is not held".into()));
        };
        if expires_at_ms >= latest_ms {
            return Err(Rejection::HoldAtMaximum {
                hold: format_hold_id(number),
                latest_ms,
            });
        }
        let extended = now
            .saturating_add(duration_ms)
            .min(latest_ms)
            .max(expires_at_ms);
        booking.status = BookingStatus::Held {
            expires_at_ms: extended,
            latest_ms,
        };
        self.expiries.remove(&(expires_at_ms, number));
        self.expiries.insert((extended, number));
        self.hold_view(number)
            .ok_or_else(|| Rejection::Invalid("the hold just extended is missing".into()))
    }

    pub(super) fn release_hold(
        &mut self,
        actor: &str,
        number: u64,
    ) -> Result<(String, Vec<String>), Rejection> {
        self.known_user(actor)?;
        self.live_hold(actor, number, true)?;
        if let Some(BookingStatus::Held { expires_at_ms, .. }) =
            self.bookings.get(number).map(|b| b.status)
        {
            self.expiries.remove(&(expires_at_ms, number));
        }
        let at_ms = self.clock_ms;
        let (event, seats, user) = self
            .end_hold(number)
            .ok_or_else(|| Rejection::UnknownHold(format_hold_id(number)))?;
        self.ended.insert(number, HoldEnd::Released { at_ms, user });
        Ok((event, seats))
    }

    pub(super) fn check_in(
        &mut self,
        actor: &str,
        event_name: &str,
        seat: &str,
        number: u64,
    ) -> Result<CheckInView, Rejection> {
        let role = self
            .users
            .get(actor)
            .map(|u| u.role)
            .ok_or_else(|| Rejection::UnknownUser(actor.to_string()))?;
        if role == Role::Customer {
            return Err(Rejection::NotDoor);
        }
        let event = self
            .events
            .get(event_name)
            .ok_or_else(|| Rejection::UnknownEvent(event_name.to_string()))?;
        let index = event
            .map
            .index(seat)
            .ok_or_else(|| Rejection::UnknownSeat {
                event: event_name.to_string(),
                seat: seat.to_string(),
            })?;
        let seat = event.map.id(index);
        let booking = validate::format_booking_id(number);
        let valid = self.bookings.get(number).is_some_and(|b| {
            b.status == BookingStatus::Confirmed
                && *b.event == *event_name
                && b.seats.contains(&index)
        });
        if !valid {
            return Err(Rejection::TicketVoid {
                event: event_name.to_string(),
                seat,
                booking,
            });
        }
        if let Some(done) = self.check_ins.get(&(number, index)) {
            return Err(Rejection::AlreadyCheckedIn {
                seat,
                booking,
                at_ms: done.at_ms,
                by: done.by.clone(),
            });
        }
        let at_ms = self.clock_ms;
        self.check_ins.insert(
            (number, index),
            CheckIn {
                at_ms,
                by: actor.to_string(),
            },
        );
        Ok(CheckInView {
            event: event_name.to_string(),
            seat,
            booking,
            at_ms,
            by: actor.to_string(),
        })
    }

    /// A live hold as the outside sees it.
    pub fn hold_view(&self, number: u64) -> Option<HoldView> {
        let booking = self.bookings.get(number)?;
        let BookingStatus::Held {
            expires_at_ms,
            latest_ms,
        } = booking.status
        else {
            return None;
        };
        let event = self.events.get(&*booking.event)?;
        Some(HoldView {
            id: format_hold_id(number),
            event: booking.event.to_string(),
            seats: booking.seats.iter().map(|&s| event.map.id(s)).collect(),
            user: booking.user.to_string(),
            created_at_ms: booking.created_at_ms,
            expires_at_ms,
            latest_expiry_ms: latest_ms,
            total_minor: booking.total_minor,
            currency: event.currency.clone(),
        })
    }

    /// Every live hold of the user, oldest first.
    pub fn holds_of(&self, user: &str) -> Vec<HoldView> {
        self.bookings
            .iter()
            .filter(|(_, b)| &*b.user == user && b.status != BookingStatus::Confirmed)
            .filter_map(|(number, _)| self.hold_view(number))
            .collect()
    }

    /// The holds' invariants: every live hold is in `expiries` at its expiry, runs out after
    /// log time and no later than its maximum; `expiries` names nothing else; every check-in
    /// is of a confirmed booking that has the seat.
    pub(super) fn check_holds(&self) -> Result<(), String> {
        let mut live = 0usize;
        for (number, booking) in self.bookings.iter() {
            let BookingStatus::Held {
                expires_at_ms,
                latest_ms,
            } = booking.status
            else {
                continue;
            };
            live += 1;
            if !self.expiries.contains(&(expires_at_ms, number)) {
                return Err(format!("hold {number} is missing from the expiries"));
            }
            if expires_at_ms <= self.clock_ms || expires_at_ms > latest_ms {
                return Err(format!(
                    "hold {number} expires at {expires_at_ms}, log time {} and latest {latest_ms}",
                    self.clock_ms
                ));
            }
        }
        if live != self.expiries.len() {
            return Err(format!(
                "{} expiries for {live} live holds",
                self.expiries.len()
            ));
        }
        for &(number, seat) in self.check_ins.keys() {
            let valid = self.bookings.get(number).is_some_and(|b: &BookingRecord| {
                b.status == BookingStatus::Confirmed && b.seats.contains(&seat)
            });
            if !valid {
                return Err(format!(
                    "a check-in names seat {seat} of booking {number}, which has it not"
                ));
            }
        }
        self.ended.check()
    }
}

impl EventRecord {
    /// The category of seat `i`, by index into `categories`.
    pub fn category_of(&self, i: u32) -> Option<usize> {
        let per_row = self.map.seats_per_row();
        let (row, seat) = (i.checked_div(per_row)?, i.checked_rem(per_row)?);
        self.categories.iter().position(|c| {
            c.covers
                .iter()
                .any(|&(r0, r1, s0, s1)| (r0..=r1).contains(&row) && (s0..=s1).contains(&seat))
        })
    }

    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.name == name)
    }

    /// The price of seat `i` in minor units; 0 in an event without categories.
    pub fn price_at(&self, i: u32) -> u64 {
        self.category_of(i)
            .and_then(|c| self.categories.get(c))
            .map_or(0, |c| c.price_minor)
    }

    /// What seats `indices` cost together; prices are bounded, so the sum cannot overflow
    /// in practice, and saturates if it ever would.
    pub fn price_of(&self, indices: &[u32]) -> u64 {
        indices
            .iter()
            .fold(0u64, |sum, &i| sum.saturating_add(self.price_at(i)))
    }

    /// The categories as they were written, with their prices.
    pub fn category_specs(&self) -> Vec<CategorySpec> {
        self.categories
            .iter()
            .map(|c| CategorySpec {
                name: c.name.clone(),
                price_minor: c.price_minor,
                covers: c.written.clone(),
                max_seats_per_user: c.max_seats_per_user,
            })
            .collect()
    }
}

/// Resolves categories against the seat map: each cover names rows or seats the map has, and
/// together they cover every seat exactly once (none, when there are no categories).
pub(super) fn resolve_categories(
    map: &SeatMap,
    specs: &[CategorySpec],
) -> Result<Vec<Category>, Invalid> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut categories = Vec::with_capacity(specs.len());
    let mut covered = vec![0u8; map.len() as usize];
    for spec in specs {
        let mut covers = Vec::with_capacity(spec.covers.len());
        for written in &spec.covers {
            let cover = resolve_cover(map, written)
                .ok_or_else(|| format!("category '{}': '{written}' names no seats of the event (write a row A, rows A-C or seats D1-D10)", spec.name))?;
            mark(map, cover, &mut covered);
            covers.push(cover);
        }
        categories.push(Category {
            name: spec.name.clone(),
            price_minor: spec.price_minor,
            covers,
            written: spec.covers.clone(),
            max_seats_per_user: spec.max_seats_per_user,
            held: BTreeMap::new(),
        });
    }
    if let Some(i) = covered.iter().position(|&n| n > 1) {
        return Err(format!("seat {} is in two categories", map.id(i as u32)));
    }
    if let Some(i) = covered.iter().position(|&n| n == 0) {
        return Err(format!(
            "seat {} is in no category; categories must cover every seat",
            map.id(i as u32)
        ));
    }
    Ok(categories)
}

fn mark(map: &SeatMap, (r0, r1, s0, s1): (u32, u32, u32, u32), covered: &mut [u8]) {
    for row in r0..=r1 {
        for seat in s0..=s1 {
            let i = row.saturating_mul(map.seats_per_row()).saturating_add(seat);
            if let Some(n) = covered.get_mut(i as usize) {
                *n = n.saturating_add(1);
            }
        }
    }
}

/// `A` (a row), `A-C` (rows), `D1-D10` or `D5` (seats of one row) as 0-based inclusive
/// (first row, last row, first seat, last seat).
fn resolve_cover(map: &SeatMap, written: &str) -> Option<(u32, u32, u32, u32)> {
    let row = |label: &str| {
        map.row_labels()
            .iter()
            .position(|l| l == label)
            .and_then(|r| u32::try_from(r).ok())
    };
    let last_seat = map.seats_per_row().checked_sub(1)?;
    let (from, to) = written.split_once('-').unwrap_or((written, written));
    if let (Some(a), Some(b)) = (row(from), row(to)) {
        return (a <= b).then_some((a, b, 0, last_seat));
    }
    let (a, b) = (map.index(from)?, map.index(to)?);
    let per_row = map.seats_per_row();
    let (ra, rb) = (a / per_row, b / per_row);
    (ra == rb && a <= b).then_some((ra, ra, a % per_row, b % per_row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventSpec, FirstAdmin, PasswordHash, FIRST_ADMIN};

    const HASH: PasswordHash = PasswordHash {
        salt: [1; 16],
        iterations: limits::PBKDF2_ITERATIONS_MIN,
        hash: [2; 32],
    };

    /// root (admin), door (door staff), ana and bo; `hall` of rows A-C by 6, A "front" at
    /// 80.00 EUR and B-C "rear" at 45.00, at most 8 seats each.
    fn state() -> State {
        let mut s = State::default();
        s.apply(&Command::Bootstrap {
            now_ms: 0,
            first_admin: Some(FirstAdmin::Password(HASH)),
        });
        for (name, role) in [
            ("root", Role::Admin),
            ("door", Role::Door),
            ("ana", Role::Customer),
            ("bo", Role::Customer),
        ] {
            let added = s.apply(&Command::AddUser {
                request_id: format!("add-{name}"),
                actor: Some(FIRST_ADMIN.into()),
                name: name.into(),
                role,
                password: HASH,
            });
            assert_eq!(added, Outcome::UserAdded);
        }
        let created = s.apply(&create(
            "hall",
            categories(&[("front", 8_000, "A"), ("rear", 4_500, "B-C")]),
        ));
        assert!(matches!(created, Outcome::EventCreated(_)), "{created:?}");
        s
    }

    fn categories(list: &[(&str, u64, &str)]) -> Vec<CategorySpec> {
        list.iter()
            .map(|&(name, price_minor, covers)| CategorySpec {
                name: name.into(),
                price_minor,
                covers: covers.split(',').map(String::from).collect(),
                max_seats_per_user: 0,
            })
            .collect()
    }

    fn create(name: &str, categories: Vec<CategorySpec>) -> Command {
        Command::CreateEvent {
            request_id: format!("create-{name}"),
            actor: "root".into(),
            spec: EventSpec {
                name: name.into(),
                row_labels: SeatMap::default_row_labels(3),
                seats_per_row: 6,
                max_seats_per_user: 8,
                currency: if categories.is_empty() { "" } else { "EUR" }.into(),
                categories,
            },
            now_ms: 0,
        }
    }

    fn hold_seats(actor: &str, id: &str, seats: &[&str], now_ms: u64) -> Command {
        Command::Hold {
            request_id: id.into(),
            actor: actor.into(),
            event: "hall".into(),
            target: HoldTarget::Seats(seats.iter().map(|s| s.to_string()).collect()),
            duration_ms: 1_000,
            max_ms: 5_000,
            now_ms,
        }
    }

    fn hold_best(actor: &str, id: &str, count: u32, category: Option<&str>) -> Command {
        Command::Hold {
            request_id: id.into(),
            actor: actor.into(),
            event: "hall".into(),
            target: HoldTarget::Best(BestAsk {
                count,
                category: category.map(String::from),
                max_price_minor: None,
                split: false,
            }),
            duration_ms: 1_000,
            max_ms: 5_000,
            now_ms: 0,
        }
    }

    fn confirm(actor: &str, id: &str, hold: u64, now_ms: u64) -> Command {
        Command::ConfirmHold {
            request_id: id.into(),
            actor: actor.into(),
            hold,
            payment_ref: Some("pay_42".into()),
            now_ms,
        }
    }

    fn held(outcome: Outcome) -> HoldView {
        match outcome {
            Outcome::Held(hold) | Outcome::HoldExtended(hold) => hold,
            other => panic!("not held: {other:?}"),
        }
    }

    #[test]
    fn a_confirmed_hold_is_a_booking_of_the_same_number_with_its_price() {
        let mut s = state();
        let hold = held(s.apply(&hold_seats("ana", "h1", &["A1", "B1"], 100)));
        assert_eq!(hold.id, "hd-1");
        assert_eq!(hold.expires_at_ms, 1_100);
        assert_eq!(hold.latest_expiry_ms, 5_100);
        assert_eq!((hold.total_minor, hold.currency.as_str()), (12_500, "EUR"));
        assert!(s.bookings_of("ana").is_empty(), "a hold is not a booking");
        assert_eq!(s.holds_of("ana").len(), 1);
        let Outcome::Confirmed(booking) = s.apply(&confirm("ana", "c1", 1, 1_099)) else {
            panic!("not confirmed")
        };
        assert_eq!(booking.id, "bk-1");
        assert_eq!(booking.seats, ["A1", "B1"]);
        assert_eq!(booking.total_minor, 12_500);
        assert_eq!(booking.payment_ref.as_deref(), Some("pay_42"));
        assert!(s.holds_of("ana").is_empty());
        assert_eq!(s.next_expiry_ms(), None);
        // Confirmed is for good: the expiry passing changes nothing.
        s.apply(&Command::Sweep { now_ms: 10_000 });
        assert_eq!(s.bookings_of("ana").len(), 1);
        assert_eq!(
            s.apply(&confirm("ana", "c2", 1, 10_001)),
            Outcome::Rejected(Rejection::HoldConfirmed {
                hold: "hd-1".into(),
                booking: "bk-1".into()
            })
        );
    }

    #[test]
    fn a_late_confirm_is_refused_though_nothing_swept_the_hold() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1"], 0)));
        // No command came between the hold and its expiry at 1000.
        assert_eq!(
            s.apply(&confirm("ana", "c1", 1, 1_000)),
            Outcome::Rejected(Rejection::HoldExpired {
                hold: "hd-1".into(),
                at_ms: 1_000
            })
        );
        assert!(s.bookings_of("ana").is_empty());
        // The seat is free again, for anyone.
        let again = held(s.apply(&hold_seats("bo", "h2", &["A1"], 1_000)));
        assert_eq!(again.id, "hd-2");
        let message = Rejection::HoldExpired {
            hold: "hd-1".into(),
            at_ms: 50_412_000,
        }
        .to_string();
        assert_eq!(message, "hold hd-1 expired at 14:00:12 UTC (log time)");
    }

    #[test]
    fn log_time_never_goes_back_and_expiry_follows_it() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1"], 5_000)));
        // A leader with a slower clock: its time is 0, log time stays 5000.
        let hold = held(s.apply(&hold_seats("bo", "h2", &["A2"], 0)));
        assert_eq!(hold.expires_at_ms, 6_000);
        assert_eq!(s.clock_ms(), 5_000);
        let mut touched = Vec::new();
        let swept = s.apply_noting(&Command::Sweep { now_ms: 6_000 }, &mut touched);
        assert_eq!(swept, Outcome::Swept { expired: 2 });
        touched.sort();
        assert_eq!(
            touched,
            [
                ("hall".to_string(), "A1".to_string()),
                ("hall".into(), "A2".into())
            ]
        );
        assert_eq!(s.event("hall").map(|e| e.taken), Some(0));
    }

    #[test]
    fn held_seats_are_neither_free_nor_sold() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1", "A2"], 0)));
        let before = s.clone();
        let refused = Outcome::Rejected(Rejection::SeatsHeld {
            event: "hall".into(),
            seats: vec!["A2".into()],
        });
        let reserve = Command::Reserve {
            request_id: "r".into(),
            actor: "bo".into(),
            event: "hall".into(),
            seats: vec!["A3".into(), "A2".into()],
            now_ms: 10,
        };
        assert_eq!(s.apply(&reserve), refused);
        assert_eq!(s.apply(&hold_seats("bo", "h2", &["A2"], 10)), refused);
        let cancel = Command::Cancel {
            request_id: "c".into(),
            actor: "ana".into(),
            target: crate::domain::CancelTarget::Booking("bk-1".into()),
            now_ms: 10,
        };
        assert_eq!(
            s.apply(&cancel),
            Outcome::Rejected(Rejection::UnknownBooking("bk-1".into()))
        );
        assert!(s.eq_but_dedupe(&before));
    }

    #[test]
    fn only_the_holder_confirms_or_extends_and_an_admin_may_release() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1"], 0)));
        let theirs = Outcome::Rejected(Rejection::NotYourHold("hd-1".into()));
        assert_eq!(s.apply(&confirm("bo", "c1", 1, 10)), theirs);
        let extend = |actor: &str, id: &str, duration_ms, now_ms| Command::ExtendHold {
            request_id: id.into(),
            actor: actor.into(),
            hold: 1,
            duration_ms,
            now_ms,
        };
        assert_eq!(s.apply(&extend("bo", "e1", 2_000, 10)), theirs);
        let release = |actor: &str, id: &str| Command::ReleaseHold {
            request_id: id.into(),
            actor: actor.into(),
            hold: 1,
            now_ms: 20,
        };
        assert_eq!(s.apply(&release("bo", "r1")), theirs);
        assert_eq!(
            s.apply(&release("root", "r2")),
            Outcome::HoldReleased {
                event: "hall".into(),
                seats: vec!["A1".into()]
            }
        );
        assert_eq!(
            s.apply(&confirm("ana", "c2", 1, 30)),
            Outcome::Rejected(Rejection::HoldReleased("hd-1".into()))
        );
        assert_eq!(
            s.apply(&confirm("ana", "c3", 99, 30)),
            Outcome::Rejected(Rejection::UnknownHold("hd-99".into()))
        );
    }

    #[test]
    fn extending_stops_at_the_holds_maximum() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1"], 0)));
        let extend = |id: &str, duration_ms, now_ms| Command::ExtendHold {
            request_id: id.into(),
            actor: "ana".into(),
            hold: 1,
            duration_ms,
            now_ms,
        };
        assert_eq!(
            held(s.apply(&extend("e1", 2_000, 500))).expires_at_ms,
            2_500
        );
        // Asked past the maximum (5000): as far as the maximum.
        assert_eq!(
            held(s.apply(&extend("e2", 7_000, 600))).expires_at_ms,
            5_000
        );
        assert_eq!(
            s.apply(&extend("e3", 1_000, 700)),
            Outcome::Rejected(Rejection::HoldAtMaximum {
                hold: "hd-1".into(),
                latest_ms: 5_000
            })
        );
        assert_eq!(s.next_expiry_ms(), Some(5_000));
    }

    #[test]
    fn holds_count_against_the_per_person_limit_until_they_end() {
        let mut s = state();
        let seats: Vec<String> = (1..=6).map(|n| format!("B{n}")).collect();
        let six: Vec<&str> = seats.iter().map(String::as_str).collect();
        held(s.apply(&hold_seats("ana", "h1", &six, 0)));
        let three = s.apply(&hold_seats("ana", "h2", &["C1", "C2", "C3"], 10));
        assert!(matches!(
            three,
            Outcome::Rejected(Rejection::LimitReached { held: 6, .. })
        ));
        // Once the first hold runs out, the room is back.
        held(s.apply(&hold_seats("ana", "h3", &["C1", "C2", "C3"], 1_000)));
    }

    /// The test state with "gala": front (row A, at most 2 a person) and rear (B-C).
    fn with_limited_gala() -> State {
        let mut s = state();
        let mut limited = categories(&[("front", 8_000, "A"), ("rear", 4_500, "B-C")]);
        limited[0].max_seats_per_user = 2;
        let Outcome::EventCreated(view) = s.apply(&create("gala", limited)) else {
            panic!("gala not created")
        };
        assert_eq!(view.categories[0].max_seats_per_user, 2);
        s
    }

    /// `hold` aimed at gala instead of hall.
    fn on_gala(mut hold: Command) -> Command {
        if let Command::Hold { event, .. } = &mut hold {
            *event = "gala".into();
        }
        hold
    }

    #[test]
    fn a_category_limit_counts_its_seats_apart_from_the_events() {
        let mut s = with_limited_gala();
        held(s.apply(&on_gala(hold_seats("ana", "h1", &["A1", "B1", "B2"], 0))));
        let before = s.clone();
        // One front seat more and she is over front's 2, though well within the event's 8.
        assert_eq!(
            s.apply(&on_gala(hold_seats("ana", "h2", &["A2", "A3", "C1"], 0))),
            Outcome::Rejected(Rejection::CategoryLimitReached {
                event: "gala".into(),
                category: "front".into(),
                limit: 2,
                held: 1,
                requested: 2,
            })
        );
        assert!(matches!(
            s.apply(&on_gala(hold_best("ana", "h4", 2, Some("front")))),
            Outcome::Rejected(Rejection::CategoryLimitReached { held: 1, .. })
        ));
        assert_eq!(s.events, before.events, "a refusal changes nothing");
        // Another person has a front allowance of their own; rear has no limit but the event's.
        held(s.apply(&on_gala(hold_seats("bo", "h5", &["A4", "A5"], 0))));
        held(s.apply(&on_gala(hold_seats("ana", "h6", &["C1", "C2", "C3"], 0))));
        // Her second front seat; a third is refused.
        held(s.apply(&on_gala(hold_seats("ana", "h7", &["A2"], 0))));
        assert!(matches!(
            s.apply(&on_gala(hold_seats("ana", "h8", &["A6"], 10))),
            Outcome::Rejected(Rejection::CategoryLimitReached { held: 2, .. })
        ));
        // Once her holds lapse, the seats they give back count no more.
        s.apply(&Command::Sweep { now_ms: 1_000 });
        held(s.apply(&on_gala(hold_seats("ana", "h9", &["A1", "A2"], 1_000))));
        assert_eq!(s.check_invariants(), Ok(()));
    }

    #[test]
    fn best_available_passes_over_a_category_the_person_has_used_up() {
        let mut s = with_limited_gala();
        // Front is the best; with one front seat left to her, ana's best two are at the rear.
        held(s.apply(&on_gala(hold_seats("ana", "h1", &["A1"], 0))));
        let Outcome::Held(rear) = s.apply(&on_gala(hold_best("ana", "h2", 2, None))) else {
            panic!("best two not held")
        };
        assert!(
            rear.seats.iter().all(|seat| seat.starts_with('B')),
            "{rear:?}"
        );
        // Someone with the whole allowance gets the front.
        let Outcome::Held(front) = s.apply(&on_gala(hold_best("bo", "h3", 2, None))) else {
            panic!("best two not held")
        };
        assert!(
            front.seats.iter().all(|seat| seat.starts_with('A')),
            "{front:?}"
        );
        // Asking for front by name still names the limit.
        assert!(matches!(
            s.apply(&on_gala(hold_best("ana", "h4", 2, Some("front")))),
            Outcome::Rejected(Rejection::CategoryLimitReached { held: 1, .. })
        ));
        assert_eq!(s.check_invariants(), Ok(()));
    }

    #[test]
    fn best_available_takes_the_front_centre_of_the_category_asked() {
        let mut s = state();
        let front = held(s.apply(&hold_best("ana", "b1", 2, None)));
        assert_eq!(front.seats, ["A3", "A4"]);
        assert_eq!(front.total_minor, 16_000);
        // B2-B5 is nearer the centre but would strand B1 and B6: B1-B4 leaves a pair.
        let rear = held(s.apply(&hold_best("bo", "b2", 4, Some("rear"))));
        assert_eq!(rear.seats, ["B1", "B2", "B3", "B4"]);
        assert_eq!(rear.total_minor, 18_000);
        // Rows A and B have pairs left; in row C, C2-C4 would strand C1: C1-C3 it is.
        let three = held(s.apply(&hold_best("root", "b3", 3, None)));
        assert_eq!(three.seats, ["C1", "C2", "C3"]);
        assert_eq!(
            s.apply(&hold_best("bo", "b4", 7, None)),
            Outcome::Rejected(Rejection::NoSeats {
                event: "hall".into(),
                count: 7,
                together: true,
                category: None
            })
        );
        assert_eq!(
            s.apply(&hold_best("bo", "b5", 1, Some("balcony"))),
            Outcome::Rejected(Rejection::UnknownCategory {
                event: "hall".into(),
                category: "balcony".into()
            })
        );
    }

    #[test]
    fn a_ticket_is_checked_in_once_by_door_staff_and_void_once_cancelled() {
        let mut s = state();
        held(s.apply(&hold_seats("ana", "h1", &["A1", "A2"], 0)));
        s.apply(&confirm("ana", "c1", 1, 10));
        let check_in = |actor: &str, id: &str, seat: &str| Command::CheckIn {
            request_id: id.into(),
            actor: actor.into(),
            event: "hall".into(),
            seat: seat.into(),
            booking: 1,
            now_ms: 20,
        };
        assert_eq!(
            s.apply(&check_in("ana", "k0", "A1")),
            Outcome::Rejected(Rejection::NotDoor)
        );
        let Outcome::CheckedIn(done) = s.apply(&check_in("door", "k1", "a1")) else {
            panic!("not checked in")
        };
        assert_eq!(
            (done.seat.as_str(), done.by.as_str(), done.at_ms),
            ("A1", "door", 20)
        );
        assert_eq!(
            s.apply(&check_in("root", "k2", "A1")),
            Outcome::Rejected(Rejection::AlreadyCheckedIn {
                seat: "A1".into(),
                booking: "bk-1".into(),
                at_ms: 20,
                by: "door".into()
            })
        );
        s.apply(&Command::Cancel {
            request_id: "x".into(),
            actor: "ana".into(),
            target: crate::domain::CancelTarget::Booking("bk-1".into()),
            now_ms: 30,
        });
        assert_eq!(
            s.apply(&check_in("door", "k3", "A2")),
            Outcome::Rejected(Rejection::TicketVoid {
                event: "hall".into(),
                seat: "A2".into(),
                booking: "bk-1".into()
            })
        );
        assert_eq!(
            s.check_in_of(1, 0),
            None,
            "a cancelled seat's check-in goes with it"
        );
    }

    #[test]
    fn categories_that_do_not_fit_the_map_are_refused_and_change_nothing() {
        let mut s = state();
        for (name, list) in [
            ("gaps", categories(&[("front", 100, "A")])),
            ("twice", categories(&[("a", 1, "A-B"), ("b", 1, "B-C")])),
            ("nowhere", categories(&[("a", 1, "A-C"), ("b", 1, "Q")])),
            ("range", categories(&[("a", 1, "A1-B6"), ("b", 1, "C")])),
        ] {
            let before = s.clone();
            let outcome = s.apply(&create(name, list));
            assert!(
                matches!(outcome, Outcome::Rejected(Rejection::BadCategories(_))),
                "{name}: {outcome:?}"
            );
            assert!(s.eq_but_dedupe(&before), "{name}");
        }
        let seats = categories(&[("a", 1, "A1-A3,B-C"), ("b", 2, "A4-A6")]);
        assert!(matches!(
            s.apply(&create("mixed", seats)),
            Outcome::EventCreated(_)
        ));
        let mixed = s.event("mixed").expect("created");
        assert_eq!((mixed.price_at(2), mixed.price_at(3)), (1, 2));
    }
}
