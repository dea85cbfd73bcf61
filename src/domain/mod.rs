//! The booking state machine: events, seats, bookings, users, and the request-id table.
//!
//! Pure and deterministic: `State::apply` reads nothing but the command and the log index it
//! was committed at. No clock, no randomness, no I/O: the time and any random bytes (the token
//! key, password salts) travel inside the command, chosen by the node that proposed it. A
//! rejection (a seat taken, a limit reached) is an [`Outcome`] value, never an error: an error
//! from the state machine would stop the node.
//!
//! What it does not do: check passwords or tokens (see [`auth`]), validate the shape of a
//! request before it is proposed (see [`validate`]), or know about Raft.

pub mod auth;
mod seats;
pub mod state;
pub mod validate;

use serde::{Deserialize, Serialize};

pub use seats::SeatMap;
pub use state::{BookingRecord, EventRecord, State, User};

/// Who a user is to the system.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Customer,
    Admin,
}

/// A PBKDF2-HMAC-SHA256 password hash with its own salt and round count.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub salt: [u8; 16],
    pub iterations: u32,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// What an event looks like when it is created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub name: String,
    pub row_labels: Vec<String>,
    pub seats_per_row: u32,
    pub max_seats_per_user: u32,
}

/// What to cancel: some seats of one event, or a whole booking.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CancelTarget {
    Seats { event: String, seats: Vec<String> },
    Booking(String),
}

/// One entry of the replicated log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Once per cluster: the key every node signs and checks tokens with, and the demo
    /// event. Applied at most once; later copies are no-ops.
    Bootstrap { token_key: [u8; 32], now_ms: u64 },
    /// `actor` is the admin creating the user, or none for a self-registration.
    AddUser {
        request_id: String,
        actor: Option<String>,
        name: String,
        role: Role,
        password: PasswordHash,
    },
    CreateEvent {
        request_id: String,
        actor: String,
        spec: EventSpec,
        now_ms: u64,
    },
    Reserve {
        request_id: String,
        actor: String,
        event: String,
        seats: Vec<String>,
        now_ms: u64,
    },
    Cancel {
        request_id: String,
        actor: String,
        target: CancelTarget,
        now_ms: u64,
    },
}

impl Command {
    /// The key under which the outcome is remembered for retries.
    fn dedupe_key(&self) -> Option<(String, String)> {
        match self {
            Command::Bootstrap { .. } => None,
            Command::AddUser {
                request_id, actor, ..
            } => Some((actor.clone().unwrap_or_default(), request_id.clone())),
            Command::CreateEvent {
                request_id, actor, ..
            }
            | Command::Reserve {
                request_id, actor, ..
            }
            | Command::Cancel {
                request_id, actor, ..
            } => Some((actor.clone(), request_id.clone())),
        }
    }
}

/// A booking as the outside sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookingView {
    pub id: String,
    pub event: String,
    pub seats: Vec<String>,
    pub user: String,
    pub created_at_ms: u64,
}

/// An event as the outside sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    pub name: String,
    pub rows: u32,
    pub seats_per_row: u32,
    pub max_seats_per_user: u32,
    pub free: u32,
    pub taken: u32,
}

/// What applying a command did. Every command gets exactly one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// For log entries that are not commands (leader blanks, membership changes).
    Noop,
    Bootstrapped,
    AlreadyBootstrapped,
    UserAdded,
    EventCreated(EventView),
    Reserved(BookingView),
    Cancelled {
        event: String,
        seats: Vec<String>,
    },
    Rejected(Rejection),
}

/// Why a well-formed command changed nothing. Each maps to one gRPC status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the cluster is still starting (no signing key yet); try again")]
    NotBootstrapped,
    #[error("no event named '{0}'")]
    UnknownEvent(String),
    #[error("event '{event}' has no seat '{seat}'")]
    UnknownSeat { event: String, seat: String },
    #[error("no booking '{0}'")]
    UnknownBooking(String),
    #[error("no user named '{0}'")]
    UnknownUser(String),
    #[error("already reserved in '{event}': {}", seats.join(", "))]
    SeatsTaken { event: String, seats: Vec<String> },
    #[error("seat '{seat}' of '{event}' is not reserved")]
    SeatNotReserved { event: String, seat: String },
    #[error(
        "'{event}' allows {limit} seats per person; you hold {held} and asked for {requested} more"
    )]
    LimitReached {
        event: String,
        limit: u32,
        held: u32,
        requested: u32,
    },
    #[error("only the holder or an admin may cancel {0}")]
    NotOwner(String),
    #[error("this needs an admin")]
    NotAdmin,
    #[error("a user named '{0}' already exists")]
    UserExists(String),
    #[error("an event named '{0}' already exists")]
    EventExists(String),
    #[error("the cluster already has {0} events, the most it keeps")]
    TooManyEvents(usize),
    #[error("the cluster already has {0} users, the most it keeps")]
    TooManyUsers(usize),
}
