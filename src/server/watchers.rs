//! Who holds this node's `WatchSeats` streams. Callers without a token share a small pool,
//! capped per address, so strangers filling it never keep a logged-in watcher out; each
//! logged-in user may hold a few streams of the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;
use crate::limits;

#[derive(Default)]
struct Counts {
    total: usize,
    anonymous: usize,
    by_address: HashMap<IpAddr, usize>,
    by_user: HashMap<String, usize>,
}

#[derive(Default, Clone)]
pub struct Watchers {
    counts: Arc<Mutex<Counts>>,
}

/// One open stream; dropping it gives the place back.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    holder: Holder,
}

enum Holder {
    Anonymous(Option<IpAddr>),
    User(String),
}

fn exhausted(message: String) -> ApiError {
    metrics::counter!("ticket_throttled_requests_total", "what" => "watch").increment(1);
    ApiError::Exhausted {
        message: format!("{message}; try again in 5 s"),
        retry_after_secs: 5,
    }
}

impl Watchers {
    pub fn acquire(&self, user: Option<&str>, address: Option<IpAddr>) -> Result<Slot, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= limits::WATCH_STREAMS_MAX {
            return Err(ApiError::Unavailable(
                "this node has as many watchers as it serves; try another".into(),
            ));
        }
        let holder = match user {
            Some(user) => {
                let held = counts.by_user.get(user).copied().unwrap_or(0);
                if held >= limits::WATCH_STREAMS_PER_USER_MAX {
                    return Err(exhausted(format!(
                        "'{user}' already watches {held} streams on this node"
                    )));
                }
                counts.by_user.insert(user.to_string(), held + 1);
                Holder::User(user.to_string())
            }
            None => {
                if counts.anonymous >= limits::WATCH_STREAMS_ANONYMOUS_MAX {
                    return Err(exhausted(
                        "this node serves as many watchers without a login as it may; log in"
                            .into(),
                    ));
                }
                if let Some(address) = address {
                    let held = counts.by_address.get(&address).copied().unwrap_or(0);
                    if held >= limits::WATCH_STREAMS_PER_ADDRESS_MAX {
                        return Err(exhausted(format!(
                            "{address} already watches {held} streams without a login"
                        )));
                    }
                    counts.by_address.insert(address, held + 1);
                }
                counts.anonymous += 1;
                Holder::Anonymous(address)
            }
        };
        counts.total += 1;
        metrics::gauge!("ticket_watch_streams_open").set(counts.total as f64);
        Ok(Slot {
            counts: self.counts.clone(),
            holder,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        metrics::gauge!("ticket_watch_streams_open").set(counts.total as f64);
        fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        match &self.holder {
            Holder::User(user) => release(&mut counts.by_user, user),
            Holder::Anonymous(address) => {
                counts.anonymous = counts.anonymous.saturating_sub(1);
                if let Some(address) = address {
                    release(&mut counts.by_address, address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strangers filling their pool leave room for a logged-in watcher, and places come back.
    #[test]
    fn strangers_cannot_keep_a_user_out() {
        let watchers = Watchers::default();
        let address = Some(IpAddr::from([127, 0, 0, 1]));
        let held: Vec<Slot> = (0..limits::WATCH_STREAMS_PER_ADDRESS_MAX)
            .map(|_| watchers.acquire(None, address).expect("anonymous slot"))
            .collect();
        assert!(watchers.acquire(None, address).is_err());
        watchers
            .acquire(Some("user1"), address)
            .expect("a user is served");
        drop(held);
        watchers.acquire(None, address).expect("places come back");
    }
}
