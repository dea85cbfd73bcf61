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
pub mod best;
mod bookings;
#[cfg(test)]
mod proptests;
pub mod request_id;
mod seats;
pub mod state;
pub mod validate;
pub mod viewer;

use serde::{Deserialize, Serialize};

pub use seats::SeatMap;
pub use state::{BookingRecord, BookingStatus, Category, EventRecord, State, User};

/// Who a user is to the system.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Customer,
    Admin,
    /// Checks tickets in at the door, and nothing else an admin may.
    Door,
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
    /// Price categories, best first. Empty: one free-of-charge category for every seat.
    /// Otherwise they cover every seat, none twice.
    pub categories: Vec<CategorySpec>,
    /// ISO 4217 code of every price (`EUR`); empty when the event has no categories.
    pub currency: String,
}

/// A price category as an event is created with it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CategorySpec {
    pub name: String,
    /// The price of one seat in minor units of the event's currency (cents).
    pub price_minor: u64,
    /// What it covers: rows (`A`), row ranges (`A-C`) or seat ranges in one row (`D1-D10`).
    pub covers: Vec<String>,
    /// Seats of this category one person may reserve or hold at once, within the event's own
    /// limit; 0 when only the event's limit applies.
    #[serde(default)]
    pub max_seats_per_user: u32,
}

/// Which seats a hold asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// These seats, all or none.
    Seats(Vec<String>),
    /// The best `count` seats the state machine finds (see [`best`]), chosen inside the
    /// command so nobody can take them between the choice and the hold.
    Best(BestAsk),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BestAsk {
    pub count: u32,
    /// Only seats of this category; any category when None.
    pub category: Option<String>,
    /// Only seats at most this dear (minor units).
    pub max_price_minor: Option<u64>,
    /// Whether the seats may be split when no `count` are together.
    pub split: bool,
}

/// How a new cluster gets its first admin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum FirstAdmin {
    /// The admin "admin", with the password the seeding node was given.
    Password(PasswordHash),
    /// Whoever shows the code whose SHA-256 this is (once): see `Command::SetupAdmin`.
    SetupCode([u8; 32]),
}

/// The name of the first admin a cluster makes from a password.
pub const FIRST_ADMIN: &str = "admin";

/// What to cancel: some seats of one event, or a whole booking.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CancelTarget {
    Seats { event: String, seats: Vec<String> },
    Booking(String),
}

/// One change to the replicated state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Once per cluster: the demo event and the way to the first admin. Applied at most once;
    /// later copies are no-ops. It carries no secret: token keys are in a file on each node,
    /// and a setup code travels only as its hash.
    Bootstrap {
        now_ms: u64,
        first_admin: Option<FirstAdmin>,
    },
    /// The first admin, made with the cluster's one-time setup code (its hash, checked by the
    /// node that took the code, and again here).
    SetupAdmin {
        request_id: String,
        name: String,
        password: PasswordHash,
        setup_code: [u8; 32],
    },
    /// Revokes every token of `user` (logging out everywhere): the user itself or an admin.
    RevokeTokens {
        request_id: String,
        actor: String,
        user: String,
    },
    /// A new password (the user itself or an admin); revokes the user's tokens.
    SetPassword {
        request_id: String,
        actor: String,
        user: String,
        password: PasswordHash,
    },
    /// Admin only: a disabled user cannot log in, and its tokens are revoked.
    SetDisabled {
        request_id: String,
        actor: String,
        user: String,
        disabled: bool,
    },
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
    /// Holds seats for `duration_ms` (log time) for checkout; `max_ms` is how long extending
    /// may make the hold last in all, from now.
    Hold {
        request_id: String,
        actor: String,
        event: String,
        target: HoldTarget,
        duration_ms: u64,
        max_ms: u64,
        now_ms: u64,
    },
    /// Turns a live hold into a booking of the same number.
    ConfirmHold {
        request_id: String,
        actor: String,
        hold: u64,
        payment_ref: Option<String>,
        now_ms: u64,
    },
    /// Moves a live hold's expiry to `now + duration_ms`, within its maximum.
    ExtendHold {
        request_id: String,
        actor: String,
        hold: u64,
        duration_ms: u64,
        now_ms: u64,
    },
    /// Gives a hold's seats back (its holder, or an admin).
    ReleaseHold {
        request_id: String,
        actor: String,
        hold: u64,
        now_ms: u64,
    },
    /// Marks one ticket used: seat `seat` of booking `booking` in `event`. The node checked the
    /// ticket's signature; apply checks that the booking still has the seat.
    CheckIn {
        request_id: String,
        actor: String,
        event: String,
        seat: String,
        booking: u64,
        now_ms: u64,
    },
    /// Moves log time on, so that holds past their expiry give their seats back even when no
    /// other command comes. The leader proposes one when a hold is due.
    Sweep { now_ms: u64 },
}

impl Command {
    /// The command's name, for logs and errors (never its contents: they hold hashes).
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Bootstrap { .. } => "Bootstrap",
            Command::SetupAdmin { .. } => "SetupAdmin",
            Command::RevokeTokens { .. } => "RevokeTokens",
            Command::SetPassword { .. } => "SetPassword",
            Command::SetDisabled { .. } => "SetDisabled",
            Command::AddUser { .. } => "AddUser",
            Command::CreateEvent { .. } => "CreateEvent",
            Command::Reserve { .. } => "Reserve",
            Command::Cancel { .. } => "Cancel",
            Command::Hold { .. } => "Hold",
            Command::ConfirmHold { .. } => "ConfirmHold",
            Command::ExtendHold { .. } => "ExtendHold",
            Command::ReleaseHold { .. } => "ReleaseHold",
            Command::CheckIn { .. } => "CheckIn",
            Command::Sweep { .. } => "Sweep",
        }
    }

    /// The time the command carries, if it carries one.
    pub fn now_ms(&self) -> Option<u64> {
        match self {
            Command::Bootstrap { now_ms, .. }
            | Command::CreateEvent { now_ms, .. }
            | Command::Reserve { now_ms, .. }
            | Command::Cancel { now_ms, .. }
            | Command::Hold { now_ms, .. }
            | Command::ConfirmHold { now_ms, .. }
            | Command::ExtendHold { now_ms, .. }
            | Command::ReleaseHold { now_ms, .. }
            | Command::CheckIn { now_ms, .. }
            | Command::Sweep { now_ms } => Some(*now_ms),
            Command::SetupAdmin { .. }
            | Command::RevokeTokens { .. }
            | Command::SetPassword { .. }
            | Command::SetDisabled { .. }
            | Command::AddUser { .. } => None,
        }
    }

    /// Sets the time the command carries to `now` (the leader's clock when it proposes).
    pub fn stamp(&mut self, now: u64) {
        match self {
            Command::Bootstrap { now_ms, .. }
            | Command::CreateEvent { now_ms, .. }
            | Command::Reserve { now_ms, .. }
            | Command::Cancel { now_ms, .. }
            | Command::Hold { now_ms, .. }
            | Command::ConfirmHold { now_ms, .. }
            | Command::ExtendHold { now_ms, .. }
            | Command::ReleaseHold { now_ms, .. }
            | Command::CheckIn { now_ms, .. }
            | Command::Sweep { now_ms } => *now_ms = now,
            Command::SetupAdmin { .. }
            | Command::RevokeTokens { .. }
            | Command::SetPassword { .. }
            | Command::SetDisabled { .. }
            | Command::AddUser { .. } => {}
        }
    }

    /// The key under which the outcome is remembered for retries.
    fn dedupe_key(&self) -> Option<(String, String)> {
        match self {
            Command::Bootstrap { .. } | Command::Sweep { .. } => None,
            // A self-registration is scoped by the name it registers, so two strangers who
            // chose the same request id do not share an outcome.
            Command::AddUser {
                request_id,
                actor: None,
                name,
                ..
            }
            | Command::SetupAdmin {
                request_id, name, ..
            } => Some((format!("register:{name}"), request_id.clone())),
            Command::AddUser {
                request_id,
                actor: Some(actor),
                ..
            } => Some((actor.clone(), request_id.clone())),
            Command::RevokeTokens {
                request_id, actor, ..
            }
            | Command::SetPassword {
                request_id, actor, ..
            }
            | Command::SetDisabled {
                request_id, actor, ..
            } => Some((actor.clone(), request_id.clone())),
            Command::CreateEvent {
                request_id, actor, ..
            }
            | Command::Reserve {
                request_id, actor, ..
            }
            | Command::Cancel {
                request_id, actor, ..
            }
            | Command::Hold {
                request_id, actor, ..
            }
            | Command::ConfirmHold {
                request_id, actor, ..
            }
            | Command::ExtendHold {
                request_id, actor, ..
            }
            | Command::ReleaseHold {
                request_id, actor, ..
            }
            | Command::CheckIn {
                request_id, actor, ..
            } => Some((actor.clone(), request_id.clone())),
        }
    }
}

/// One entry of the replicated log: the commands that reached the leader together, applied
/// in order, each with its own outcome. Gathering them into one entry lets them share one
/// append, one fsync and one AppendEntries (see `server::proposer`).
pub type Batch = Vec<Command>;

/// A booking as the outside sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookingView {
    pub id: String,
    pub event: String,
    pub seats: Vec<String>,
    pub user: String,
    pub created_at_ms: u64,
    /// What the seats cost together, in minor units of `currency`.
    pub total_minor: u64,
    pub currency: String,
    /// What the buyer's payment was recorded as when the hold was confirmed.
    pub payment_ref: Option<String>,
}

/// A live hold as the outside sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HoldView {
    /// `hd-N`; confirmed, it becomes booking `bk-N`.
    pub id: String,
    pub event: String,
    pub seats: Vec<String>,
    pub user: String,
    pub created_at_ms: u64,
    /// Log time: once a committed command's time is past it, the seats are free again.
    pub expires_at_ms: u64,
    /// The latest expiry extending can reach.
    pub latest_expiry_ms: u64,
    pub total_minor: u64,
    pub currency: String,
}

/// A ticket checked in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CheckInView {
    pub event: String,
    pub seat: String,
    pub booking: String,
    pub at_ms: u64,
    pub by: String,
}

/// An event as the outside sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    pub name: String,
    pub rows: u32,
    pub seats_per_row: u32,
    pub max_seats_per_user: u32,
    pub free: u32,
    /// Reserved or held.
    pub taken: u32,
    pub categories: Vec<CategorySpec>,
    pub currency: String,
}

/// What applying a command did. Every command gets exactly one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Bootstrapped,
    AlreadyBootstrapped,
    UserAdded,
    /// A user's tokens, password or standing changed.
    UserChanged,
    EventCreated(EventView),
    Reserved(BookingView),
    Cancelled {
        event: String,
        seats: Vec<String>,
    },
    Rejected(Rejection),
    Held(HoldView),
    HoldExtended(HoldView),
    HoldReleased {
        event: String,
        seats: Vec<String>,
    },
    /// A hold became this booking.
    Confirmed(BookingView),
    CheckedIn(CheckInView),
    /// Log time moved on; this many holds had expired.
    Swept {
        expired: u32,
    },
}

impl Outcome {
    /// The outcome's name for metrics: a success's, or `rejected` (see [`Rejection::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Bootstrapped => "bootstrapped",
            Outcome::AlreadyBootstrapped => "already_bootstrapped",
            Outcome::UserAdded => "user_added",
            Outcome::UserChanged => "user_changed",
            Outcome::EventCreated(_) => "event_created",
            Outcome::Reserved(_) => "reserved",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::Rejected(_) => "rejected",
            Outcome::Held(_) => "held",
            Outcome::HoldExtended(_) => "hold_extended",
            Outcome::HoldReleased { .. } => "hold_released",
            Outcome::Confirmed(_) => "confirmed",
            Outcome::CheckedIn(_) => "checked_in",
            Outcome::Swept { .. } => "swept",
        }
    }
}

impl Rejection {
    /// Why, as a name for metrics (never the message: it names users and seats).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::AlreadyCheckedIn { .. } => "already_checked_in",
            Rejection::BadCategories { .. } => "bad_categories",
            Rejection::CategoryLimitReached { .. } => "category_limit_reached",
            Rejection::EventExists { .. } => "event_exists",
            Rejection::HoldAtMaximum { .. } => "hold_at_maximum",
            Rejection::HoldConfirmed { .. } => "hold_confirmed",
            Rejection::HoldExpired { .. } => "hold_expired",
            Rejection::HoldReleased { .. } => "hold_released",
            Rejection::HoldTooLong { .. } => "hold_too_long",
            Rejection::Invalid { .. } => "invalid",
            Rejection::Busy { .. } => "busy",
            Rejection::LimitReached { .. } => "limit_reached",
            Rejection::NoSeats { .. } => "no_seats",
            Rejection::NotAdmin => "not_admin",
            Rejection::NotBootstrapped => "not_bootstrapped",
            Rejection::NotDoor => "not_door",
            Rejection::NotOwner { .. } => "not_owner",
            Rejection::NotYourHold { .. } => "not_your_hold",
            Rejection::SeatNotReserved { .. } => "seat_not_reserved",
            Rejection::SeatsHeld { .. } => "seats_held",
            Rejection::SeatsTaken { .. } => "seats_taken",
            Rejection::SetupRefused => "setup_refused",
            Rejection::TicketVoid { .. } => "ticket_void",
            Rejection::TooManyEvents { .. } => "too_many_events",
            Rejection::TooManyUsers { .. } => "too_many_users",
            Rejection::UnknownBooking { .. } => "unknown_booking",
            Rejection::UnknownCategory { .. } => "unknown_category",
            Rejection::UnknownEvent { .. } => "unknown_event",
            Rejection::UnknownHold { .. } => "unknown_hold",
            Rejection::UnknownSeat { .. } => "unknown_seat",
            Rejection::UnknownUser { .. } => "unknown_user",
            Rejection::UserExists { .. } => "user_exists",
        }
    }
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
        "'{event}' allows {limit} seats per person; you have {held} and asked for {requested} more"
    )]
    LimitReached {
        event: String,
        limit: u32,
        held: u32,
        requested: u32,
    },
    #[error(
        "'{event}' allows {limit} {category} seats per person; you have {held} and asked for {requested} more"
    )]
    CategoryLimitReached {
        event: String,
        category: String,
        limit: u32,
        held: u32,
        requested: u32,
    },
    #[error("only the holder or an admin may cancel {0}")]
    NotOwner(String),
    #[error("this needs an admin")]
    NotAdmin,
    #[error("that is not this cluster's setup code, or its first admin exists already")]
    SetupRefused,
    #[error("no hold '{0}' (it may have ended long ago)")]
    UnknownHold(String),
    #[error("hold {hold} expired at {} (log time)", clock_text(*at_ms))]
    HoldExpired { hold: String, at_ms: u64 },
    #[error("hold {hold} was confirmed already, as booking {booking}")]
    HoldConfirmed { hold: String, booking: String },
    #[error("hold {0} was released")]
    HoldReleased(String),
    #[error("hold {0} is someone else's")]
    NotYourHold(String),
    #[error("a hold lasts at most {} s; {} s were asked for", max_ms / 1000, asked_ms / 1000)]
    HoldTooLong { asked_ms: u64, max_ms: u64 },
    #[error("hold {hold} cannot last past {} (its maximum)", clock_text(*latest_ms))]
    HoldAtMaximum { hold: String, latest_ms: u64 },
    #[error("held by someone in checkout in '{event}': {}", seats.join(", "))]
    SeatsHeld { event: String, seats: Vec<String> },
    #[error("no {count} seats {} in '{event}'{}", if *together { "together" } else { "free" }, category.as_ref().map(|c| format!(" in category {c}")).unwrap_or_default())]
    NoSeats {
        event: String,
        count: u32,
        together: bool,
        category: Option<String>,
    },
    #[error("event '{event}' has no category '{category}'")]
    UnknownCategory { event: String, category: String },
    #[error("the ticket for {seat} ({booking}) was checked in already, at {} by {by}", clock_text(*at_ms))]
    AlreadyCheckedIn {
        seat: String,
        booking: String,
        at_ms: u64,
        by: String,
    },
    #[error("this ticket is void: booking {booking} no longer has seat {seat} of '{event}'")]
    TicketVoid {
        event: String,
        seat: String,
        booking: String,
    },
    #[error("checking tickets in needs the door role or an admin")]
    NotDoor,
    /// The categories do not fit the seat map (a row it lacks, a seat covered twice or not
    /// at all): only the map can tell, so the state says it.
    #[error("{0}")]
    BadCategories(String),
    #[error("a user named '{0}' already exists")]
    UserExists(String),
    #[error("an event named '{0}' already exists")]
    EventExists(String),
    #[error("the cluster already has {0} events, the most it keeps")]
    TooManyEvents(usize),
    #[error("the cluster already has {0} users, the most it keeps")]
    TooManyUsers(usize),
    /// Too much is open to take this on now (client sessions, or one session's unacknowledged
    /// outcomes); nothing changed. Retry later.
    #[error("{0}")]
    Busy(String),
    /// The command breaks the rules of `validate`: the proposer should have refused it, so it
    /// changes nothing, not even the table of remembered outcomes. Last, so that the encoding
    /// of the other variants in stored outcomes and snapshots stays as it was.
    #[error("{0}")]
    Invalid(String),
}

/// A log time as a person reads it on a ticket desk: `14:03:12 UTC`.
pub fn clock_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits;

    /// `limits::COMMAND_MAX_BYTES` bounds the size of a log entry and so of an AppendEntries:
    /// the largest command of every kind that validation lets through must fit it.
    #[test]
    fn the_largest_command_of_each_kind_fits_the_command_bound() {
        let name = "n".repeat(limits::NAME_LEN_MAX);
        let request_id = "r".repeat(limits::REQUEST_ID_LEN_MAX);
        let seats: Vec<String> = (0..limits::SEATS_PER_REQUEST_MAX)
            .map(|_| "S".repeat(limits::SEAT_ID_LEN_MAX))
            .collect();
        let password = PasswordHash {
            salt: [0xff; 16],
            iterations: u32::MAX,
            hash: [0xff; 32],
        };
        let largest = [
            Command::Bootstrap {
                now_ms: u64::MAX,
                first_admin: Some(FirstAdmin::Password(password.clone())),
            },
            Command::SetupAdmin {
                request_id: request_id.clone(),
                name: name.clone(),
                password: password.clone(),
                setup_code: [0xff; 32],
            },
            Command::SetPassword {
                request_id: request_id.clone(),
                actor: name.clone(),
                user: name.clone(),
                password: password.clone(),
            },
            Command::AddUser {
                request_id: request_id.clone(),
                actor: Some(name.clone()),
                name: name.clone(),
                role: Role::Admin,
                password,
            },
            Command::CreateEvent {
                request_id: request_id.clone(),
                actor: name.clone(),
                spec: EventSpec {
                    name: name.clone(),
                    row_labels: vec!["ZZZZ".into(); limits::ROWS_MAX as usize],
                    seats_per_row: u32::MAX,
                    max_seats_per_user: u32::MAX,
                    categories: Vec::new(),
                    currency: String::new(),
                },
                now_ms: u64::MAX,
            },
            Command::Reserve {
                request_id: request_id.clone(),
                actor: name.clone(),
                event: name.clone(),
                seats: seats.clone(),
                now_ms: u64::MAX,
            },
            Command::Cancel {
                request_id,
                actor: name.clone(),
                target: CancelTarget::Seats { event: name, seats },
                now_ms: u64::MAX,
            },
        ];
        for command in largest {
            let bytes = postcard::to_allocvec(&command).expect("encode").len();
            assert!(
                bytes <= limits::COMMAND_MAX_BYTES,
                "{bytes} bytes: {command:?}"
            );
        }
    }
}
