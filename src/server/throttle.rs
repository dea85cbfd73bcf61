//! What a stranger can make a node spend on passwords: failed logins are throttled per
//! account and per client address, self-registrations per address, and every PBKDF2
//! computation waits for one of a few permits.
//!
//! Kept per node, not replicated: putting each failed login through the log would hand an
//! attacker a way to fill the log, and each node throttling on its own still bounds the
//! cluster to (nodes × limit). A client that moves between nodes gets at most that.
//!
//! What it does not do: remember anything across a restart, or tell a wrong password from a
//! missing user (both are one failure of that name).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::limits;

/// A token bucket: `capacity` at once, one more every `refill`.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64) -> Bucket {
        Bucket {
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, capacity: f64, per_second: f64) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
    }

    /// The wait until one token is there (zero if one is there now).
    fn wait(&self, per_second: f64) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / per_second)
    }
}

struct Failures {
    count: u32,
    /// No login of this name is tried before this.
    until: Instant,
    last: Instant,
}

/// A limit of the form "`capacity` at once, `per_second` after that".
struct Rate {
    capacity: f64,
    per_second: f64,
}

const LOGIN_FAILURES_PER_ADDRESS: Rate = Rate {
    capacity: limits::LOGIN_FAILURES_PER_ADDRESS_BURST as f64,
    per_second: limits::LOGIN_FAILURES_PER_ADDRESS_PER_MIN as f64 / 60.0,
};
const REGISTRATIONS_PER_ADDRESS: Rate = Rate {
    capacity: limits::REGISTRATIONS_PER_ADDRESS_BURST as f64,
    per_second: limits::REGISTRATIONS_PER_ADDRESS_PER_MIN as f64 / 60.0,
};

pub struct Throttle {
    accounts: Mutex<HashMap<String, Failures>>,
    login_failures: Mutex<HashMap<IpAddr, Bucket>>,
    registrations: Mutex<HashMap<IpAddr, Bucket>>,
    /// PBKDF2 runs at once: each takes a core for a fraction of a second.
    hashing: tokio::sync::Semaphore,
}

/// A RESOURCE_EXHAUSTED answer for `what`, counted by `kind` (a name this code gives, never
/// anything a caller sent).
fn exhausted(kind: &'static str, what: String, wait: Duration) -> ApiError {
    metrics::counter!("ticket_throttled_requests_total", "what" => kind).increment(1);
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::Exhausted {
        message: format!("{what}; try again in {secs} s"),
        retry_after_secs: secs,
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            accounts: Mutex::default(),
            login_failures: Mutex::default(),
            registrations: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(limits::PASSWORD_HASHES_AT_ONCE),
        }
    }
}

impl Throttle {
    /// Before a login of `user` from `address` is checked: refused while the name waits out
    /// its failures or the address has used up its failures.
    pub fn before_login(&self, user: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        {
            let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = accounts.get(user).filter(|f| f.until > now) {
                let what = format!("too many failed logins for '{user}'");
                return Err(exhausted("login_name", what, f.until - now));
            }
        }
        if let Some(address) = address {
            let mut buckets = self
                .login_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(bucket) = buckets.get_mut(&address) {
                let rate = &LOGIN_FAILURES_PER_ADDRESS;
                bucket.refill(rate.capacity, rate.per_second);
                let wait = bucket.wait(rate.per_second);
                if !wait.is_zero() {
                    return Err(exhausted(
                        "login_address",
                        format!("too many failed logins from {address}"),
                        wait,
                    ));
                }
            }
        }
        Ok(())
    }

    /// After a login: a success clears the name's failures; a failure counts against the name
    /// and the address.
    pub fn after_login(&self, user: &str, address: Option<IpAddr>, succeeded: bool) {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if succeeded {
            accounts.remove(user);
            return;
        }
        metrics::counter!("ticket_login_failures_total").increment(1);
        forget_oldest(&mut accounts, |f| f.last);
        let failures = accounts.entry(user.to_string()).or_insert(Failures {
            count: 0,
            until: now,
            last: now,
        });
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        if failures.count >= limits::LOGIN_FAILURES_FREE {
            let doublings = (failures.count - limits::LOGIN_FAILURES_FREE).min(16);
            let secs = (1u64 << doublings).min(limits::LOGIN_LOCKOUT_MAX_SECS);
            failures.until = now + Duration::from_secs(secs);
        }
        drop(accounts);
        if let Some(address) = address {
            let rate = &LOGIN_FAILURES_PER_ADDRESS;
            let mut buckets = self
                .login_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            forget_oldest(&mut buckets, |b| b.at);
            let bucket = buckets
                .entry(address)
                .or_insert_with(|| Bucket::full(rate.capacity));
            bucket.refill(rate.capacity, rate.per_second);
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        }
    }

    /// Before a self-registration from `address` (each costs a PBKDF2 run and a log entry).
    pub fn before_registration(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        let rate = &REGISTRATIONS_PER_ADDRESS;
        let mut buckets = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        forget_oldest(&mut buckets, |b| b.at);
        let bucket = buckets
            .entry(address)
            .or_insert_with(|| Bucket::full(rate.capacity));
        bucket.refill(rate.capacity, rate.per_second);
        let wait = bucket.wait(rate.per_second);
        if !wait.is_zero() {
            return Err(exhausted(
                "registration",
                format!("too many registrations from {address}"),
                wait,
            ));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Runs a PBKDF2 computation on the blocking pool once a permit is free; a node that is
    /// already hashing as much as it may for long answers RESOURCE_EXHAUSTED instead of
    /// queueing without end.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let wait = Duration::from_millis(limits::PASSWORD_HASH_WAIT_MS);
        let permit = tokio::time::timeout(wait, self.hashing.acquire())
            .await
            .map_err(|_| {
                exhausted(
                    "password_hashing",
                    "this node is busy checking passwords".into(),
                    wait,
                )
            })?
            .map_err(|_| ApiError::Unavailable("the node is stopping".into()))?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()));
        drop(permit);
        result
    }
}

/// Keeps a table of strangers bounded: past the limit, the least recently seen goes.
fn forget_oldest<K: Clone + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    seen: impl Fn(&V) -> Instant,
) {
    if table.len() < limits::THROTTLE_ENTRIES_MAX {
        return;
    }
    if let Some(oldest) = table
        .iter()
        .min_by_key(|(_, v)| seen(v))
        .map(|(k, _)| k.clone())
    {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five failures are free; the sixth try waits, and a success clears the name.
    #[test]
    fn failed_logins_make_the_name_wait() {
        let throttle = Throttle::default();
        for _ in 0..limits::LOGIN_FAILURES_FREE {
            throttle.before_login("u", None).expect("not yet throttled");
            throttle.after_login("u", None, false);
        }
        let err = throttle.before_login("u", None).expect_err("throttled");
        assert!(matches!(err, ApiError::Exhausted { .. }), "{err:?}");
        assert!(err.to_string().contains("try again in"), "{err}");
        throttle
            .before_login("other", None)
            .expect("another name is not");
        throttle.after_login("u", None, true);
        throttle
            .before_login("u", None)
            .expect("a success clears it");
    }

    /// An address that fails across many names is throttled too.
    #[test]
    fn failed_logins_from_one_address_are_throttled() {
        let throttle = Throttle::default();
        let address = Some(IpAddr::from([10, 0, 0, 1]));
        let mut refused = 0;
        for i in 0..limits::LOGIN_FAILURES_PER_ADDRESS_BURST * 2 {
            let name = format!("user{i}");
            match throttle.before_login(&name, address) {
                Ok(()) => throttle.after_login(&name, address, false),
                Err(_) => refused += 1,
            }
        }
        assert!(
            refused >= limits::LOGIN_FAILURES_PER_ADDRESS_BURST - 1,
            "{refused}"
        );
        throttle
            .before_login("x", Some(IpAddr::from([10, 0, 0, 2])))
            .expect("another address is not throttled");
    }
}
