//! Where a node stands, for its log lines: its Raft term and role, set by the node as they
//! change (`server::bootstrap::log_role_changes`) and read by the log formatter for every line
//! (`cli::logging`). A process that is not a node leaves them at term 0, role "starting".

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The roles a line can name; the index of one is what is stored.
const ROLES: &[&str] = &[
    "starting",
    "follower",
    "candidate",
    "leader",
    "learner",
    "shutdown",
];

static TERM: AtomicU64 = AtomicU64::new(0);
static ROLE: AtomicUsize = AtomicUsize::new(0);

/// Records the node's term and role (`"leader"`, `"follower"`, ...; an unknown name is kept
/// as "starting").
pub fn set(term: u64, role: &str) {
    let index = ROLES.iter().position(|r| *r == role).unwrap_or(0);
    TERM.store(term, Ordering::Relaxed);
    ROLE.store(index, Ordering::Relaxed);
}

/// The term and role last recorded.
pub fn get() -> (u64, &'static str) {
    let role = ROLES
        .get(ROLE.load(Ordering::Relaxed))
        .copied()
        .unwrap_or(ROLES[0]);
    (TERM.load(Ordering::Relaxed), role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_term_and_role_recorded_are_read_back() {
        set(7, "leader");
        assert_eq!(get(), (7, "leader"));
        set(8, "no such role");
        assert_eq!(get(), (8, "starting"));
    }
}
