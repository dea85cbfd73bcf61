//! What travels on the gRPC APIs beside the messages of [`crate::pb`]: the metadata (headers)
//! both ends read and write, and its format. The server and the client import it from here,
//! not from each other, so that neither layer reaches into the other for a constant.

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::domain::state::DEMO_EVENT;

/// The metadata naming the leader: on a reply, the leader that took the write, so clients go
/// there next; on a peer's read-index refusal (FAILED_PRECONDITION), the leader to ask instead.
pub const LEADER_HEADER: &str = "x-ticket-leader";

/// The request metadata (and HTTP header) carrying a token: `authorization: Bearer <token>`.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The authorization value that carries `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The token an authorization value carries: what follows `Bearer `, without the spaces around
/// it (possibly nothing: the caller decides what an empty token means); `None` when the value
/// is not `Bearer <token>`. The one reading of it, for the gRPC API, the page's API and `/ask`.
pub fn bearer_token(value: &str) -> Option<&str> {
    value.strip_prefix("Bearer ").map(str::trim)
}

/// Names `leader` in `metadata` (see [`LEADER_HEADER`]).
pub fn set_leader(metadata: &mut MetadataMap, leader: u64) {
    metadata.insert(LEADER_HEADER, MetadataValue::from(leader));
}

/// The leader `metadata` names, if it names one (see [`LEADER_HEADER`]).
pub fn leader(metadata: &MetadataMap) -> Option<u64> {
    metadata
        .get(LEADER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The event a request's `event` field names: an empty one means the demo event, which every
/// cluster starts with (its name is the domain's: the state machine makes it).
pub fn event_or_demo(event: String) -> String {
    if event.is_empty() {
        DEMO_EVENT.to_string()
    } else {
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_round_trips_through_metadata() {
        let mut metadata = MetadataMap::new();
        assert_eq!(leader(&metadata), None);
        set_leader(&mut metadata, 3);
        assert_eq!(leader(&metadata), Some(3));
        metadata.insert(LEADER_HEADER, MetadataValue::from_static("three"));
        assert_eq!(leader(&metadata), None);
    }

    #[test]
    fn a_bearer_token_is_read_back() {
        assert_eq!(bearer_token(&bearer("u.1.sig")), Some("u.1.sig"));
        assert_eq!(bearer_token("Bearer  u.1.sig "), Some("u.1.sig"));
        assert_eq!(bearer_token("Bearer "), Some(""));
        assert_eq!(bearer_token("Basic dTpw"), None);
        assert_eq!(bearer_token("bearer u.1.sig"), None);
    }

    #[test]
    fn an_empty_event_is_the_demo_event() {
        assert_eq!(event_or_demo(String::new()), DEMO_EVENT);
        assert_eq!(event_or_demo("gala".into()), "gala");
    }
}
