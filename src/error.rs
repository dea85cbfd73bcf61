//! The client API's errors, and the one place they become gRPC status codes.

use tonic::{Code, Status};

use crate::domain::Rejection;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// No leader or no quorum right now: the request may be retried with the same id.
    #[error("{0}")]
    Unavailable(String),
    /// Throttled or shed: the message says when to try again.
    #[error("{message}")]
    Exhausted {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Internal(String),
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let message = rejection.to_string();
        match rejection {
            Rejection::Invalid(_) => ApiError::InvalidArgument(message),
            Rejection::Busy(_) => ApiError::Exhausted {
                message,
                retry_after_secs: 1,
            },
            Rejection::NotBootstrapped => ApiError::Unavailable(message),
            Rejection::UnknownEvent(_)
            | Rejection::UnknownSeat { .. }
            | Rejection::UnknownBooking(_)
            | Rejection::UnknownUser(_)
            | Rejection::UnknownHold(_)
            | Rejection::UnknownCategory { .. } => ApiError::NotFound(message),
            Rejection::HoldTooLong { .. } | Rejection::BadCategories(_) => {
                ApiError::InvalidArgument(message)
            }
            Rejection::HoldExpired { .. }
            | Rejection::HoldConfirmed { .. }
            | Rejection::HoldReleased(_)
            | Rejection::HoldAtMaximum { .. }
            | Rejection::SeatsHeld { .. }
            | Rejection::NoSeats { .. }
            | Rejection::AlreadyCheckedIn { .. }
            | Rejection::TicketVoid { .. }
            | Rejection::SeatsTaken { .. }
            | Rejection::SeatNotReserved { .. }
            | Rejection::LimitReached { .. }
            | Rejection::CategoryLimitReached { .. }
            | Rejection::UserExists(_)
            | Rejection::EventExists(_)
            | Rejection::TooManyEvents(_)
            | Rejection::TooManyUsers(_) => ApiError::FailedPrecondition(message),
            Rejection::NotOwner(_)
            | Rejection::NotAdmin
            | Rejection::SetupRefused
            | Rejection::NotYourHold(_)
            | Rejection::NotDoor => ApiError::PermissionDenied(message),
        }
    }
}

/// The metadata key of a throttled reply: the seconds to wait before trying again.
pub const RETRY_AFTER: &str = "retry-after";

/// The seconds a RESOURCE_EXHAUSTED reply said to wait, if it said.
pub fn retry_after_secs(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let (code, message) = match error {
            ApiError::InvalidArgument(m) => (Code::InvalidArgument, m),
            ApiError::Unauthenticated(m) => (Code::Unauthenticated, m),
            ApiError::PermissionDenied(m) => (Code::PermissionDenied, m),
            ApiError::NotFound(m) => (Code::NotFound, m),
            ApiError::FailedPrecondition(m) => (Code::FailedPrecondition, m),
            ApiError::Unavailable(m) => (Code::Unavailable, m),
            ApiError::Exhausted {
                message,
                retry_after_secs,
            } => {
                let mut status = Status::resource_exhausted(message);
                status
                    .metadata_mut()
                    .insert(RETRY_AFTER, retry_after_secs.into());
                return status;
            }
            ApiError::Internal(m) => (Code::Internal, m),
        };
        Status::new(code, message)
    }
}
