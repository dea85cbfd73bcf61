//! The session form of a request id, `~SESSION.SEQ.ACKED`: read by validation and by the
//! state (`state/sessions.rs`), made by the client (`client/ids.rs`).

/// A session-form request id, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    pub session: u64,
    /// This request's number in the session, from 1.
    pub seq: u64,
    /// Every request numbered below this has been answered, and the client will not retry it.
    pub acked: u64,
}

impl SessionKey {
    /// The mark that starts a session-form id; no other id may start with it.
    pub const MARK: char = '~';

    /// Reads `~SESSION.SEQ.ACKED`; None for any other id, or a malformed one (which
    /// validation refuses before it gets here).
    pub fn parse(id: &str) -> Option<SessionKey> {
        let mut parts = id.strip_prefix(Self::MARK)?.split('.');
        let mut field = || u64::from_str_radix(parts.next()?, 16).ok();
        let key = SessionKey {
            session: field()?,
            seq: field()?,
            acked: field()?,
        };
        let well_formed = parts.next().is_none() && key.seq >= 1 && key.acked <= key.seq;
        well_formed.then_some(key)
    }

    pub fn format(&self) -> String {
        format!(
            "{}{:x}.{:x}.{:x}",
            Self::MARK,
            self.session,
            self.seq,
            self.acked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits;

    fn key(session: u64, seq: u64, acked: u64) -> SessionKey {
        SessionKey {
            session,
            seq,
            acked,
        }
    }

    #[test]
    fn session_ids_read_back_and_other_ids_are_not_sessions() {
        let k = key(0xdead_beef, 42, 40);
        assert_eq!(SessionKey::parse(&k.format()), Some(k));
        assert_eq!(k.format(), "~deadbeef.2a.28");
        for other in [
            "abc", "~", "~1.2", "~1.2.3.4", "~x.1.1", "~1.0.0", "~1.2.3", "1.2.1",
        ] {
            assert_eq!(SessionKey::parse(other), None, "{other}");
        }
        let longest = key(u64::MAX, u64::MAX, u64::MAX).format();
        assert!(longest.len() <= limits::REQUEST_ID_LEN_MAX, "{longest}");
    }
}
