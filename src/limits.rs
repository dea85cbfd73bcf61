//! The bounds of the replicated state and of what a client can make a node spend, named in
//! one place. Relations between them are checked at compile time so that changing one cannot
//! silently break another.
//!
//! Here: what the state holds (names, seats, events, users, remembered request ids); what a
//! stranger on the network can make a node or the page spend (message sizes, connections,
//! streams, requests in progress, TLS handshakes, failed logins, registrations, password
//! hashing, watch streams, `/ask` questions); and the sizes and waits of the write path
//! (commands per entry, the queue, AppendEntries, snapshots, the quorum wait).
//!
//! Not here, but beside what they bound:
//! - the script sandbox: `script::{OPERATIONS_MAX, CALL_LEVELS_MAX, EXPR_DEPTH_MAX,
//!   FN_EXPR_DEPTH_MAX, STRING_MAX_BYTES, ARRAY_LEN_MAX, MAP_LEN_MAX, VARIABLES_MAX,
//!   PARALLEL_MAX, SLEEP_MAX_MS, TIME_LIMIT}` and its thread stack, the memory budgets
//!   `script::memory::{SCRIPT_MAX_BYTES, RULE_MAX_BYTES}`, and a plugin rule's
//!   `script::plugins::{RULE_OPERATIONS_MAX, RULE_TIME_MAX}`;
//! - the assistant's: what it reads from the model server (`assistant/openai.rs`
//!   `NAME_MAX_BYTES`, `ARGUMENTS_MAX_BYTES`, `ERROR_BODY_MAX_BYTES`, `ANSWER_MAX_CHARS`), the
//!   wait for plugin rules (`assistant/mod.rs` `PLUGIN_RULES_WAIT`), and the size of its answers
//!   (`assistant::tools::SEATS_MAX`, `assistant/rules.rs` `TOGETHER_MAX`, `LISTED_MAX`);
//! - the waits of a client, which bound only the caller's own time: `client::PROBE_WAIT` and
//!   the call, attempt and connect timeouts in `client.rs`, `session/mod.rs` `REFRESH_WAIT`,
//!   `script/api.rs` `CLUSTER_WAIT`, `cli/shell.rs` `READY_WAIT`;
//! - this machine's processes: `ticket up`'s restarts (`cli/up.rs`), a node's shutdown grace
//!   (`server/mod.rs`), the shell's history (`shell/editor.rs` `HISTORY_LINES_MAX`);
//! - the peer channel's connect and keep-alive timeouts (`consensus/network.rs`) and the
//!   snapshot install timeout (`server/mod.rs` `raft_config`); Raft's timings are in
//!   cluster.toml;
//! - the clock skew a token's expiry allows (`domain/auth.rs` `verify_token`).

/// User, event and row names: `[A-Za-z0-9_-]`, at most this long.
pub const NAME_LEN_MAX: usize = 64;
/// A client's request id (any printable ASCII), at most this long.
pub const REQUEST_ID_LEN_MAX: usize = 64;
/// A seat id such as `A12` or `AB200`.
pub const SEAT_ID_LEN_MAX: usize = 16;
/// A booking id such as `bk-1234`.
pub const BOOKING_ID_LEN_MAX: usize = 32;
/// Seats in one reserve or cancel request.
pub const SEATS_PER_REQUEST_MAX: usize = 16;
pub const PASSWORD_LEN_MIN: usize = 6;
pub const PASSWORD_LEN_MAX: usize = 256;

pub const ROWS_MAX: u32 = 500;
pub const SEATS_PER_ROW_MAX: u32 = 200;
pub const SEATS_PER_EVENT_MAX: u32 = ROWS_MAX * SEATS_PER_ROW_MAX;
pub const EVENTS_MAX: usize = 1_000;
pub const USERS_MAX: usize = 1_000_000;
/// The per-user limit an event gets when its creator names none.
pub const SEATS_PER_USER_DEFAULT: u32 = 10;

/// How long a hold lasts when cluster.toml names nothing (`[booking] hold_ms`), how long
/// extending may make it last in all (`hold_max_ms`), and the bounds apply holds any command
/// to, whatever a node was configured with (seats.io's longest hold is 2 hours).
pub const HOLD_MS_DEFAULT: u64 = 600_000;
pub const HOLD_MAX_MS_DEFAULT: u64 = 1_800_000;
pub const HOLD_MS_MIN: u64 = 1_000;
pub const HOLD_MS_MAX: u64 = 7_200_000;
const _: () = assert!(HOLD_MS_MIN <= HOLD_MS_DEFAULT && HOLD_MS_DEFAULT <= HOLD_MAX_MS_DEFAULT);
const _: () = assert!(HOLD_MAX_MS_DEFAULT <= HOLD_MS_MAX);
/// Ended holds remembered, so that a late confirm is told "expired at ..." rather than
/// "unknown"; the oldest is forgotten first.
pub const HOLDS_ENDED_KEPT: usize = 100_000;
/// Price categories of one event, and the covers (rows or seat ranges) of one category.
pub const CATEGORIES_PER_EVENT_MAX: usize = 16;
pub const COVERS_PER_CATEGORY_MAX: usize = 32;
/// One seat's price in minor units: a billion euros, so sums of a request never overflow.
pub const PRICE_MINOR_MAX: u64 = 100_000_000_000;
/// A payment reference recorded with a confirmed hold.
pub const PAYMENT_REF_LEN_MAX: usize = 64;
/// A ticket code a client may send to be checked in.
pub const TICKET_CODE_LEN_MAX: usize = 256;
/// Seats of one best-available hold: as many as one request may name.
pub const BEST_COUNT_MAX: u32 = SEATS_PER_REQUEST_MAX as u32;

/// Free-form request ids (chosen by people and scripts) remembered for exactly-once
/// retries; the oldest is forgotten first. The client library's ids are session-form, kept
/// until acknowledged (`domain::state::sessions`).
pub const DEDUPE_ENTRIES_MAX: usize = 200_000;
/// Client sessions open at once; past this a new one is refused until one closes.
pub const SESSIONS_MAX: usize = 100_000;
/// Log time after which an idle client session closes: far longer than any client retries.
pub const SESSION_IDLE_MS: u64 = 10 * 60 * 1_000;
/// The longest a client goes on retrying one call: a retry later than this is a new call.
pub const CLIENT_RETRY_WINDOW_MS: u64 = 2 * 60 * 1_000;
/// Outcomes one session may have answered but not acknowledged.
pub const SESSION_OUTCOMES_MAX: usize = 65_536;

/// PBKDF2 rounds for a new password when cluster.toml names none (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256), and the fewest cluster.toml may ask for.
pub const PBKDF2_ITERATIONS_DEFAULT: u32 = 600_000;
pub const PBKDF2_ITERATIONS_MIN: u32 = 10_000;

/// Largest gRPC message either side accepts: a seat map of the largest event, or a snapshot
/// chunk, with room to spare. tonic's default of 4 MiB is too small for the former.
pub const GRPC_MESSAGE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Largest request the client API decodes: every request is well under 4 KiB; a stranger
/// may not make a node buffer more before it has checked anything.
pub const CLIENT_MESSAGE_MAX_BYTES: usize = 64 * 1024;
/// How long a client (of the client API or the page and `/ask`) or a peer may take over its
/// TLS handshake before the connection is dropped.
pub const TLS_HANDSHAKE_MAX_MS: u64 = 5_000;
/// Client connections one address may hold open on one node at once.
pub const CLIENT_CONNECTIONS_PER_ADDRESS_MAX: usize = 256;
/// Concurrent requests (HTTP/2 streams) one client connection may have open.
pub const CLIENT_STREAMS_PER_CONNECTION_MAX: u32 = 256;
/// Requests one client connection may have in progress on a node; the next is shed.
pub const CLIENT_REQUESTS_IN_PROGRESS_PER_CONNECTION_MAX: usize = 128;
/// How long one client request may run on a node before it is cut off (DEADLINE_EXCEEDED).
/// Longer than the quorum wait, so a write that waited for a leader still gets its answer.
pub const CLIENT_REQUEST_MAX_MS: u64 = 15_000;
/// Failed logins of one name in a row before it waits; the wait then doubles with each
/// further failure, from one second up to [`LOGIN_LOCKOUT_MAX_SECS`].
pub const LOGIN_FAILURES_FREE: u32 = 5;
/// Failed logins one client address may make at once on one node, and per minute after that.
pub const LOGIN_FAILURES_PER_ADDRESS_BURST: usize = 30;
pub const LOGIN_FAILURES_PER_ADDRESS_PER_MIN: usize = 30;
/// The longest a name waits after repeated failed logins.
pub const LOGIN_LOCKOUT_MAX_SECS: u64 = 300;
/// The longest question `/ask` takes.
pub const QUESTION_MAX_BYTES: usize = 2_000;
/// Self-registrations one client address may make at once on one node, and per minute after.
pub const REGISTRATIONS_PER_ADDRESS_BURST: usize = 100;
pub const REGISTRATIONS_PER_ADDRESS_PER_MIN: usize = 60;
/// Names and addresses a node's throttle remembers; the least recently seen go first.
pub const THROTTLE_ENTRIES_MAX: usize = 100_000;
/// PBKDF2 computations one node runs at once (each holds a core for a fraction of a second),
/// and how long a request waits for a turn before RESOURCE_EXHAUSTED.
pub const PASSWORD_HASHES_AT_ONCE: usize = 2;
pub const PASSWORD_HASH_WAIT_MS: u64 = 2_000;
/// `WatchSeats` streams one node serves to callers without a token, in all and per address;
/// logged-in callers have the rest of [`WATCH_STREAMS_MAX`], at most this many per user.
pub const WATCH_STREAMS_ANONYMOUS_MAX: usize = 256;
pub const WATCH_STREAMS_PER_ADDRESS_MAX: usize = 32;
pub const WATCH_STREAMS_PER_USER_MAX: usize = 16;
/// A watch stream that has sent nothing for this long is ended (the client resumes).
pub const WATCH_IDLE_MAX_SECS: u64 = 600;
/// Snapshot bytes sent per InstallSnapshot call.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes of a backup file in one `BackupChunk` of the client API.
pub const BACKUP_CHUNK_BYTES: usize = 1024 * 1024;
/// The largest encoded command: a reserve or cancel of the most seats with the longest ids is
/// under 600 bytes; an event with the most row labels is under 3 KiB. A unit test holds every
/// kind of command to it.
pub const COMMAND_MAX_BYTES: usize = 4 * 1024;
/// Commands gathered into one log entry (one append, one fsync, one AppendEntries for all).
pub const COMMANDS_PER_ENTRY_MAX: usize = 256;
/// Log entries the leader has handed to Raft and not yet seen applied. openraft 0.9 appends
/// (and fsyncs) one entry at a time, so a few in flight keep the disk busy while the next
/// entry gathers commands.
pub const ENTRIES_IN_FLIGHT_MAX: usize = 4;
/// The fewest commands an entry carries to be proposed while others are in flight; a smaller
/// one waits for them and gathers meanwhile. Each entry costs the cluster about as much CPU
/// as dozens of commands (three fsyncs, four AppendEntries, a pass of each node's Raft core),
/// so small entries in parallel cost more than they save.
pub const COMMANDS_TO_PIPELINE_MIN: usize = COMMANDS_PER_ENTRY_MAX / 4;
/// Commands waiting for a place in an entry; past this, callers wait (back-pressure).
pub const COMMANDS_QUEUED_MAX: usize = 8_192;
/// Log entries in one AppendEntries, and so the largest group one follower fsync covers.
pub const APPEND_ENTRIES_MAX: u64 = 32;
/// Pages the state's store (its snapshots) keeps in memory.
pub const STORE_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Write operations the log writer folds into one transaction and one fsync.
pub const LOG_WRITE_BATCH_MAX: usize = 4_096;
/// The least `[raft] snapshot_log_bytes` may be: below it a busy node would snapshot
/// back to back.
pub const SNAPSHOT_LOG_BYTES_MIN: u64 = 64 * 1024;
/// Bytes the log writer folds into one write, past which the rest waits for the next one.
pub const LOG_WRITE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Log entries (as stored) the log keeps decoded as well, the newest: about 100,000 bookings,
/// far more than replication and apply lag behind by; older ones are decoded when read.
pub const LOG_DECODED_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How long a write or a read barrier may wait for a leader or a quorum before the client is
/// told UNAVAILABLE (and may retry with the same request id).
pub const QUORUM_WAIT_MS: u64 = 5_000;
/// How long one node waits for another's answer to a status probe.
pub const STATUS_PROBE_MS: u64 = 500;
/// Entries a node's applied index may trail its own log while `/readyz` still says ready.
pub const READY_LAG_ENTRIES_MAX: u64 = 1_000;

/// Bookings in one ReserveBatch call: with their tokens, well within a client message.
pub const BATCH_RESERVES_MAX: usize = 128;

/// Entries a learner's applied index may trail the leader's last log index and still be
/// promoted to voter: small, so a new voter does not slow commits while it catches up.
pub const PROMOTE_LAG_ENTRIES_MAX: u64 = 64;
/// How long a leader removing itself may spend handing leadership over (`server::handover`)
/// before it gives up and is removed without.
pub const HANDOVER_MAX_MS: u64 = 5_000;
/// How long one AddNode or ReplaceNode call waits for the learner to catch up before it
/// answers "not yet" (the command line asks again until its own deadline).
pub const CATCH_UP_WAIT_MS: u64 = 6_000;

/// Change sets (one per apply that touched seats) each node keeps for watchers resuming
/// from an applied index; one further back gets the whole seat map.
pub const WATCH_JOURNAL_SETS: usize = 4_096;
/// Seat changes those sets may name, all told (one set may name thousands): about 100 bytes
/// each.
pub const WATCH_JOURNAL_SEATS: usize = 65_536;
/// Change sets a slow watcher may fall behind the broadcast before it is sent the whole map.
pub const WATCH_BROADCAST_SETS: usize = 1_024;
/// Open `WatchSeats` streams one node serves at once; past this, UNAVAILABLE (try another).
pub const WATCH_STREAMS_MAX: usize = 1_024;
/// Replies queued for one watcher; a watcher slower than this holds only its own stream back.
pub const WATCH_REPLIES_QUEUED: usize = 16;

const _: () = assert!(SEATS_PER_REQUEST_MAX as u32 <= SEATS_PER_ROW_MAX);
const _: () = assert!(SEATS_PER_USER_DEFAULT as usize <= SEATS_PER_REQUEST_MAX);
const _: () = assert!(PBKDF2_ITERATIONS_MIN <= PBKDF2_ITERATIONS_DEFAULT);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES < GRPC_MESSAGE_MAX_BYTES as u64 / 2);
const _: () = assert!(BACKUP_CHUNK_BYTES < GRPC_MESSAGE_MAX_BYTES / 2);
// The fullest AppendEntries fits a gRPC message with room to spare.
const _: () = assert!(
    APPEND_ENTRIES_MAX as usize * COMMANDS_PER_ENTRY_MAX * COMMAND_MAX_BYTES
        <= GRPC_MESSAGE_MAX_BYTES / 2
);
const _: () = assert!(COMMANDS_PER_ENTRY_MAX <= COMMANDS_QUEUED_MAX);
const _: () = assert!(EVENTS_MAX * (SEATS_PER_EVENT_MAX as usize) <= u32::MAX as usize);
const _: () = assert!(WATCH_BROADCAST_SETS <= WATCH_JOURNAL_SETS);
const _: () = assert!(COMMAND_MAX_BYTES * 4 <= CLIENT_MESSAGE_MAX_BYTES);
// A batch of the most reserves, each with a token (under 300 bytes) and a one-seat booking.
const _: () = assert!(BATCH_RESERVES_MAX * 400 <= CLIENT_MESSAGE_MAX_BYTES);
const _: () = assert!(WATCH_STREAMS_ANONYMOUS_MAX < WATCH_STREAMS_MAX / 2);
const _: () = assert!(WATCH_STREAMS_PER_ADDRESS_MAX <= WATCH_STREAMS_ANONYMOUS_MAX);
const _: () = assert!(QUORUM_WAIT_MS * 2 < CLIENT_REQUEST_MAX_MS);
// A membership call: the catch-up wait, then a joint change (two commits).
const _: () = assert!(CATCH_UP_WAIT_MS + QUORUM_WAIT_MS * 3 / 2 < CLIENT_REQUEST_MAX_MS);
// Removing the leader: a handover, then the removal (here after a failed one, or forwarded).
const _: () = assert!(HANDOVER_MAX_MS + QUORUM_WAIT_MS * 3 / 2 < CLIENT_REQUEST_MAX_MS - 1_000);
// A session outlives any retry of its requests by far, whatever the leaders' clocks.
const _: () = assert!(CLIENT_RETRY_WINDOW_MS * 4 <= SESSION_IDLE_MS);
const _: () = assert!(CLIENT_REQUEST_MAX_MS * 2 < CLIENT_RETRY_WINDOW_MS);
const _: () = assert!(PROMOTE_LAG_ENTRIES_MAX < READY_LAG_ENTRIES_MAX);
const _: () = assert!(
    CLIENT_REQUESTS_IN_PROGRESS_PER_CONNECTION_MAX <= CLIENT_STREAMS_PER_CONNECTION_MAX as usize
);
