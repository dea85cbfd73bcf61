//! What the replicated state costs per booking it holds, counted by the crate's allocator
//! (`script::memory`): the part
//! of a node's memory that grows with the bookings (the log and the snapshot store are bounded
//! by cluster.toml, whatever the bookings).

use ticket::domain::{
    Command, EventSpec, FirstAdmin, Outcome, PasswordHash, Role, State, FIRST_ADMIN,
};
use ticket::script::memory;

const ROWS: u32 = 500;
const SEATS_PER_ROW: u32 = 200;
const EVENTS: u32 = 3;

fn hash() -> PasswordHash {
    PasswordHash {
        salt: [0; 16],
        iterations: 600_000,
        hash: [0; 32],
    }
}

/// Row `r`'s label: A..Z, then AA, AB, ...
fn label(r: u32) -> String {
    let mut n = r + 1;
    let mut letters = Vec::new();
    while n > 0 {
        n -= 1;
        letters.push(char::from(b'A' + (n % 26) as u8));
        n /= 26;
    }
    letters.iter().rev().collect()
}

/// A state with an admin, a customer and `EVENTS` events of 100,000 seats, all free.
fn seeded() -> State {
    let mut s = State::default();
    s.apply(&Command::Bootstrap {
        now_ms: 0,
        first_admin: Some(FirstAdmin::Password(hash())),
    });
    for (name, role) in [("root", Role::Admin), ("ana", Role::Customer)] {
        let add = Command::AddUser {
            request_id: format!("add-{name}"),
            actor: (role == Role::Admin).then(|| FIRST_ADMIN.to_string()),
            name: name.into(),
            role,
            password: hash(),
        };
        assert_eq!(s.apply(&add), Outcome::UserAdded);
    }
    for e in 0..EVENTS {
        let spec = EventSpec {
            name: format!("hall-{e}"),
            row_labels: (0..ROWS).map(label).collect(),
            seats_per_row: SEATS_PER_ROW,
            max_seats_per_user: ROWS * SEATS_PER_ROW,
            categories: Vec::new(),
            currency: String::new(),
        };
        let create = Command::CreateEvent {
            request_id: format!("event-{e}"),
            actor: "root".into(),
            spec,
            now_ms: 0,
        };
        let created = s.apply(&create);
        assert!(matches!(created, Outcome::EventCreated(_)), "{created:?}");
    }
    s
}

/// Goal: a booking held costs the state at most 128 bytes (a compact record in a table of
/// chunks, its user and event names shared), so that a million booked seats fit a node in
/// well under 200 MB with its bounded log and caches. The bookings come as the client
/// library sends them: one session, each request acknowledging the one before.
#[test]
fn a_booking_costs_the_state_at_most_128_bytes_and_a_snapshots_copy_next_to_nothing() {
    let mut state = seeded();
    // The crate's allocator counts what this thread allocates and frees from here on.
    let counted = memory::Budget::new(usize::MAX);
    let charging = memory::enter(counted.clone());
    let bookings = EVENTS * ROWS * SEATS_PER_ROW;
    for n in 0..bookings {
        let seq = u64::from(n) + 1;
        let (event, seat) = (n / (ROWS * SEATS_PER_ROW), n % (ROWS * SEATS_PER_ROW));
        let reserve = Command::Reserve {
            request_id: format!("~1.{seq:x}.{seq:x}"),
            actor: "ana".into(),
            event: format!("hall-{event}"),
            seats: vec![format!(
                "{}{}",
                label(seat / SEATS_PER_ROW),
                seat % SEATS_PER_ROW + 1
            )],
            now_ms: 1,
        };
        let outcome = state.apply(&reserve);
        assert!(matches!(outcome, Outcome::Reserved(_)), "{outcome:?}");
    }
    drop(charging);
    let grown = counted.used();
    let per_booking = grown / bookings as isize;
    println!("{bookings} bookings held: {grown} bytes more, {per_booking} bytes each");
    assert!(per_booking <= 128, "{per_booking} bytes per booking");
    assert_eq!(state.bookings_of("ana").len(), bookings as usize);
    a_copy_of_it_costs_little(&state);
}

/// A snapshot copies the state under the read lock and encodes the copy while apply goes on:
/// the copy must cost next to nothing however many bookings there are (the bookings and each
/// event's seats are shared copy-on-write), and must not change when the state does.
fn a_copy_of_it_costs_little(state: &State) {
    let counted = memory::Budget::new(usize::MAX);
    let charging = memory::enter(counted.clone());
    let copy = state.clone();
    drop(charging);
    let bytes = counted.used();
    println!("a copy of the state allocates {bytes} bytes");
    assert!(bytes < 256 * 1024, "the copy allocated {bytes} bytes");

    let mut state = state.clone();
    let cancel = Command::Cancel {
        request_id: "~2.1.1".into(),
        actor: "ana".into(),
        target: ticket::domain::CancelTarget::Seats {
            event: "hall-0".into(),
            seats: vec!["A1".into()],
        },
        now_ms: 2,
    };
    assert!(matches!(state.apply(&cancel), Outcome::Cancelled { .. }));
    let hall = |s: &State| s.event("hall-0").map(|e| e.taken);
    assert_eq!(hall(&copy), Some(ROWS * SEATS_PER_ROW));
    assert_eq!(hall(&state), Some(ROWS * SEATS_PER_ROW - 1));
    assert_eq!(
        copy.bookings_of("ana").len(),
        state.bookings_of("ana").len() + 1
    );
}
