//! # ticket: a replicated seat-booking system
//!
//! # Layout
//! - [`clock`]: the one place wall-clock time is read (the domain never reads it).
//! - [`limits`]: every bound, named, with their relations checked at compile time.
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
//! - [`json`]: the JSON shape of events and bookings and the word for a seat status, shared by
//!   `--json`, scripts, the page and the assistant.
//! - [`client`]: the one client everything above the server uses: any node, retries with
//!   the same request id, failover.
//! - [`cli`]: the subcommands of the `ticket` binary (`up`, `status`, `user add`, `bench`).
//! - [`shell`]: the booking shell (reedline), interactive or driven by `-c`, `-f` and stdin.
//! - [`assistant`]: questions in plain language, answered from the live cluster as the asking
//!   user; changes only as confirmed proposals.
//! - [`web`]: the page (seat map, booking, the Ask box, cluster health) and its JSON API,
//!   live through `WatchSeats`.
//! - [`script`]: rhai scenarios (`ticket run`, `run`) and plugins, in a sandbox, calling the
//!   shell's commands as functions.
//!
//! Layering runs one way: `domain` ← `consensus` ← `server`; `client` ← `cli` / `shell` ⇄ `script`, `assistant` ← `web`. Nothing above
//! `server` touches the store or openraft. `server` and `client` meet only in `pb` and `wire`:
//! `client` imports nothing from `server`.

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
