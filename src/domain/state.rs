//! The replicated state and the one function that changes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{
    BookingView, CancelTarget, Command, EventSpec, EventView, Outcome, PasswordHash, Rejection,
    Role, SeatMap,
};
use crate::limits;

/// The name of the event every cluster starts with: the prototype's ten seats S1..S10.
pub const DEMO_EVENT: &str = "demo";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub role: Role,
    pub password: PasswordHash,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub name: String,
    pub map: SeatMap,
    pub max_seats_per_user: u32,
    /// The booking holding each seat, by dense seat index.
    pub holders: Vec<Option<u64>>,
    /// Seats each user holds in this event.
    pub held: BTreeMap<String, u32>,
    pub taken: u32,
    pub created_at_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookingRecord {
    pub event: String,
    pub user: String,
    /// Dense seat indices, in the order they were asked for.
    pub seats: Vec<u32>,
    pub created_at_ms: u64,
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
}

/// Everything the cluster agrees on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    token_key: Option<[u8; 32]>,
    users: BTreeMap<String, User>,
    events: BTreeMap<String, EventRecord>,
    /// By booking number, given out in commit order.
    bookings: BTreeMap<u64, BookingRecord>,
    /// The number of the last booking made; 0 before the first.
    last_booking: u64,
    dedupe: Dedupe,
}

/// `bk-<booking number>`.
pub fn booking_id(number: u64) -> String {
    format!("bk-{number}")
}

pub fn parse_booking_id(id: &str) -> Option<u64> {
    id.strip_prefix("bk-")?.parse().ok()
}

impl State {
    /// Applies one committed command. Every node applies the same commands in the same order,
    /// so every node reaches the same state and gives the same outcome.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        let key = command.dedupe_key();
        if let Some(first) = key.as_ref().and_then(|key| self.dedupe.get(key)) {
            return first.clone();
        }
        let outcome = match command {
            Command::Bootstrap { token_key, now_ms } => self.bootstrap(*token_key, *now_ms),
            Command::AddUser {
                actor,
                name,
                role,
                password,
                ..
            } => self
                .add_user(actor.as_deref(), name, *role, password)
                .map_or_else(Outcome::Rejected, |()| Outcome::UserAdded),
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
                now_ms,
                ..
            } => self
                .reserve(actor, event, seats, *now_ms)
                .map_or_else(Outcome::Rejected, Outcome::Reserved),
            Command::Cancel { actor, target, .. } => {
                self.cancel(actor, target)
                    .map_or_else(Outcome::Rejected, |(event, seats)| Outcome::Cancelled {
                        event,
                        seats,
                    })
            }
        };
        if let Some(key) = key {
            self.dedupe.insert(key, outcome.clone());
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
        outcome
    }

    fn bootstrap(&mut self, token_key: [u8; 32], now_ms: u64) -> Outcome {
        if self.token_key.is_some() {
            return Outcome::AlreadyBootstrapped;
        }
        self.token_key = Some(token_key);
        if !self.events.contains_key(DEMO_EVENT) {
            let spec = EventSpec {
                name: DEMO_EVENT.to_string(),
                row_labels: vec!["S".to_string()],
                seats_per_row: 10,
                max_seats_per_user: limits::SEATS_PER_USER_DEFAULT,
            };
            self.insert_event(&spec, now_ms);
        }
        Outcome::Bootstrapped
    }

    fn add_user(
        &mut self,
        actor: Option<&str>,
        name: &str,
        role: Role,
        password: &PasswordHash,
    ) -> Result<(), Rejection> {
        // Customers register themselves. An admin is made by an admin, except the first one.
        if role == Role::Admin && self.has_admin() && !self.is_admin(actor) {
            return Err(Rejection::NotAdmin);
        }
        if self.users.contains_key(name) {
            return Err(Rejection::UserExists(name.to_string()));
        }
        if self.users.len() >= limits::USERS_MAX {
            return Err(Rejection::TooManyUsers(self.users.len()));
        }
        let user = User {
            role,
            password: password.clone(),
        };
        self.users.insert(name.to_string(), user);
        Ok(())
    }

    fn create_event(
        &mut self,
        actor: &str,
        spec: &EventSpec,
        now_ms: u64,
    ) -> Result<EventView, Rejection> {
        if !self.is_admin(Some(actor)) {
            return Err(Rejection::NotAdmin);
        }
        if self.events.contains_key(&spec.name) {
            return Err(Rejection::EventExists(spec.name.clone()));
        }
        if self.events.len() >= limits::EVENTS_MAX {
            return Err(Rejection::TooManyEvents(self.events.len()));
        }
        Ok(self.insert_event(spec, now_ms))
    }

    fn insert_event(&mut self, spec: &EventSpec, now_ms: u64) -> EventView {
        let map = SeatMap::new(spec.row_labels.clone(), spec.seats_per_row);
        let event = EventRecord {
            name: spec.name.clone(),
            holders: vec![None; map.len() as usize],
            map,
            max_seats_per_user: spec.max_seats_per_user,
            held: BTreeMap::new(),
            taken: 0,
            created_at_ms: now_ms,
        };
        let view = event.view();
        self.events.insert(spec.name.clone(), event);
        view
    }

    fn reserve(
        &mut self,
        actor: &str,
        event_name: &str,
        seats: &[String],
        now_ms: u64,
    ) -> Result<BookingView, Rejection> {
        if !self.users.contains_key(actor) {
            return Err(Rejection::UnknownUser(actor.to_string()));
        }
        let event = self
            .events
            .get_mut(event_name)
            .ok_or_else(|| Rejection::UnknownEvent(event_name.to_string()))?;
        let indices = event.seat_indices(seats)?;
        let taken: Vec<String> = indices
            .iter()
            .filter(|&&i| event.holders[i as usize].is_some())
            .map(|&i| event.map.id(i))
            .collect();
        if !taken.is_empty() {
            return Err(Rejection::SeatsTaken {
                event: event_name.to_string(),
                seats: taken,
            });
        }
        let held = event.held.get(actor).copied().unwrap_or(0);
        let requested = indices.len() as u32;
        if held + requested > event.max_seats_per_user {
            return Err(Rejection::LimitReached {
                event: event_name.to_string(),
                limit: event.max_seats_per_user,
                held,
                requested,
            });
        }
        self.last_booking += 1;
        let number = self.last_booking;
        for &i in &indices {
            event.holders[i as usize] = Some(number);
        }
        event.taken += requested;
        *event.held.entry(actor.to_string()).or_insert(0) += requested;
        let booking = BookingRecord {
            event: event_name.to_string(),
            user: actor.to_string(),
            seats: indices,
            created_at_ms: now_ms,
        };
        let view = booking.view(number, &event.map);
        self.bookings.insert(number, booking);
        Ok(view)
    }

    /// Returns the event and the seats freed.
    fn cancel(
        &mut self,
        actor: &str,
        target: &CancelTarget,
    ) -> Result<(String, Vec<String>), Rejection> {
        let is_admin = self.is_admin(Some(actor));
        // Work out (booking, seat) pairs first, so that a refusal changes nothing.
        let (event_name, pairs): (String, Vec<(u64, u32)>) = match target {
            CancelTarget::Booking(id) => {
                let unknown = || Rejection::UnknownBooking(id.clone());
                let number = parse_booking_id(id).ok_or_else(unknown)?;
                let booking = self.bookings.get(&number).ok_or_else(unknown)?;
                if booking.user != actor && !is_admin {
                    return Err(Rejection::NotOwner(id.clone()));
                }
                let pairs = booking.seats.iter().map(|&s| (number, s)).collect();
                (booking.event.clone(), pairs)
            }
            CancelTarget::Seats { event, seats } => {
                let record = self
                    .events
                    .get(event)
                    .ok_or_else(|| Rejection::UnknownEvent(event.clone()))?;
                let indices = record.seat_indices(seats)?;
                let mut pairs = Vec::with_capacity(indices.len());
                for i in indices {
                    let seat = record.map.id(i);
                    let number =
                        record.holders[i as usize].ok_or_else(|| Rejection::SeatNotReserved {
                            event: event.clone(),
                            seat: seat.clone(),
                        })?;
                    let holder = self.bookings.get(&number).map(|b| b.user.as_str());
                    if holder != Some(actor) && !is_admin {
                        return Err(Rejection::NotOwner(format!("seat {seat}")));
                    }
                    pairs.push((number, i));
                }
                (event.clone(), pairs)
            }
        };
        let Some(event) = self.events.get_mut(&event_name) else {
            return Err(Rejection::UnknownEvent(event_name));
        };
        let mut freed = Vec::with_capacity(pairs.len());
        for (number, seat) in pairs {
            event.holders[seat as usize] = None;
            event.taken -= 1;
            freed.push(event.map.id(seat));
            let Some(booking) = self.bookings.get_mut(&number) else {
                continue;
            };
            booking.seats.retain(|&s| s != seat);
            if let Some(held) = event.held.get_mut(&booking.user) {
                *held -= 1;
                if *held == 0 {
                    event.held.remove(&booking.user);
                }
            }
            if booking.seats.is_empty() {
                self.bookings.remove(&number);
            }
        }
        Ok((event_name, freed))
    }

    pub fn token_key(&self) -> Option<&[u8; 32]> {
        self.token_key.as_ref()
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

    pub fn booking(&self, number: u64) -> Option<BookingView> {
        let booking = self.bookings.get(&number)?;
        let event = self.events.get(&booking.event)?;
        Some(booking.view(number, &event.map))
    }

    /// Every booking the user holds, oldest first.
    pub fn bookings_of(&self, user: &str) -> Vec<BookingView> {
        self.bookings
            .iter()
            .filter(|(_, b)| b.user == user)
            .filter_map(|(&number, b)| Some(b.view(number, &self.events.get(&b.event)?.map)))
            .collect()
    }

    /// Who holds a seat (booking number and user), if anyone.
    pub fn holder(&self, event: &EventRecord, seat: u32) -> Option<(u64, &str)> {
        let number = event.holders.get(seat as usize).copied().flatten()?;
        Some((number, self.bookings.get(&number)?.user.as_str()))
    }

    /// The invariants every reachable state keeps; checked after each apply in debug builds
    /// and by the tests.
    pub fn check_invariants(&self) {
        for event in self.events.values() {
            let mut held: BTreeMap<&str, u32> = BTreeMap::new();
            let mut taken = 0;
            for (seat, holder) in event.holders.iter().enumerate() {
                let Some(number) = holder else { continue };
                taken += 1;
                let booking = &self.bookings[number];
                assert_eq!(booking.event, event.name);
                assert!(booking.seats.contains(&(seat as u32)));
                *held.entry(&booking.user).or_insert(0) += 1;
            }
            assert_eq!(taken, event.taken, "event {} taken count", event.name);
            let recorded: BTreeMap<&str, u32> =
                event.held.iter().map(|(u, &n)| (u.as_str(), n)).collect();
            assert_eq!(held, recorded, "event {} per-user counts", event.name);
        }
        for (number, booking) in &self.bookings {
            assert!(!booking.seats.is_empty());
            let event = &self.events[&booking.event];
            let distinct: BTreeSet<_> = booking.seats.iter().collect();
            assert_eq!(distinct.len(), booking.seats.len());
            for &seat in &booking.seats {
                assert_eq!(
                    event.holders[seat as usize],
                    Some(*number),
                    "seat has two holders"
                );
            }
        }
    }
}

impl EventRecord {
    pub fn view(&self) -> EventView {
        EventView {
            name: self.name.clone(),
            rows: self.map.rows(),
            seats_per_row: self.map.seats_per_row(),
            max_seats_per_user: self.max_seats_per_user,
            free: self.map.len() - self.taken,
            taken: self.taken,
        }
    }

    /// Dense indices of the requested seats; every seat must exist (duplicates were refused
    /// before the command was proposed, but are refused here too: apply trusts nothing).
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
    fn view(&self, number: u64, map: &SeatMap) -> BookingView {
        BookingView {
            id: booking_id(number),
            event: self.event.clone(),
            seats: self.seats.iter().map(|&s| map.id(s)).collect(),
            user: self.user.clone(),
            created_at_ms: self.created_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> PasswordHash {
        PasswordHash {
            salt: [0; 16],
            iterations: 1,
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
                token_key: [1; 32],
                now_ms: 0,
            },
        );
        for (name, role) in [
            ("root", Role::Admin),
            ("ana", Role::Customer),
            ("bo", Role::Customer),
        ] {
            let actor = (role == Role::Admin).then(|| "nobody".to_string());
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

    #[test]
    fn bootstrap_makes_the_demo_event_once() {
        let mut s = State::default();
        assert_eq!(
            s.apply(&Command::Bootstrap {
                token_key: [1; 32],
                now_ms: 0
            }),
            Outcome::Bootstrapped
        );
        let again = Command::Bootstrap {
            token_key: [2; 32],
            now_ms: 0,
        };
        assert_eq!(s.apply(&again), Outcome::AlreadyBootstrapped);
        assert_eq!(s.token_key(), Some(&[1; 32]), "the first key stays");
        let demo = s.event(DEMO_EVENT).expect("demo");
        assert_eq!(demo.map.id(0), "S1");
        assert_eq!(demo.map.id(9), "S10");
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
    fn admins_are_made_by_admins_except_the_first() {
        let mut s = State::default();
        let add = |name: &str, actor: Option<&str>, role| Command::AddUser {
            request_id: format!("a-{name}"),
            actor: actor.map(str::to_string),
            name: name.into(),
            role,
            password: hash(),
        };
        assert_eq!(
            s.apply(&add("first", None, Role::Admin)),
            Outcome::UserAdded
        );
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
            s.check_invariants();
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
}
