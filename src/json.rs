//! The JSON shape of the API's events and bookings, and the word for a seat's status: one
//! place for the shell's `--json`, the scripts (which see what `--json` prints), the page's
//! JSON API and the assistant, so that the same thing reads the same everywhere.

use serde_json::{json, Value};

use crate::pb::booking::v1 as pb;

/// A seat's status as a word: "free", "mine" or "taken", the same wherever a status is a word
/// (`--json`, `seats --watch`, scripts, the page, the assistant). A status this build does not
/// know (from a newer node) is "taken": a seat is never offered as free on a guess.
pub fn seat_status_word(status: i32) -> &'static str {
    match pb::SeatStatus::try_from(status) {
        Ok(pb::SeatStatus::Free) => "free",
        Ok(pb::SeatStatus::Mine) => "mine",
        Ok(pb::SeatStatus::Taken) | Err(_) => "taken",
    }
}

pub fn event_json(e: &pb::Event) -> Value {
    json!({
        "name": e.name,
        "rows": e.rows,
        "seats_per_row": e.seats_per_row,
        "max_seats_per_user": e.max_seats_per_user,
        "free": e.free,
        "taken": e.taken,
    })
}

pub fn booking_json(b: &pb::Booking) -> Value {
    json!({
        "id": b.id,
        "event": b.event,
        "seats": b.seats,
        "user": b.user,
        "created_at_ms": b.created_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_statuses_have_one_word_each_and_unknown_is_taken() {
        assert_eq!(seat_status_word(pb::SeatStatus::Free as i32), "free");
        assert_eq!(seat_status_word(pb::SeatStatus::Mine as i32), "mine");
        assert_eq!(seat_status_word(pb::SeatStatus::Taken as i32), "taken");
        assert_eq!(seat_status_word(99), "taken");
        assert_eq!(seat_status_word(-1), "taken");
    }
}
