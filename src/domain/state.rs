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
    /// By booking number (the log index of the reserve that made it).
    bookings: BTreeMap<u64, BookingRecord>,
    dedupe: Dedupe,
}

/// `bk-<log index>`: unique because one log entry makes at most one booking.
pub fn booking_id(number: u64) -> String {
    format!("bk-{number}")
}

pub fn parse_booking_id(id: &str) -> Option<u64> {
    id.strip_prefix("bk-")?.parse().ok()
}

impl State {
    /// Applies one committed command. `index` is its log index: deterministic on every node.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
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
                .reserve(index, actor, event, seats, *now_ms)
                .map_or_else(Outcome::Rejected, Outcome::Reserved),
            Command::Cancel { actor, target, .. } => self
                .cancel(actor, target)
                .map_or_else(Outcome::Rejected, |(event, seats)| Outcome::Cancelled {
                    event,
                    seats,
                }),
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
        index: u64,
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
        for &i in &indices {
            event.holders[i as usize] = Some(index);
        }
        event.taken += requested;
        *event.held.entry(actor.to_string()).or_insert(0) += requested;
        let booking = BookingRecord {
            event: event_name.to_string(),
            user: actor.to_string(),
            seats: indices,
            created_at_ms: now_ms,
        };
        let view = booking.view(index, &event.map);
        self.bookings.insert(index, booking);
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
                assert_eq!(event.holders[seat as usize], Some(*number), "seat has two holders");
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
