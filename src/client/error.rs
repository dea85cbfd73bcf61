//! What a call on the cluster came to when it did not succeed: [`ClientError`], in the classes
//! a caller acts on (not found, refused, not logged in, outcome unknown, no node answered).
//! gRPC codes become classes here and nowhere else ([`ClientError::from_status`]); callers
//! above the client match the classes, and show an error to a person with `Display`.
//!
//! There is no "not leader" class: a node that is not the leader forwards a write to the
//! one that is (and a linearizable read asks it for a read index), so the client API never
//! answers "not leader"; between leaders a call is UNAVAILABLE and the client tries the next
//! node. The leader's id reaches the client in the response metadata (`wire::leader`).
//!
//! What it does not do: retry, or choose which failures are worth retrying on another node
//! (the client's `call` does that, with the same request id); it only names what the last
//! attempt came to.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::{Code, Status};

/// Whether a call changes the cluster's state. A write whose last attempt timed out or found
/// no node may or may not have been applied; a read's may simply be asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
}

/// What a person is told when no node of the cluster accepted a connection.
const NO_NODE_ANSWERED: &str =
    "no node of the cluster answered: is it running? (start it with `ticket up`)";

/// A call on the cluster that did not succeed.
#[derive(Debug)]
pub enum ClientError {
    /// The event, seat, booking or user does not exist (NOT_FOUND).
    NotFound { message: String },
    /// The cluster said no, with its reason: the seats are taken, not reserved, over the
    /// limit; the name is in use (FAILED_PRECONDITION, ALREADY_EXISTS). Also this client's own
    /// refusal to call at all (its CA unreadable, plain text to a remote node).
    Refused { reason: String, code: Code },
    /// Too many requests or attempts: try again later, after `retry_after_secs` when the node
    /// said (RESOURCE_EXHAUSTED).
    Throttled {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// The request itself is wrong: a bad name, seat or size, a message over the size limit
    /// (INVALID_ARGUMENT, OUT_OF_RANGE).
    Invalid { message: String, code: Code },
    /// Not logged in, a wrong password, or a token expired or revoked (UNAUTHENTICATED).
    Unauthenticated { message: String },
    /// Logged in, but not allowed: not an admin, not the booking's owner (PERMISSION_DENIED).
    PermissionDenied { message: String },
    /// A read that no node answered before the call's deadline (its last attempt timed out or
    /// found no leader). Nothing changed; asking again is safe.
    Unavailable { message: String, code: Code },
    /// A write whose last attempt timed out or found no leader: it may or may not have been
    /// applied. Retrying with the same request id is safe and tells which.
    UnknownOutcome { message: String, code: Code },
    /// No node of the cluster accepted a connection at the end of the call: it is not running,
    /// or not reachable from here. (A write may still have reached a node on an earlier
    /// attempt.)
    NoNodeAnswered(NoNodeAnswered),
    /// Anything else: a bug or a broken node (INTERNAL, UNIMPLEMENTED, DATA_LOSS).
    Other(Status),
}

impl ClientError {
    /// The one mapping of a gRPC status to a class. `kind` decides what a failure worth
    /// retrying (a timeout, no leader) means once the retries are over: for a read, nothing
    /// happened; for a write, nobody knows.
    pub(super) fn from_status(status: Status, kind: Kind) -> ClientError {
        let code = status.code();
        let message = status.message().to_string();
        match code {
            Code::NotFound => ClientError::NotFound { message },
            Code::FailedPrecondition | Code::AlreadyExists => ClientError::Refused {
                reason: message,
                code,
            },
            Code::ResourceExhausted => ClientError::Throttled {
                retry_after_secs: crate::error::retry_after_secs(&status),
                message,
            },
            Code::InvalidArgument | Code::OutOfRange => ClientError::Invalid { message, code },
            Code::Unauthenticated => ClientError::Unauthenticated { message },
            Code::PermissionDenied => ClientError::PermissionDenied { message },
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted => match kind {
                Kind::Read => ClientError::Unavailable { message, code },
                Kind::Write => ClientError::UnknownOutcome { message, code },
            },
            Code::Ok | Code::Unimplemented | Code::Internal | Code::DataLoss => {
                ClientError::Other(status)
            }
        }
    }

    /// The gRPC code the call ended with (UNAVAILABLE when no node answered).
    pub fn code(&self) -> Code {
        match self {
            ClientError::NotFound { .. } => Code::NotFound,
            ClientError::Refused { code, .. }
            | ClientError::Invalid { code, .. }
            | ClientError::Unavailable { code, .. }
            | ClientError::UnknownOutcome { code, .. } => *code,
            ClientError::Throttled { .. } => Code::ResourceExhausted,
            ClientError::Unauthenticated { .. } => Code::Unauthenticated,
            ClientError::PermissionDenied { .. } => Code::PermissionDenied,
            ClientError::NoNodeAnswered(_) => Code::Unavailable,
            ClientError::Other(status) => status.code(),
        }
    }

    /// The message: the cluster's own words, or this client's when it gave up.
    pub fn message(&self) -> &str {
        match self {
            ClientError::NotFound { message }
            | ClientError::Refused {
                reason: message, ..
            }
            | ClientError::Throttled { message, .. }
            | ClientError::Invalid { message, .. }
            | ClientError::Unauthenticated { message }
            | ClientError::PermissionDenied { message }
            | ClientError::Unavailable { message, .. }
            | ClientError::UnknownOutcome { message, .. } => message,
            ClientError::NoNodeAnswered(_) => NO_NODE_ANSWERED,
            ClientError::Other(status) => status.message(),
        }
    }

    /// How the error reads over HTTP (the page's JSON API and the assistant's `/ask/confirm`):
    /// the HTTP status, and the name of the class the page may act on. One mapping, so both
    /// say the same about the same refusal. 503 and 504 are worth retrying with the same body.
    pub fn http_status(&self) -> (u16, &'static str) {
        match self {
            ClientError::Invalid { .. } => (400, "INVALID_ARGUMENT"),
            ClientError::Unauthenticated { .. } => (401, "UNAUTHENTICATED"),
            ClientError::PermissionDenied { .. } => (403, "PERMISSION_DENIED"),
            ClientError::NotFound { .. } => (404, "NOT_FOUND"),
            // Taken, not reserved, over the per-person limit: the state says no.
            ClientError::Refused { .. } => (409, "FAILED_PRECONDITION"),
            ClientError::Throttled { .. } => (429, "RESOURCE_EXHAUSTED"),
            ClientError::Unavailable { .. } | ClientError::NoNodeAnswered(_) => {
                (503, "UNAVAILABLE")
            }
            // The outcome is unknown: retry with the same request id to learn it.
            ClientError::UnknownOutcome { .. } => (504, "DEADLINE_EXCEEDED"),
            ClientError::Other(_) => (500, "INTERNAL"),
        }
    }
}

/// A status as the error of a call that changed nothing: a read's mapping (a write's last
/// timeout is mapped by the client's `call`, which knows it wrote).
impl From<Status> for ClientError {
    fn from(status: Status) -> ClientError {
        ClientError::from_status(status, Kind::Read)
    }
}

/// A sentence for a person: the message (see [`ClientError::message`]).
impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ClientError {}

/// No node of the cluster accepted a connection: it is not running, or not reachable from
/// here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoNodeAnswered {
    pub addrs: Vec<SocketAddr>,
    pub within: Duration,
}

impl std::fmt::Display for NoNodeAnswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        write!(
            f,
            "no node of the cluster answered within {} s (tried {}): is it running? Start it \
             with `ticket up`",
            self.within.as_secs_f32(),
            addrs.join(", ")
        )
    }
}

impl std::error::Error for NoNodeAnswered {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code, so that a code added to the mapping's classes is seen here.
    const CODES: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The class's name, for comparing classes in one table.
    fn class(error: &ClientError) -> &'static str {
        match error {
            ClientError::NotFound { .. } => "not found",
            ClientError::Refused { .. } => "refused",
            ClientError::Throttled { .. } => "throttled",
            ClientError::Invalid { .. } => "invalid",
            ClientError::Unauthenticated { .. } => "unauthenticated",
            ClientError::PermissionDenied { .. } => "permission denied",
            ClientError::Unavailable { .. } => "unavailable",
            ClientError::UnknownOutcome { .. } => "unknown outcome",
            ClientError::NoNodeAnswered(_) => "no node answered",
            ClientError::Other(_) => "other",
        }
    }

    fn expected(code: Code, kind: Kind) -> &'static str {
        match code {
            Code::NotFound => "not found",
            Code::FailedPrecondition | Code::AlreadyExists => "refused",
            Code::ResourceExhausted => "throttled",
            Code::InvalidArgument | Code::OutOfRange => "invalid",
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission denied",
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted => match kind {
                Kind::Read => "unavailable",
                Kind::Write => "unknown outcome",
            },
            _ => "other",
        }
    }

    #[test]
    fn each_code_maps_to_its_class_keeping_its_code_and_message() {
        for kind in [Kind::Read, Kind::Write] {
            for code in CODES {
                let error = ClientError::from_status(Status::new(code, "the words"), kind);
                assert_eq!(class(&error), expected(code, kind), "{code:?} {kind:?}");
                assert_eq!(error.code(), code, "{code:?} {kind:?}");
                assert_eq!(error.message(), "the words", "{code:?} {kind:?}");
                assert_eq!(error.to_string(), "the words", "{code:?} {kind:?}");
            }
        }
    }

    #[test]
    fn a_retryable_failure_is_unknown_for_a_write_and_unavailable_for_a_read() {
        let timeout = || Status::deadline_exceeded("the node did not answer in time");
        let read = ClientError::from_status(timeout(), Kind::Read);
        let write = ClientError::from_status(timeout(), Kind::Write);
        assert!(matches!(read, ClientError::Unavailable { .. }), "{read:?}");
        assert!(
            matches!(write, ClientError::UnknownOutcome { .. }),
            "{write:?}"
        );
        // A refusal is the same whatever the kind: the cluster said no.
        let taken = ClientError::from_status(Status::failed_precondition("taken"), Kind::Write);
        assert!(matches!(taken, ClientError::Refused { .. }), "{taken:?}");
    }

    #[test]
    fn a_throttled_reply_keeps_the_seconds_to_wait() {
        let mut status = Status::resource_exhausted("slow down");
        status
            .metadata_mut()
            .insert(crate::error::RETRY_AFTER, 7u64.into());
        let error = ClientError::from(status);
        assert!(
            matches!(
                error,
                ClientError::Throttled {
                    retry_after_secs: Some(7),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.http_status(), (429, "RESOURCE_EXHAUSTED"));
    }

    #[test]
    fn no_node_answered_says_how_to_start_the_cluster() {
        let error = ClientError::NoNodeAnswered(NoNodeAnswered {
            addrs: Vec::new(),
            within: Duration::from_millis(500),
        });
        assert_eq!(
            error.to_string(),
            "no node of the cluster answered: is it running? (start it with `ticket up`)"
        );
        assert_eq!(error.code(), Code::Unavailable);
        assert_eq!(error.http_status(), (503, "UNAVAILABLE"));
    }

    #[test]
    fn each_class_has_the_http_status_a_page_can_act_on() {
        let http = |code: Code, kind: Kind| {
            ClientError::from_status(Status::new(code, ""), kind)
                .http_status()
                .0
        };
        assert_eq!(http(Code::FailedPrecondition, Kind::Write), 409);
        assert_eq!(http(Code::AlreadyExists, Kind::Write), 409);
        assert_eq!(http(Code::Unauthenticated, Kind::Read), 401);
        assert_eq!(http(Code::NotFound, Kind::Read), 404);
        assert_eq!(http(Code::PermissionDenied, Kind::Write), 403);
        assert_eq!(http(Code::InvalidArgument, Kind::Write), 400);
        assert_eq!(http(Code::OutOfRange, Kind::Read), 400);
        assert_eq!(http(Code::Unavailable, Kind::Read), 503);
        assert_eq!(http(Code::DeadlineExceeded, Kind::Write), 504);
        assert_eq!(http(Code::Internal, Kind::Read), 500);
    }
}
