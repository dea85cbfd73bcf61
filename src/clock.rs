//! The one place wall-clock time is read.
//!
//! The domain never reads a clock: a command carries the time its proposing node chose
//! (`now_ms` in `Command`), so that every node applies it to the same result. Everything else
//! that needs the time of day (a token's expiry, the assistant's prompt, scripts' `now_ms()`,
//! certificate dates) reads it here, so there is one reading to reason about, to search for,
//! and to change should it ever need to be faked. Durations and timeouts use monotonic
//! `Instant`s, not this.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970 (UTC); 0 if the system clock is set before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
