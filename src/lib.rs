//! # ticket: a replicated seat-booking system
//!
//! # Layout
//! - [`clock`]: the one place wall-clock time is read (the domain never reads it).
//! - [`log_context`]: a node's term and role, which its every log line carries.
//! - [`limits`]: the bounds of the state and of what a client can make a node spend, named,
//!   with their relations checked at compile time (its doc says where the others live).
//! - [`config`]: `cluster.toml`, typed and checked; errors name the file, line and key.
//! - [`pki`]: the cluster's certificate authority; node certificates carry the node's id.
//! - [`domain`]: the booking state machine. Pure and deterministic: no I/O, no clock.
//! - [`consensus`]: openraft wiring: log store with group commit, state machine and
//!   snapshots in redb, the peer network.
//! - [`server`]: the node daemon: the client API, forwarding to the leader, read index,
//!   health, reflection, bootstrap and shutdown.
//! - [`pb`]: the messages and services generated from `proto/`; [`wire`]: what travels
//!   beside them (the leader and authorization headers; an empty event meaning the demo
//!   event), shared by server and client.
//! - [`error`]: the API's errors and their one mapping to gRPC status codes.
//! - [`https`]: serving the page and `/ask` over TLS (or plain text on loopback only).
//! - [`json`]: the JSON shape of events, seats and bookings and the word for a seat status,
//!   shared by `--json`, scripts, the page and the assistant.
//! - [`client`]: the one client everything above the server uses: any node, retries with
//!   the same request id, failover; a connect probe that says at once when no node answers.
//!   Its calls fail with a typed [`client::ClientError`], never a gRPC status.
//! - [`prompt`]: a password from the person at the terminal.
//! - [`local_cluster`]: this machine's nodes as child processes (for `ticket up`, the shell
//!   and scripts' `kill`/`restart`).
//! - [`assistant`]: questions in plain language, answered from the live cluster as the asking
//!   user; changes only as confirmed proposals.
//! - [`session`]: the booking commands (one table: names, usage, help, parsing, completion,
//!   script functions) and a session running them; replies as text and as JSON.
//! - [`script`]: rhai scenarios (`ticket run`, `run`) and plugins, in a sandbox, calling the
//!   session's commands as functions.
//! - [`web`]: the page (seat map, booking, the Ask box, cluster health) and its JSON API,
//!   live through `WatchSeats`.
//! - [`shell`]: the booking shell (reedline), interactive or driven by `-c`, `-f` and stdin,
//!   handed a session.
//! - [`cli`]: the subcommands of the `ticket` binary, and the one place that wires plugins,
//!   the assistant, `/ask`, the page and the shell together; nothing imports it.
//!
//! Layering runs one way, lowest first: `limits`, `clock`, `log_context` ← `domain`, `pb`, `config` ←
//! `wire`, `json`, `error`, `pki` ← `consensus`, `client` ← `server`, `local_cluster` ←
//! `assistant` ← `session` ← `script`, `web` ← `shell` ← `cli`. `tests/layers.rs` checks it
//! from the imports, and ARCHITECTURE.md draws it. Nothing above `server` touches the store
//! or openraft.

pub mod assistant;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod domain;
pub mod error;
pub mod https;
pub mod json;
pub mod limits;
pub mod local_cluster;
pub mod log_context;
pub mod pb;
pub mod pki;
pub mod prompt;
pub mod script;
pub mod server;
pub mod session;
pub mod shell;
pub mod web;
pub mod wire;

// Every allocation goes through this, so a script run's memory can be bounded
// (see `script::memory`).
#[global_allocator]
static ALLOCATOR: script::memory::CountingAllocator = script::memory::CountingAllocator;
