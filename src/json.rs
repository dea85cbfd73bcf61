//! The JSON shape of the API's events and bookings: one place for the shell's `--json`,
//! the scripts (which see what `--json` prints) and the page's JSON API, so that the same
//! thing reads the same everywhere.

use serde_json::{json, Value};

use crate::pb::booking::v1 as pb;

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
