//! The replicated state and the one function that changes it.
//!
//! Time here is log time: each command carries the proposing leader's clock, and the state
//! keeps the largest it has applied, so time never goes back whatever the leaders' clocks
//! say. Holds expire by it (see `checkout`): every command first gives back the seats of the
//! holds it has passed, so every node frees the same seats at the same log index.

mod checkout;
mod sessions;

use super::request_id::SessionKey;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bookings::{Bookings, Names, SeatList};
use super::{
    validate, BookingView, CancelTarget, Command, EventSpec, EventView, FirstAdmin, Outcome,
    PasswordHash, Rejection, Role, SeatMap, FIRST_ADMIN,
};
use crate::limits;

/// The name of the event every cluster starts with: the prototype's ten seats S1..S10.
pub const DEMO_EVENT: &str = "demo";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub role: Role,
    pub password: PasswordHash,
    /// Tokens carry the epoch they were issued in; moving it on revokes every older token.
    pub token_epoch: u64,
    /// A disabled user cannot log in, and no token of it works.
    pub disabled: bool,
}

impl User {
    fn new(role: Role, password: &PasswordHash) -> User {
        User {
            role,
            password: password.clone(),
            token_epoch: 0,
            disabled: false,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub name: String,
    pub map: SeatMap,
    pub max_seats_per_user: u32,
    /// The booking (or hold: a hold is a booking not yet confirmed) of each seat, by dense
    /// seat index.
    ///
    /// Shared copy-on-write: a snapshot's copy of the state costs a pointer per event, and
    /// apply copies only the seats of an event it changes while a snapshot is being encoded.
    pub holders: Arc<Vec<Option<u64>>>,
    /// Seats each user has reserved or holds in this event.
    pub held: BTreeMap<String, u32>,
    pub taken: u32,
    pub created_at_ms: u64,
    /// Best first; empty: every seat is in no category and costs nothing.
    pub categories: Vec<Category>,
    pub currency: String,
}

/// A price category with the seats it covers, resolved against the seat map.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    pub price_minor: u64,
    /// Inclusive rectangles of (first row, last row, first seat, last seat), 0-based.
    pub covers: Vec<(u32, u32, u32, u32)>,
    /// The covers as they were written, for showing.
    pub written: Vec<String>,
    /// Seats of it one person may have at once; 0: only the event's limit.
    #[serde(default)]
    pub max_seats_per_user: u32,
    /// Seats of it each user has reserved or holds, kept only when it has a limit of its own.
    #[serde(default)]
    pub held: BTreeMap<String, u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookingRecord {
    /// Shared with the other bookings of the event (see [`Names`]).
    pub event: Arc<str>,
    /// Shared with the user's other bookings.
    pub user: Arc<str>,
    /// Dense seat indices, in the order they were asked for.
    pub seats: SeatList,
    pub created_at_ms: u64,
    pub status: BookingStatus,
    /// What the seats cost together when they were taken, in minor units.
    pub total_minor: u64,
    pub payment_ref: Option<Box<str>>,
}

/// A booking is confirmed, or a hold that runs out at a log time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingStatus {
    Held {
        expires_at_ms: u64,
        /// The latest `expires_at_ms` extending may reach.
        latest_ms: u64,
    },
    Confirmed,
}

/// Outcomes of recent requests by (actor, request id), so that a retry returns the first
/// outcome instead of acting twice. Bounded: the oldest is forgotten first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Dedupe {
    outcomes: BTreeMap<(String, String), Outcome>,
    order: VecDeque<(String, String)>,
}

impl Dedupe {
    fn get(&self, key: &(String, String)) -> Option<&Outcome> {
        self.outcomes.get(key)
    }

    fn insert(&mut self, key: (String, String), outcome: Outcome) {
        if self.order.len() >= limits::DEDUPE_ENTRIES_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.outcomes.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.outcomes.insert(key, outcome);
    }

    /// The table's invariant: one outcome per key in the order, and no more than the bound.
    fn check(&self) -> Result<(), String> {
        if self.order.len() != self.outcomes.len()
            || self.outcomes.len() > limits::DEDUPE_ENTRIES_MAX
        {
            return Err(format!(
                "the dedupe table keeps {} outcomes in an order of {}",
                self.outcomes.len(),
                self.order.len()
            ));
        }
        Ok(())
    }
}

/// Everything the cluster agrees on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    bootstrapped: bool,
    /// The hash of the one-time code that may make the first admin, until it is used.
    setup_code: Option<[u8; 32]>,
    users: BTreeMap<String, User>,
    events: BTreeMap<String, EventRecord>,
    /// By booking number, given out in commit order.
    bookings: Bookings,
    /// The number of the last booking or hold made; 0 before the first.
    last_booking: u64,
    dedupe: Dedupe,
    /// Outcomes the client library's sessions have not yet acknowledged.
    sessions: sessions::Sessions,
    /// Log time: the largest time of any command applied.
    clock_ms: u64,
    /// Every live hold by (expiry, number), soonest first.
    expiries: BTreeSet<(u64, u64)>,
    /// How recent holds ended, for a late confirm's refusal; bounded, oldest forgotten first.
    ended: checkout::EndedHolds,
    /// Tickets used, by (booking, seat).
    check_ins: BTreeMap<(u64, u32), CheckIn>,
    /// The user and event names bookings share: a cache, not encoded.
    #[serde(skip)]
    names: Names,
}

/// When and by whom a ticket was checked in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CheckIn {
    pub at_ms: u64,
    pub by: String,
}

impl State {
    /// Applies one committed command. Every node applies the same commands in the same order,
    /// so every node reaches the same state and gives the same outcome.
    ///
    /// Total: a committed command is replayed on every node for as long as the log lives, so
    /// one that panicked here would stop the cluster for good. Every command is checked again,
    /// shape first, then against the state, before anything changes; anything amiss is a
    /// rejection.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        self.apply_noting(command, &mut Vec::new())
    }

    /// [`State::apply`], adding to `touched` the (event, seat) of every seat whose hold ran
    /// out before the command (the seats of the command's own outcome are not added).
    pub fn apply_noting(
        &mut self,
        command: &Command,
        touched: &mut Vec<(String, String)>,
    ) -> Outcome {
        // Before the dedupe table: a malformed request id or actor is no key to remember.
        if let Err(why) = validate::command(command) {
            return Outcome::Rejected(Rejection::Invalid(why));
        }
        // Time moves on first, for a replayed retry too: the holds it passed are over.
        let expired = match command.now_ms() {
            Some(now) => self.advance_clock(now, touched),
            None => 0,
        };
        let key = command.dedupe_key();
        // Read once: `recall` and `remember` both go by it.
        let session = key.as_ref().and_then(|key| SessionKey::parse(&key.1));
        match key.as_ref().map(|key| self.recall(key, session)) {
            Some(Ok(Some(first))) => return first,
            Some(Err(refused)) => return Outcome::Rejected(refused),
            Some(Ok(None)) | None => {}
        }
        let outcome = match self.execute(command) {
            Outcome::Swept { .. } => Outcome::Swept { expired },
            other => other,
        };
        if let Some(key) = key {
            self.remember(key, session, outcome.clone());
        }
        // A broken invariant here is a bug in apply itself, not bad input: stop loudly in
        // debug builds and tests, where the whole state is cheap enough to walk.
        #[cfg(debug_assertions)]
        if let Err(broken) = self.check_invariants() {
            panic!("applying {command:?} broke an invariant: {broken}");
        }
        outcome
    }

    /// Runs a checked command that is not a replay: the step for its kind, its refusal as
    /// [`Outcome::Rejected`].
    fn execute(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Bootstrap {
                now_ms,
                first_admin,
            } => self.bootstrap(*now_ms, first_admin.as_ref()),
            Command::SetupAdmin {
                name,
                password,
                setup_code,
                ..
            } => added(self.setup_admin(name, password, setup_code)),
            Command::RevokeTokens { actor, user, .. } => self
                .change_user(actor, user, false, |_| ())
                .map_or_else(Outcome::Rejected, |()| Outcome::UserChanged),
            Command::SetPassword {
                actor,
                user,
                password,
                ..
            } => self
                .change_user(actor, user, false, |u| u.password = password.clone())
                .map_or_else(Outcome::Rejected, |()| Outcome::UserChanged),
            Command::SetDisabled {
                actor,
                user,
                disabled,
                ..
            } => self
                .change_user(actor, user, true, |u| u.disabled = *disabled)
                .map_or_else(Outcome::Rejected, |()| Outcome::UserChanged),
            Command::AddUser {
                actor,
                name,
                role,
                password,
                ..
            } => added(self.add_user(actor.as_deref(), name, *role, password)),
            Command::CreateEvent {
                actor,
                spec,
                now_ms,
                ..
            } => self
                .create_event(actor, spec, *now_ms)
                .map_or_else(Outcome::Rejected, Outcome::EventCreated),
            Command::Reserve {
                actor,
                event,
                seats,
                ..
            } => self
                .reserve(actor, event, seats)
                .map_or_else(Outcome::Rejected, Outcome::Reserved),
            Command::Cancel { actor, target, .. } => {
                self.cancel(actor, target)
                    .map_or_else(Outcome::Rejected, |(event, seats)| Outcome::Cancelled {
                        event,
                        seats,
                    })
            }
            Command::Hold { .. }
            | Command::ConfirmHold { .. }
            | Command::ExtendHold { .. }
            | Command::ReleaseHold { .. }
            | Command::CheckIn { .. }
            | Command::Sweep { .. } => self.execute_checkout(command),
        }
    }

    fn bootstrap(&mut self, now_ms: u64, first_admin: Option<&FirstAdmin>) -> Outcome {
        if self.bootstrapped {
            return Outcome::AlreadyBootstrapped;
        }
        if !self.events.contains_key(DEMO_EVENT) {
            let spec = EventSpec {
                name: DEMO_EVENT.to_string(),
                row_labels: vec!["S".to_string()],
                seats_per_row: 10,
                max_seats_per_user: limits::SEATS_PER_USER_DEFAULT,
                categories: Vec::new(),
                currency: String::new(),
            };
            if let Err(rejection) = self.insert_event(&spec, now_ms) {
                return Outcome::Rejected(rejection);
            }
        }
        match first_admin {
            Some(FirstAdmin::Password(password)) if !self.has_admin() => {
                let admin = User::new(Role::Admin, password);
                self.users.insert(FIRST_ADMIN.to_string(), admin);
            }
            Some(FirstAdmin::SetupCode(hash)) if !self.has_admin() => {
                self.setup_code = Some(*hash);
            }
            _ => {}
        }
        self.bootstrapped = true;
        Outcome::Bootstrapped
    }

    fn add_user(
        &mut self,
        actor: Option<&str>,
        name: &str,
        role: Role,
        password: &PasswordHash,
    ) -> Result<(), Rejection> {
        // Customers register themselves. An admin is made by an admin; the first one only by
        // the cluster's seed or its setup code.
        if role != Role::Customer && !self.is_admin(actor) {
            return Err(Rejection::NotAdmin);
        }
        self.insert_user(name, User::new(role, password))
    }

    fn insert_user(&mut self, name: &str, user: User) -> Result<(), Rejection> {
        if self.users.contains_key(name) {
            return Err(Rejection::UserExists(name.to_string()));
        }
        if self.users.len() >= limits::USERS_MAX {
            return Err(Rejection::TooManyUsers(self.users.len()));
        }
        self.users.insert(name.to_string(), user);
        Ok(())
    }

    fn setup_admin(
        &mut self,
        name: &str,
        password: &PasswordHash,
        code: &[u8; 32],
    ) -> Result<(), Rejection> {
        if self.setup_code.as_ref() != Some(code) || self.has_admin() {
            return Err(Rejection::SetupRefused);
        }
        self.insert_user(name, User::new(Role::Admin, password))?;
        // One time only.
        self.setup_code = None;
        Ok(())
    }

    /// Changes `user` as `actor` (itself, or an admin; only an admin when `admin_only`) and
    /// revokes its tokens.
    fn change_user(
        &mut self,
        actor: &str,
        user: &str,
        admin_only: bool,
        change: impl FnOnce(&mut User),
    ) -> Result<(), Rejection> {
        self.known_user(actor)?;
        let is_admin = self.is_admin(Some(actor));
        if !(is_admin || (!admin_only && actor == user)) {
            return Err(Rejection::NotAdmin);
        }
        let record = self
            .users
            .get_mut(user)
            .ok_or_else(|| Rejection::UnknownUser(user.to_string()))?;
        change(record);
        record.token_epoch = record.token_epoch.wrapping_add(1);
        Ok(())
    }

    fn create_event(
        &mut self,
        actor: &str,
        spec: &EventSpec,
        now_ms: u64,
    ) -> Result<EventView, Rejection> {
        self.known_user(actor)?;
        if !self.is_admin(Some(actor)) {
            return Err(Rejection::NotAdmin);
        }
        if self.events.contains_key(&spec.name) {
            return Err(Rejection::EventExists(spec.name.clone()));
        }
        if self.events.len() >= limits::EVENTS_MAX {
            return Err(Rejection::TooManyEvents(self.events.len()));
        }
        self.insert_event(spec, now_ms)
    }

    fn insert_event(&mut self, spec: &EventSpec, now_ms: u64) -> Result<EventView, Rejection> {
        validate::max_seats_per_user(spec.max_seats_per_user).map_err(Rejection::Invalid)?;
        let map = SeatMap::new(spec.row_labels.clone(), spec.seats_per_row)
            .map_err(Rejection::Invalid)?;
        let seats = usize::try_from(map.len())
            .map_err(|_| Rejection::Invalid("the event has too many seats".into()))?;
        validate::categories(&spec.categories, &spec.currency).map_err(Rejection::Invalid)?;
        let categories = checkout::resolve_categories(&map, &spec.categories)
            .map_err(Rejection::BadCategories)?;
        let event = EventRecord {
            name: spec.name.clone(),
            holders: Arc::new(vec![None; seats]),
            map,
            max_seats_per_user: spec.max_seats_per_user,
            held: BTreeMap::new(),
            taken: 0,
            created_at_ms: now_ms,
            categories,
            currency: spec.currency.clone(),
        };
        let view = event.view();
        self.events.insert(spec.name.clone(), event);
        Ok(view)
    }

    fn known_user(&self, name: &str) -> Result<(), Rejection> {
        if self.users.contains_key(name) {
            Ok(())
        } else {
            Err(Rejection::UnknownUser(name.to_string()))
        }
    }

    fn reserve(
        &mut self,
        actor: &str,
        event_name: &str,
        seats: &[String],
    ) -> Result<BookingView, Rejection> {
        let indices = self.free_seats_named(actor, event_name, seats)?;
        let booking = self.take_seats(actor, event_name, indices, BookingStatus::Confirmed)?;
        Ok(booking.0)
    }

    /// The dense indices of `seats` of `event_name`, if `actor` is known and every one is free.
    fn free_seats_named(
        &self,
        actor: &str,
        event_name: &str,
        seats: &[String],
    ) -> Result<Vec<u32>, Rejection> {
        self.known_user(actor)?;
        let event = self
            .events
            .get(event_name)
            .ok_or_else(|| Rejection::UnknownEvent(event_name.to_string()))?;
        let indices = event.seat_indices(seats)?;
        let (mut taken, mut held) = (Vec::new(), Vec::new());
        for &i in &indices {
            if let Some(number) = event.slot(i)? {
                let is_hold = self
                    .bookings
                    .get(number)
                    .is_some_and(|b| b.status != BookingStatus::Confirmed);
                if is_hold { &mut held } else { &mut taken }.push(event.map.id(i));
            }
        }
        if !taken.is_empty() {
            return Err(Rejection::SeatsTaken {
                event: event_name.to_string(),
                seats: taken,
            });
        }
        if !held.is_empty() {
            return Err(Rejection::SeatsHeld {
                event: event_name.to_string(),
                seats: held,
            });
        }
        Ok(indices)
    }

    /// Gives free seats `indices` of `event_name` to `actor` as a new booking or hold, within
    /// the per-user limit. Returns its view and number.
    fn take_seats(
        &mut self,
        actor: &str,
        event_name: &str,
        indices: Vec<u32>,
        status: BookingStatus,
    ) -> Result<(BookingView, u64), Rejection> {
        let now_ms = self.clock_ms;
        let number = self
            .last_booking
            .checked_add(1)
            .ok_or_else(|| Rejection::Invalid("no booking numbers are left".into()))?;
        let event = self
            .events
            .get_mut(event_name)
            .ok_or_else(|| Rejection::UnknownEvent(event_name.to_string()))?;
        for &i in &indices {
            if event.slot(i)?.is_some() {
                return Err(Rejection::Invalid(format!(
                    "seat {} of '{event_name}' is not free",
                    event.map.id(i)
                )));
            }
        }
        let (held_after, taken_after) = event.counts_after(actor, indices.len())?;
        let per_category = event.category_counts_after(actor, &indices)?;
        // Nothing can be refused past this point.
        for (category, held) in per_category {
            if let Some(c) = event.categories.get_mut(category) {
                set_count(&mut c.held, actor, held);
            }
        }
        for &i in &indices {
            if let Some(slot) = event.slot_mut(i) {
                *slot = Some(number);
            }
        }
        event.taken = taken_after;
        set_count(&mut event.held, actor, held_after);
        self.last_booking = number;
        let total_minor = event.price_of(&indices);
        let booking = BookingRecord {
            event: self.names.intern(event_name),
            user: self.names.intern(actor),
            seats: SeatList::from(indices),
            created_at_ms: now_ms,
            status,
            total_minor,
            payment_ref: None,
        };
        let view = booking.view(number, event);
        if let BookingStatus::Held { expires_at_ms, .. } = status {
            self.expiries.insert((expires_at_ms, number));
        }
        self.bookings.insert(number, booking);
        Ok((view, number))
    }

    /// Returns the event and the seats freed.
    fn cancel(
        &mut self,
        actor: &str,
        target: &CancelTarget,
    ) -> Result<(String, Vec<String>), Rejection> {
        self.known_user(actor)?;
        let is_admin = self.is_admin(Some(actor));
        // Work out (booking, seat) pairs first, so that a refusal changes nothing.
        let (event_name, pairs) = match target {
            CancelTarget::Booking(id) => self.booking_to_cancel(actor, is_admin, id)?,
            CancelTarget::Seats { event, seats } => {
                self.seats_to_cancel(actor, is_admin, event, seats)?
            }
        };
        let Some(event) = self.events.get_mut(&event_name) else {
            return Err(Rejection::UnknownEvent(event_name));
        };
        event.check_held(&event_name, &pairs, &self.bookings)?;
        // Nothing can be refused past this point.
        for pair in &pairs {
            self.check_ins.remove(pair);
        }
        let freed = event.free(pairs, &mut self.bookings);
        Ok((event_name, freed))
    }

    /// The event and the (booking, seat) pairs of booking `id`, if `actor` may cancel it.
    fn booking_to_cancel(
        &self,
        actor: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<(String, Vec<(u64, u32)>), Rejection> {
        let unknown = || Rejection::UnknownBooking(id.to_string());
        let number = validate::parse_booking_id(id).ok_or_else(unknown)?;
        let booking = self
            .bookings
            .get(number)
            .filter(|b| b.status == BookingStatus::Confirmed)
            .ok_or_else(unknown)?;
        if *booking.user != *actor && !is_admin {
            return Err(Rejection::NotOwner(id.to_string()));
        }
        let pairs = booking.seats.iter().map(|&s| (number, s)).collect();
        Ok((booking.event.to_string(), pairs))
    }

    /// The (booking, seat) pairs of `seats` in `event`, if each is reserved and `actor` may
    /// cancel it.
    fn seats_to_cancel(
        &self,
        actor: &str,
        is_admin: bool,
        event: &str,
        seats: &[String],
    ) -> Result<(String, Vec<(u64, u32)>), Rejection> {
        let record = self
            .events
            .get(event)
            .ok_or_else(|| Rejection::UnknownEvent(event.to_string()))?;
        let indices = record.seat_indices(seats)?;
        let mut pairs = Vec::with_capacity(indices.len());
        for i in indices {
            let seat = record.map.id(i);
            let not_reserved = || Rejection::SeatNotReserved {
                event: event.to_string(),
                seat: seat.clone(),
            };
            let number = record.slot(i)?.ok_or_else(not_reserved)?;
            // A hold is released, not cancelled.
            if self
                .bookings
                .get(number)
                .is_some_and(|b| b.status != BookingStatus::Confirmed)
            {
                return Err(not_reserved());
            }
            let holder = self.bookings.get(number).map(|b| &*b.user);
            if holder != Some(actor) && !is_admin {
                return Err(Rejection::NotOwner(format!("seat {seat}")));
            }
            pairs.push((number, i));
        }
        Ok((event.to_string(), pairs))
    }

    /// Whether the cluster was seeded (the demo event, the way to the first admin).
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// The hash of the setup code that may still make the first admin.
    pub fn setup_code_hash(&self) -> Option<[u8; 32]> {
        self.setup_code.filter(|_| !self.has_admin())
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn event(&self, name: &str) -> Option<&EventRecord> {
        self.events.get(name)
    }

    pub fn events(&self) -> impl Iterator<Item = &EventRecord> {
        self.events.values()
    }

    pub fn is_admin(&self, user: Option<&str>) -> bool {
        user.and_then(|u| self.users.get(u))
            .is_some_and(|u| u.role == Role::Admin)
    }

    fn has_admin(&self) -> bool {
        self.users.values().any(|u| u.role == Role::Admin)
    }

    /// A confirmed booking.
    pub fn booking(&self, number: u64) -> Option<BookingView> {
        let booking = self.bookings.get(number)?;
        if booking.status != BookingStatus::Confirmed {
            return None;
        }
        let event = self.events.get(&*booking.event)?;
        Some(booking.view(number, event))
    }

    /// A booking or a live hold by number, as it is stored.
    pub fn record(&self, number: u64) -> Option<&BookingRecord> {
        self.bookings.get(number)
    }

    /// Every confirmed booking of the user, oldest first.
    pub fn bookings_of(&self, user: &str) -> Vec<BookingView> {
        self.bookings
            .iter()
            .filter(|(_, b)| &*b.user == user && b.status == BookingStatus::Confirmed)
            .filter_map(|(number, b)| Some(b.view(number, self.events.get(&*b.event)?)))
            .collect()
    }

    /// Who reserved or holds a seat (booking number, user and status), if anyone.
    pub fn holder(&self, event: &EventRecord, seat: u32) -> Option<(u64, &str)> {
        self.seat_holder(event, seat).map(|(n, u, _)| (n, u))
    }

    /// [`State::holder`] with the booking's status.
    pub fn seat_holder(
        &self,
        event: &EventRecord,
        seat: u32,
    ) -> Option<(u64, &str, BookingStatus)> {
        let number = event.holders.get(seat as usize).copied().flatten()?;
        let booking = self.bookings.get(number)?;
        Some((number, &*booking.user, booking.status))
    }

    /// Log time: the largest time of the commands applied.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// When the next live hold runs out, if any is live.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|&(at, _)| at)
    }

    /// When and by whom a ticket (seat of booking) was checked in.
    pub fn check_in_of(&self, booking: u64, seat: u32) -> Option<&CheckIn> {
        self.check_ins.get(&(booking, seat))
    }

    /// The invariants every reachable state keeps, or the first one broken. Checked after
    /// each apply in debug builds and by the tests; it reads everything with bounds-checked
    /// lookups, so it answers for any state, in any build.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.events.len() > limits::EVENTS_MAX {
            return Err(format!("{} events", self.events.len()));
        }
        if self.users.len() > limits::USERS_MAX {
            return Err(format!("{} users", self.users.len()));
        }
        for event in self.events.values() {
            self.check_event(event)?;
        }
        for (number, booking) in self.bookings.iter() {
            self.check_booking(number, booking)?;
        }
        self.check_holds()?;
        self.dedupe.check()?;
        self.sessions.check()
    }

    /// An event's map and limit are valid, and its counts agree with the bookings its seats
    /// name.
    fn check_event(&self, event: &EventRecord) -> Result<(), String> {
        let name = &event.name;
        event
            .map
            .check()
            .map_err(|e| format!("event {name}'s seat map: {e}"))?;
        validate::max_seats_per_user(event.max_seats_per_user)
            .map_err(|e| format!("event {name}: {e}"))?;
        if usize::try_from(event.map.len()).ok() != Some(event.holders.len()) {
            return Err(format!(
                "event {name} has {} holder slots for {} seats",
                event.holders.len(),
                event.map.len()
            ));
        }
        let (taken, held) = self.count_holders(event)?;
        if taken != event.taken {
            return Err(format!(
                "event {name} counts {} seats taken; {taken} are",
                event.taken
            ));
        }
        let recorded: BTreeMap<&str, u32> =
            event.held.iter().map(|(u, &n)| (u.as_str(), n)).collect();
        if held != recorded {
            return Err(format!(
                "event {name} per-user counts {recorded:?}; the seats say {held:?}"
            ));
        }
        if let Some((user, n)) = held.iter().find(|(_, &n)| n > event.max_seats_per_user) {
            return Err(format!(
                "{user} has reserved {n} seats of {name}, over its limit of {}",
                event.max_seats_per_user
            ));
        }
        self.check_category_counts(event)
    }

    /// Each category with a limit of its own counts, per user, the seats of it their bookings
    /// have, within the limit; one without keeps no counts.
    fn check_category_counts(&self, event: &EventRecord) -> Result<(), String> {
        let name = &event.name;
        let mut counted: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); event.categories.len()];
        for (seat, holder) in (0u32..).zip(event.holders.iter()) {
            let (Some(number), Some(c)) = (holder, event.category_of(seat)) else {
                continue;
            };
            let limited = event
                .categories
                .get(c)
                .is_some_and(|c| c.max_seats_per_user > 0);
            if let (true, Some(booking), Some(counts)) =
                (limited, self.bookings.get(*number), counted.get_mut(c))
            {
                *counts.entry(&*booking.user).or_default() += 1;
            }
        }
        for (category, counts) in event.categories.iter().zip(counted) {
            let recorded: BTreeMap<&str, u32> = category
                .held
                .iter()
                .map(|(u, &n)| (u.as_str(), n))
                .collect();
            if recorded != counts {
                return Err(format!(
                    "event {name} category {} counts {recorded:?}; the seats say {counts:?}",
                    category.name
                ));
            }
            let limit = category.max_seats_per_user;
            if let Some((user, n)) = counts.iter().find(|(_, &n)| limit > 0 && n > limit) {
                return Err(format!(
                    "{user} has {n} {} seats of {name}, over its limit of {limit}",
                    category.name
                ));
            }
        }
        Ok(())
    }

    /// The seats of `event` taken, and how many each user has reserved, counted from its
    /// seats; each seat's booking must exist and have it.
    fn count_holders(&self, event: &EventRecord) -> Result<(u32, BTreeMap<&str, u32>), String> {
        let name = &event.name;
        let mut held: BTreeMap<&str, u32> = BTreeMap::new();
        let mut taken: u32 = 0;
        for (seat, holder) in (0u32..).zip(event.holders.iter()) {
            let Some(number) = holder else { continue };
            taken = taken.saturating_add(1);
            let booking = self
                .bookings
                .get(*number)
                .ok_or_else(|| format!("event {name} seat {seat}: no booking {number}"))?;
            if *booking.event != **name || !booking.seats.contains(&seat) {
                return Err(format!(
                    "event {name} seat {seat} names booking {number}, which does not have it"
                ));
            }
            let count = held.entry(&*booking.user).or_insert(0);
            *count = count.saturating_add(1);
        }
        Ok((taken, held))
    }

    /// A booking's number is one given out, its user and event exist, and it has each of
    /// its seats, none twice.
    fn check_booking(&self, number: u64, booking: &BookingRecord) -> Result<(), String> {
        if number == 0 || number > self.last_booking {
            return Err(format!(
                "booking {number} is outside 1..={}",
                self.last_booking
            ));
        }
        if booking.seats.is_empty() {
            return Err(format!("booking {number} has no seat"));
        }
        if !self.users.contains_key(&*booking.user) {
            return Err(format!(
                "booking {number}'s user {} is unknown",
                booking.user
            ));
        }
        let event = self
            .events
            .get(&*booking.event)
            .ok_or_else(|| format!("booking {number}'s event {} is unknown", booking.event))?;
        let distinct: BTreeSet<_> = booking.seats.iter().collect();
        if distinct.len() != booking.seats.len() {
            return Err(format!("booking {number} names a seat twice"));
        }
        for &seat in booking.seats.iter() {
            if event.slot(seat).ok() != Some(Some(number)) {
                return Err(format!(
                    "booking {number} names seat {seat}, which another has or none does"
                ));
            }
        }
        Ok(())
    }

    /// The first outcome of the request `key` (scope, request id; `session`: the id read as a
    /// session's) names, if it was carried out; None if it is new.
    fn recall(
        &mut self,
        key: &(String, String),
        session: Option<SessionKey>,
    ) -> Result<Option<Outcome>, Rejection> {
        match session {
            Some(session) => self.sessions.recall(&key.0, &session, self.clock_ms),
            None => Ok(self.dedupe.get(key).cloned()),
        }
    }

    /// Keeps a new request's outcome for its retries.
    fn remember(&mut self, key: (String, String), session: Option<SessionKey>, outcome: Outcome) {
        match session {
            Some(session) => self
                .sessions
                .remember(&key.0, &session, outcome, self.clock_ms),
            None => self.dedupe.insert(key, outcome),
        }
    }

    /// Equal in everything but the table of remembered outcomes, which a refusal adds to.
    #[cfg(test)]
    pub(crate) fn eq_but_dedupe(&self, other: &State) -> bool {
        let State {
            bootstrapped,
            setup_code,
            users,
            events,
            bookings,
            last_booking,
            dedupe: _,
            sessions: _,
            clock_ms: _,
            expiries,
            ended,
            check_ins,
            names: _,
        } = self;
        *bootstrapped == other.bootstrapped
            && *setup_code == other.setup_code
            && *users == other.users
            && *events == other.events
            && *bookings == other.bookings
            && *last_booking == other.last_booking
            && *expiries == other.expiries
            && *ended == other.ended
            && *check_ins == other.check_ins
    }
}

/// Sets `user`'s count in `held`, allocating the name only the first time it is counted
/// (a user's later bookings find it there).
fn set_count(held: &mut BTreeMap<String, u32>, user: &str, n: u32) {
    match held.get_mut(user) {
        Some(count) => *count = n,
        None => {
            held.insert(user.to_string(), n);
        }
    }
}

/// One seat fewer for `user` in `held`; a count that reaches 0 is dropped.
fn count_down(held: &mut BTreeMap<String, u32>, user: &str) {
    if let Some(n) = held.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            held.remove(user);
        }
    }
}

/// The outcome of a command that adds a user.
fn added(result: Result<(), Rejection>) -> Outcome {
    result.map_or_else(Outcome::Rejected, |()| Outcome::UserAdded)
}

impl EventRecord {
    /// What `actor`'s count and the event's taken count become with `requested` more seats,
    /// or the per-user limit that refuses them.
    fn counts_after(&self, actor: &str, requested: usize) -> Result<(u32, u32), Rejection> {
        let held = self.held.get(actor).copied().unwrap_or(0);
        // At most limits::SEATS_PER_REQUEST_MAX: validate::seats bounds the request.
        let requested = u32::try_from(requested).unwrap_or(u32::MAX);
        let held_after = held
            .checked_add(requested)
            .filter(|&n| n <= self.max_seats_per_user)
            .ok_or_else(|| Rejection::LimitReached {
                event: self.name.clone(),
                limit: self.max_seats_per_user,
                held,
                requested,
            })?;
        let taken_after = self
            .taken
            .checked_add(requested)
            .filter(|&n| n <= self.map.len())
            .ok_or_else(|| {
                Rejection::Invalid(format!(
                    "event '{}' counts more seats taken than it has",
                    self.name
                ))
            })?;
        Ok((held_after, taken_after))
    }

    /// What `actor`'s count in each category with a limit of its own becomes with seats
    /// `indices` more, or the category limit that refuses them.
    fn category_counts_after(
        &self,
        actor: &str,
        indices: &[u32],
    ) -> Result<Vec<(usize, u32)>, Rejection> {
        let mut after: Vec<(usize, u32)> = Vec::new();
        if self.categories.iter().all(|c| c.max_seats_per_user == 0) {
            return Ok(after);
        }
        let mut requested: BTreeMap<usize, u32> = BTreeMap::new();
        for &i in indices {
            if let Some(c) = self.category_of(i) {
                *requested.entry(c).or_default() += 1;
            }
        }
        for (c, n) in requested {
            let Some(category) = self.categories.get(c) else {
                continue;
            };
            if category.max_seats_per_user == 0 {
                continue;
            }
            let held = category.held.get(actor).copied().unwrap_or(0);
            let held_after = held
                .checked_add(n)
                .filter(|&h| h <= category.max_seats_per_user)
                .ok_or_else(|| Rejection::CategoryLimitReached {
                    event: self.name.clone(),
                    category: category.name.clone(),
                    limit: category.max_seats_per_user,
                    held,
                    requested: n,
                })?;
            after.push((c, held_after));
        }
        Ok(after)
    }

    pub fn view(&self) -> EventView {
        EventView {
            name: self.name.clone(),
            rows: self.map.rows(),
            seats_per_row: self.map.seats_per_row(),
            max_seats_per_user: self.max_seats_per_user,
            free: self.map.len().saturating_sub(self.taken),
            taken: self.taken,
            categories: self.category_specs(),
            currency: self.currency.clone(),
        }
    }

    /// The holder of a seat by dense index; an index outside the map is an unknown seat.
    fn slot(&self, seat: u32) -> Result<Option<u64>, Rejection> {
        usize::try_from(seat)
            .ok()
            .and_then(|i| self.holders.get(i))
            .copied()
            .ok_or_else(|| Rejection::UnknownSeat {
                event: self.name.clone(),
                seat: self.map.id(seat),
            })
    }

    /// Whether the state's own records agree before anything is freed: each seat of `pairs`
    /// in the booking it is freed from, each booking there.
    fn check_held(
        &self,
        event_name: &str,
        pairs: &[(u64, u32)],
        bookings: &Bookings,
    ) -> Result<(), Rejection> {
        for &(number, seat) in pairs {
            if self.slot(seat)? != Some(number) || !bookings.contains(number) {
                return Err(Rejection::Invalid(format!(
                    "seat {} of '{event_name}' is not in {}",
                    self.map.id(seat),
                    validate::format_booking_id(number)
                )));
            }
        }
        Ok(())
    }

    /// Frees each (booking, seat) pair: the seat, the booking's claim on it (a booking left
    /// with no seat goes) and its user's count. Returns the seats freed.
    fn free(&mut self, pairs: Vec<(u64, u32)>, bookings: &mut Bookings) -> Vec<String> {
        let mut freed = Vec::with_capacity(pairs.len());
        for (number, seat) in pairs {
            if let Some(slot) = self.slot_mut(seat) {
                *slot = None;
            }
            self.taken = self.taken.saturating_sub(1);
            freed.push(self.map.id(seat));
            let Some(booking) = bookings.get_mut(number) else {
                continue;
            };
            booking.seats.retain(|&s| s != seat);
            count_down(&mut self.held, &booking.user);
            let category = self.category_of(seat);
            if let Some(c) = category.and_then(|c| self.categories.get_mut(c)) {
                count_down(&mut c.held, &booking.user);
            }
            if booking.seats.is_empty() {
                bookings.remove(number);
            }
        }
        freed
    }

    fn slot_mut(&mut self, seat: u32) -> Option<&mut Option<u64>> {
        Arc::make_mut(&mut self.holders).get_mut(usize::try_from(seat).ok()?)
    }

    /// Dense indices of the requested seats; every seat must exist. `validate::seats` refused
    /// a seat named twice before apply got here; one that still comes twice counts once.
    fn seat_indices(&self, seats: &[String]) -> Result<Vec<u32>, Rejection> {
        let mut indices = Vec::with_capacity(seats.len());
        for seat in seats {
            let index = self.map.index(seat).ok_or_else(|| Rejection::UnknownSeat {
                event: self.name.clone(),
                seat: seat.clone(),
            })?;
            if !indices.contains(&index) {
                indices.push(index);
            }
        }
        Ok(indices)
    }
}

impl BookingRecord {
    fn view(&self, number: u64, event: &EventRecord) -> BookingView {
        BookingView {
            id: validate::format_booking_id(number),
            event: self.event.to_string(),
            seats: self.seats.iter().map(|&s| event.map.id(s)).collect(),
            user: self.user.to_string(),
            created_at_ms: self.created_at_ms,
            total_minor: self.total_minor,
            currency: event.currency.clone(),
            payment_ref: self.payment_ref.as_deref().map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> PasswordHash {
        PasswordHash {
            salt: [0; 16],
            iterations: limits::PBKDF2_ITERATIONS_MIN,
            hash: [0; 32],
        }
    }

    /// A seeded state with an admin, two customers and a 2×5 event with a limit of 3.
    fn state() -> State {
        let mut s = State::default();
        let apply = |s: &mut State, c: Command| s.apply(&c);
        apply(
            &mut s,
            Command::Bootstrap {
                now_ms: 0,
                first_admin: Some(FirstAdmin::Password(hash())),
            },
        );
        for (name, role) in [
            ("root", Role::Admin),
            ("ana", Role::Customer),
            ("bo", Role::Customer),
        ] {
            let actor = (role == Role::Admin).then(|| FIRST_ADMIN.to_string());
            let add = Command::AddUser {
                request_id: format!("add-{name}"),
                actor,
                name: name.into(),
                role,
                password: hash(),
            };
            assert_eq!(apply(&mut s, add), Outcome::UserAdded);
        }
        let spec = EventSpec {
            name: "show".into(),
            row_labels: vec!["A".into(), "B".into()],
            seats_per_row: 5,
            max_seats_per_user: 3,
            categories: Vec::new(),
            currency: String::new(),
        };
        let create = Command::CreateEvent {
            request_id: "e".into(),
            actor: "root".into(),
            spec,
            now_ms: 0,
        };
        assert!(matches!(apply(&mut s, create), Outcome::EventCreated(_)));
        s
    }

    fn reserve(actor: &str, id: &str, seats: &[&str]) -> Command {
        Command::Reserve {
            request_id: id.into(),
            actor: actor.into(),
            event: "show".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            now_ms: 7,
        }
    }

    fn cancel(actor: &str, id: &str, target: CancelTarget) -> Command {
        Command::Cancel {
            request_id: id.into(),
            actor: actor.into(),
            target,
            now_ms: 8,
        }
    }

    fn seats(event: &str, seats: &[&str]) -> CancelTarget {
        CancelTarget::Seats {
            event: event.into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Issue 15's hole: free-form ids are remembered among the last `DEDUPE_ENTRIES_MAX`, so a
    /// retry after that many other requests acts again; a session-form id (the client
    /// library's, the page's) finds its first outcome however many went by, until its client
    /// acknowledges it.
    #[test]
    fn a_session_retry_after_the_free_form_table_turned_over_acts_once() {
        let mut s = state();
        let session = |seq, acked| {
            SessionKey {
                session: 0xfeed,
                seq,
                acked,
            }
            .format()
        };
        let first = s.apply(&reserve("ana", &session(1, 1), &["A1"]));
        assert!(matches!(first, Outcome::Reserved(_)), "{first:?}");
        let free = s.apply(&reserve("ana", "free-form", &["A2"]));
        assert!(matches!(free, Outcome::Reserved(_)), "{free:?}");
        // Other people's requests, each refused (A1 is taken) and each remembered.
        for n in 0..=limits::DEDUPE_ENTRIES_MAX {
            s.apply(&reserve("bo", &format!("bo-{n}"), &["A1"]));
        }
        assert_eq!(s.apply(&reserve("ana", &session(1, 1), &["A1"])), first);
        let again = s.apply(&reserve("ana", "free-form", &["A2"]));
        assert!(
            matches!(again, Outcome::Rejected(Rejection::SeatsTaken { .. })),
            "a forgotten free-form id acts again: {again:?}"
        );
        // Acknowledged (a later id of the session says so), it is forgotten, and refused.
        let next = s.apply(&reserve("ana", &session(2, 2), &["A3"]));
        assert!(matches!(next, Outcome::Reserved(_)), "{next:?}");
        let late = s.apply(&reserve("ana", &session(1, 1), &["A1"]));
        assert!(is_invalid(&late), "{late:?}");
        assert_eq!(s.check_invariants(), Ok(()));
    }

    #[test]
    fn bootstrap_makes_the_demo_event_once() {
        let mut s = State::default();
        let first = Command::Bootstrap {
            now_ms: 0,
            first_admin: Some(FirstAdmin::SetupCode([1; 32])),
        };
        assert_eq!(s.apply(&first), Outcome::Bootstrapped);
        let again = Command::Bootstrap {
            now_ms: 0,
            first_admin: Some(FirstAdmin::SetupCode([2; 32])),
        };
        assert_eq!(s.apply(&again), Outcome::AlreadyBootstrapped);
        assert_eq!(s.setup_code_hash(), Some([1; 32]), "the first code stays");
        let demo = s.event(DEMO_EVENT).expect("demo");
        assert_eq!(demo.map.id(0), "S1");
        assert_eq!(demo.map.id(9), "S10");
    }

    /// The setup code makes one admin, once; nothing else makes the first admin.
    #[test]
    fn the_setup_code_makes_the_first_admin_once() {
        let mut s = State::default();
        s.apply(&Command::Bootstrap {
            now_ms: 0,
            first_admin: Some(FirstAdmin::SetupCode([7; 32])),
        });
        let setup = |name: &str, code: [u8; 32]| Command::SetupAdmin {
            request_id: format!("s-{name}"),
            name: name.into(),
            password: hash(),
            setup_code: code,
        };
        assert_eq!(
            s.apply(&setup("eve", [8; 32])),
            Outcome::Rejected(Rejection::SetupRefused)
        );
        assert_eq!(s.apply(&setup("boss", [7; 32])), Outcome::UserAdded);
        assert!(s.is_admin(Some("boss")));
        assert_eq!(
            s.apply(&setup("again", [7; 32])),
            Outcome::Rejected(Rejection::SetupRefused)
        );
        assert_eq!(s.setup_code_hash(), None);
    }

    /// Logging out, a new password and disabling all move the token epoch on; only the user
    /// or an admin may, and only an admin disables.
    #[test]
    fn user_changes_revoke_tokens_and_need_the_right_actor() {
        let mut s = state();
        let epoch = |s: &State| s.user("ana").map(|u| u.token_epoch);
        let revoke = |actor: &str, id: &str| Command::RevokeTokens {
            request_id: id.into(),
            actor: actor.into(),
            user: "ana".into(),
        };
        assert_eq!(s.apply(&revoke("ana", "r1")), Outcome::UserChanged);
        assert_eq!(epoch(&s), Some(1));
        assert_eq!(
            s.apply(&revoke("bo", "r2")),
            Outcome::Rejected(Rejection::NotAdmin)
        );
        assert_eq!(s.apply(&revoke("root", "r3")), Outcome::UserChanged);
        let disable = |actor: &str, id: &str| Command::SetDisabled {
            request_id: id.into(),
            actor: actor.into(),
            user: "ana".into(),
            disabled: true,
        };
        assert_eq!(
            s.apply(&disable("ana", "d1")),
            Outcome::Rejected(Rejection::NotAdmin)
        );
        assert_eq!(s.apply(&disable("root", "d2")), Outcome::UserChanged);
        assert!(s.user("ana").is_some_and(|u| u.disabled));
        assert_eq!(epoch(&s), Some(3));
    }

    #[test]
    fn a_reservation_is_all_or_nothing() {
        let mut s = state();
        assert!(matches!(
            s.apply(&reserve("ana", "r1", &["A1"])),
            Outcome::Reserved(_)
        ));
        let before = s.clone();
        let outcome = s.apply(&reserve("bo", "r2", &["A2", "A1", "A3"]));
        assert_eq!(
            outcome,
            Outcome::Rejected(Rejection::SeatsTaken {
                event: "show".into(),
                seats: vec!["A1".into()]
            })
        );
        // Only the dedupe table learned something.
        assert_eq!(s.events, before.events);
        assert_eq!(s.bookings, before.bookings);
        let outcome = s.apply(&reserve("bo", "r3", &["A2", "B9"]));
        assert!(matches!(
            outcome,
            Outcome::Rejected(Rejection::UnknownSeat { .. })
        ));
        assert_eq!(s.events, before.events);
    }

    #[test]
    fn bookings_are_numbered_in_commit_order() {
        let mut s = state();
        let Outcome::Reserved(b) = s.apply(&reserve("ana", "r", &["b5", "A1"])) else {
            panic!("not reserved")
        };
        assert_eq!(b.id, "bk-1");
        assert_eq!(b.seats, vec!["B5", "A1"]);
        assert_eq!(b.created_at_ms, 7);
        // A rejection uses no number; the next booking gets the next one.
        s.apply(&reserve("bo", "r2", &["A1"]));
        let Outcome::Reserved(b) = s.apply(&reserve("bo", "r3", &["A2"])) else {
            panic!("not reserved")
        };
        assert_eq!(b.id, "bk-2");
    }

    #[test]
    fn the_per_user_limit_counts_across_requests() {
        let mut s = state();
        assert!(matches!(
            s.apply(&reserve("ana", "r1", &["A1", "A2"])),
            Outcome::Reserved(_)
        ));
        let outcome = s.apply(&reserve("ana", "r2", &["A3", "A4"]));
        assert_eq!(
            outcome,
            Outcome::Rejected(Rejection::LimitReached {
                event: "show".into(),
                limit: 3,
                held: 2,
                requested: 2
            })
        );
        assert!(matches!(
            s.apply(&reserve("ana", "r3", &["A3"])),
            Outcome::Reserved(_)
        ));
        // Cancelling gives room back.
        assert!(matches!(
            s.apply(&cancel("ana", "c1", seats("show", &["A1"]))),
            Outcome::Cancelled { .. }
        ));
        assert!(matches!(
            s.apply(&reserve("ana", "r4", &["A4"])),
            Outcome::Reserved(_)
        ));
        // Someone else is not limited by ana's seats.
        assert!(matches!(
            s.apply(&reserve("bo", "r5", &["B1", "B2", "B3"])),
            Outcome::Reserved(_)
        ));
    }

    #[test]
    fn only_the_holder_or_an_admin_may_cancel() {
        let mut s = state();
        s.apply(&reserve("ana", "r1", &["A1", "A2"]));
        let before = s.clone();
        let refused = s.apply(&cancel("bo", "c1", seats("show", &["A1"])));
        assert!(matches!(refused, Outcome::Rejected(Rejection::NotOwner(_))));
        let refused = s.apply(&cancel("bo", "c2", CancelTarget::Booking("bk-1".into())));
        assert!(matches!(refused, Outcome::Rejected(Rejection::NotOwner(_))));
        assert_eq!(s.bookings, before.bookings);
        // Partial cancel by the holder keeps the rest of the booking.
        let done = s.apply(&cancel("ana", "c3", seats("show", &["A2"])));
        assert_eq!(
            done,
            Outcome::Cancelled {
                event: "show".into(),
                seats: vec!["A2".into()]
            }
        );
        assert_eq!(s.booking(1).expect("still there").seats, vec!["A1"]);
        // An admin cancels the whole booking.
        let done = s.apply(&cancel("root", "c4", CancelTarget::Booking("bk-1".into())));
        assert_eq!(
            done,
            Outcome::Cancelled {
                event: "show".into(),
                seats: vec!["A1".into()]
            }
        );
        assert!(s.bookings_of("ana").is_empty());
        assert_eq!(s.event("show").expect("show").taken, 0);
    }

    #[test]
    fn a_repeated_request_id_returns_the_first_outcome() {
        let mut s = state();
        let first = s.apply(&reserve("ana", "same", &["A1"]));
        let second = s.apply(&reserve("ana", "same", &["A2"]));
        assert_eq!(first, second);
        assert_eq!(s.bookings_of("ana").len(), 1);
        // The same id from another user is another request.
        assert!(matches!(
            s.apply(&reserve("bo", "same", &["A2"])),
            Outcome::Reserved(_)
        ));
        // A rejection is remembered too: a retry does not suddenly succeed after a cancel.
        let refused = s.apply(&reserve("bo", "late", &["A1"]));
        s.apply(&cancel("ana", "c", seats("show", &["A1"])));
        assert_eq!(s.apply(&reserve("bo", "late", &["A1"])), refused);
    }

    #[test]
    fn the_dedupe_table_is_bounded_oldest_first() {
        let mut d = Dedupe::default();
        for i in 0..limits::DEDUPE_ENTRIES_MAX + 10 {
            d.insert(("u".into(), i.to_string()), Outcome::UserAdded);
        }
        assert_eq!(d.outcomes.len(), limits::DEDUPE_ENTRIES_MAX);
        assert!(d.get(&("u".into(), "0".into())).is_none());
        assert!(d
            .get(&("u".into(), (limits::DEDUPE_ENTRIES_MAX + 9).to_string()))
            .is_some());
    }

    #[test]
    fn admins_are_made_by_admins_only() {
        let mut s = State::default();
        s.apply(&Command::Bootstrap {
            now_ms: 0,
            first_admin: Some(FirstAdmin::Password(hash())),
        });
        let add = |name: &str, actor: Option<&str>, role| Command::AddUser {
            request_id: format!("a-{name}"),
            actor: actor.map(str::to_string),
            name: name.into(),
            role,
            password: hash(),
        };
        assert_eq!(
            s.apply(&add("sneaky", None, Role::Admin)),
            Outcome::Rejected(Rejection::NotAdmin)
        );
        assert_eq!(
            s.apply(&add("cust", None, Role::Customer)),
            Outcome::UserAdded
        );
        assert_eq!(
            s.apply(&add("sneaky2", Some("cust"), Role::Admin)),
            Outcome::Rejected(Rejection::NotAdmin)
        );
        assert_eq!(
            s.apply(&add("first", Some(FIRST_ADMIN), Role::Admin)),
            Outcome::UserAdded
        );
        assert_eq!(
            s.apply(&add("second", Some("first"), Role::Admin)),
            Outcome::UserAdded
        );
        let mut again = add("cust", None, Role::Customer);
        if let Command::AddUser { request_id, .. } = &mut again {
            *request_id = "another-request".into();
        }
        assert_eq!(
            s.apply(&again),
            Outcome::Rejected(Rejection::UserExists("cust".into()))
        );
        // Only admins create events.
        let spec = EventSpec {
            name: "x".into(),
            row_labels: vec!["A".into()],
            seats_per_row: 1,
            max_seats_per_user: 1,
            categories: Vec::new(),
            currency: String::new(),
        };
        let by_customer = Command::CreateEvent {
            request_id: "e".into(),
            actor: "cust".into(),
            spec,
            now_ms: 0,
        };
        assert_eq!(
            s.apply(&by_customer),
            Outcome::Rejected(Rejection::NotAdmin)
        );
    }

    /// Apply is a function of the log: replaying the same commands gives the same state,
    /// byte for byte, whatever the seat and user mix.
    #[test]
    fn replaying_the_same_log_gives_the_same_state() {
        let mut log = Vec::new();
        let users = ["ana", "bo", "root"];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..2_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = users[(x % 3) as usize];
            let a = format!("{}{}", ["A", "B"][(x >> 8) as usize % 2], (x >> 16) % 5 + 1);
            let b = format!(
                "{}{}",
                ["A", "B"][(x >> 24) as usize % 2],
                (x >> 32) % 5 + 1
            );
            let id = format!("r{}", (x >> 40) % 500);
            let command = match x % 4 {
                0 => cancel(user, &id, seats("show", &[&a])),
                1 => cancel(
                    user,
                    &id,
                    CancelTarget::Booking(format!("bk-{}", 1 + (x >> 12) % (i + 1))),
                ),
                _ => reserve(user, &id, &[&a, &b]),
            };
            log.push(command);
        }
        let run = || {
            let mut s = state();
            let outcomes: Vec<Outcome> = log.iter().map(|c| s.apply(c)).collect();
            assert_eq!(s.check_invariants(), Ok(()));
            (s, outcomes)
        };
        let (a, outcomes_a) = run();
        let (b, outcomes_b) = run();
        assert_eq!(outcomes_a, outcomes_b);
        assert_eq!(
            postcard::to_allocvec(&a).expect("encode"),
            postcard::to_allocvec(&b).expect("encode")
        );
        assert!(outcomes_a.iter().any(|o| matches!(o, Outcome::Reserved(_))));
        assert!(outcomes_a
            .iter()
            .any(|o| matches!(o, Outcome::Cancelled { .. })));
    }

    fn create(spec: EventSpec) -> Command {
        Command::CreateEvent {
            request_id: format!("create-{}", spec.name),
            actor: "root".into(),
            spec,
            now_ms: 0,
        }
    }

    fn spec(name: &str, row_labels: Vec<String>, seats_per_row: u32) -> EventSpec {
        EventSpec {
            name: name.into(),
            row_labels,
            seats_per_row,
            max_seats_per_user: 4,
            categories: Vec::new(),
            currency: String::new(),
        }
    }

    fn is_invalid(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::Rejected(Rejection::Invalid(_)))
    }

    // The poison pill of issue 11: 2 rows of 2^31 seats wrapped the seat count to 0, and the
    // next reservation in the event panicked apply on every node.
    #[test]
    fn an_event_whose_seat_count_overflows_is_rejected_and_changes_nothing() {
        let mut s = state();
        let before = s.clone();
        let pill = create(spec("pill", vec!["A".into(), "B".into()], 1 << 31));
        let outcome = s.apply(&pill);
        assert!(is_invalid(&outcome), "{outcome:?}");
        assert_eq!(s, before, "not even the dedupe table changes");
        for seat in ["B1", "A2147483648", "B2147483647"] {
            let outcome = s.apply(&Command::Reserve {
                request_id: format!("r-{seat}"),
                actor: "ana".into(),
                event: "pill".into(),
                seats: vec![seat.into()],
                now_ms: u64::MAX,
            });
            assert_eq!(
                outcome,
                Outcome::Rejected(Rejection::UnknownEvent("pill".into()))
            );
        }
        assert_eq!(s.check_invariants(), Ok(()));
    }

    // Every malformed layout is refused by apply itself, whatever the proposer let through.
    #[test]
    fn create_event_refuses_malformed_layouts() {
        let mut s = state();
        let labels = |n| SeatMap::default_row_labels(n);
        let mut lowercase = labels(2);
        lowercase[1] = "b".into();
        let mut no_limit = spec("nolimit", labels(2), 5);
        no_limit.max_seats_per_user = 0;
        let malformed = [
            spec("norows", Vec::new(), 5),
            spec("noseats", labels(2), 0),
            spec("wide", labels(2), limits::SEATS_PER_ROW_MAX + 1),
            spec("max", labels(2), u32::MAX),
            spec("twice", vec!["A".into(), "B".into(), "A".into()], 5),
            spec("many", labels(10_000), 1),
            spec("toomany", labels(limits::ROWS_MAX + 1), 1),
            spec("lower", lowercase, 5),
            spec("long", vec!["ABCDE".into()], 5),
            spec("empty", vec![String::new()], 5),
            spec("bad name", labels(1), 5),
            no_limit,
        ];
        for spec in malformed {
            let before = s.clone();
            let outcome = s.apply(&create(spec.clone()));
            assert!(is_invalid(&outcome), "{spec:?}: {outcome:?}");
            assert_eq!(s, before, "{spec:?}");
        }
        // The largest layout the limits allow is still fine.
        let largest = spec(
            "largest",
            labels(limits::ROWS_MAX),
            limits::SEATS_PER_ROW_MAX,
        );
        let Outcome::EventCreated(view) = s.apply(&create(largest)) else {
            panic!("the largest event was refused")
        };
        assert_eq!(view.free, limits::SEATS_PER_EVENT_MAX);
    }

    // Reserve, cancel and create-event name their actor; one nobody registered changes nothing.
    #[test]
    fn an_unknown_actor_is_refused() {
        let mut s = state();
        let unknown = Outcome::Rejected(Rejection::UnknownUser("ghost".into()));
        assert_eq!(s.apply(&reserve("ghost", "r1", &["A1"])), unknown);
        s.apply(&reserve("ana", "r2", &["A2"]));
        let before = s.clone();
        for target in [seats("show", &["A2"]), CancelTarget::Booking("bk-1".into())] {
            assert_eq!(s.apply(&cancel("ghost", "c", target)), unknown);
        }
        let mut by_ghost = create(spec("ghosts", vec!["A".into()], 1));
        if let Command::CreateEvent { actor, .. } = &mut by_ghost {
            *actor = "ghost".into();
        }
        assert_eq!(s.apply(&by_ghost), unknown);
        assert!(s.eq_but_dedupe(&before));
    }

    // A command that the proposer should have refused is refused by apply too, before the
    // dedupe table sees its key, so that a well-formed retry still acts.
    #[test]
    fn malformed_commands_are_refused_before_anything_changes() {
        let mut s = state();
        let before = s.clone();
        let mut empty_id = reserve("ana", "x", &["A1"]);
        if let Command::Reserve { request_id, .. } = &mut empty_id {
            request_id.clear();
        }
        let seventeen: Vec<String> = (1..=17).map(|i| format!("A{i}")).collect();
        let seventeen: Vec<&str> = seventeen.iter().map(String::as_str).collect();
        let long_seat = format!("A{}", "1".repeat(40));
        let malformed = [
            empty_id,
            reserve("ana", "r", &["A1", "a1"]),
            reserve("ana", "r", &seventeen),
            reserve("ana", "r", &[]),
            reserve("ana", "r", &[&long_seat]),
            reserve("ana", "r", &["1A"]),
            reserve(&"a".repeat(limits::NAME_LEN_MAX + 1), "r", &["A1"]),
            reserve("ana", &"r".repeat(limits::REQUEST_ID_LEN_MAX + 1), &["A1"]),
            cancel("ana", "r", CancelTarget::Booking("b".repeat(10_000))),
            cancel("ana", "r", seats("no such event!", &["A1"])),
            Command::AddUser {
                request_id: "weak".into(),
                actor: None,
                name: "weak".into(),
                role: Role::Customer,
                password: PasswordHash {
                    iterations: 0,
                    ..hash()
                },
            },
        ];
        for command in malformed {
            let outcome = s.apply(&command);
            assert!(is_invalid(&outcome), "{command:?}: {outcome:?}");
            assert_eq!(s, before, "{command:?}");
        }
        assert!(matches!(
            s.apply(&reserve("ana", "r", &["A1"])),
            Outcome::Reserved(_)
        ));
    }
}
