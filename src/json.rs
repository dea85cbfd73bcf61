//! The JSON shape of the API's events, seats and bookings, and the word for a seat's status:
//! one place for the shell's `--json`, the scripts (which see what `--json` prints), the page's
//! JSON API and the assistant, so that the same thing reads the same everywhere.
//!
//! One difference is kept on purpose: a seat whose holder the cluster does not tell the caller
//! has `"holder": ""` and `"booking_id": ""` in `--json` and scripts (which may read the fields
//! on any seat), and neither field on the page (which reads their absence). Both come from
//! [`seat_json`]. The assistant's tools have typed views of their own (`assistant::tools`),
//! which use [`seat_status_word`].

use serde_json::{json, Value};

use crate::pb::booking::v1 as pb;

/// A seat's status as a word: "free", "mine" or "taken", the same wherever a status is a word
/// (`--json`, `seats --watch`, scripts, the page, the assistant). A status this build does not
/// know (from a newer node) is "taken": a seat is never offered as free on a guess.
pub fn seat_status_word(status: i32) -> &'static str {
    match pb::SeatStatus::try_from(status) {
        Ok(pb::SeatStatus::Free) => "free",
        Ok(pb::SeatStatus::Mine) => "mine",
        Ok(pb::SeatStatus::Held) => "held",
        Ok(pb::SeatStatus::HeldByYou) => "held_by_you",
        Ok(pb::SeatStatus::Taken) | Err(_) => "taken",
    }
}

/// A seat as `--json`, `seats --watch --json` and scripts show it: its id, row and status
/// word, and who holds it by which booking (both empty when the caller is not told).
pub fn seat_json(s: &pb::Seat) -> Value {
    json!({
        "id": s.id,
        "row": s.row,
        "status": seat_status_word(s.status),
        "holder": s.holder,
        "booking_id": s.booking_id,
        "category": s.category,
        "price_minor": s.price_minor,
        "hold_id": s.hold_id,
        "hold_expires_at_ms": s.hold_expires_at_ms,
    })
}

/// A seat as the page's JSON API sends it: [`seat_json`], without `holder` and `booking_id`
/// when the cluster leaves the holder out (only the holder and admins are told who holds a
/// seat).
pub fn page_seat_json(s: &pb::Seat) -> Value {
    let mut seat = seat_json(s);
    if let Some(fields) = seat.as_object_mut() {
        if s.holder.is_empty() {
            fields.remove("holder");
            fields.remove("booking_id");
        }
        if s.hold_id.is_empty() {
            fields.remove("hold_id");
            fields.remove("hold_expires_at_ms");
        }
        if s.booking_id.is_empty() {
            fields.remove("booking_id");
        }
    }
    seat
}

pub fn event_json(e: &pb::Event) -> Value {
    json!({
        "name": e.name,
        "rows": e.rows,
        "seats_per_row": e.seats_per_row,
        "max_seats_per_user": e.max_seats_per_user,
        "free": e.free,
        "taken": e.taken,
        "currency": e.currency,
        "categories": e.categories.iter().map(|c| json!({
            "name": c.name,
            "price_minor": c.price_minor,
            "covers": c.covers,
            "max_seats_per_user": c.max_seats_per_user,
        })).collect::<Vec<_>>(),
    })
}

pub fn booking_json(b: &pb::Booking) -> Value {
    json!({
        "id": b.id,
        "event": b.event,
        "seats": b.seats,
        "user": b.user,
        "created_at_ms": b.created_at_ms,
        "total_minor": b.total_minor,
        "currency": b.currency,
        "payment_ref": b.payment_ref,
    })
}

pub fn hold_json(h: &pb::Hold) -> Value {
    json!({
        "id": h.id,
        "event": h.event,
        "seats": h.seats,
        "user": h.user,
        "created_at_ms": h.created_at_ms,
        "expires_at_ms": h.expires_at_ms,
        "latest_expiry_ms": h.latest_expiry_ms,
        "total_minor": h.total_minor,
        "currency": h.currency,
    })
}

pub fn ticket_json(t: &pb::Ticket) -> Value {
    json!({
        "code": t.code,
        "event": t.event,
        "seat": t.seat,
        "booking_id": t.booking_id,
        "checked_in_at_ms": t.checked_in_at_ms,
        "checked_in_by": t.checked_in_by,
    })
}

/// A price in minor units as a person reads it: `80.00 EUR`; nothing for a free seat in an
/// event without prices.
pub fn price_text(minor: u64, currency: &str) -> String {
    if currency.is_empty() {
        return String::new();
    }
    format!("{}.{:02} {currency}", minor / 100, minor % 100)
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

    #[test]
    fn the_page_leaves_out_the_holder_it_is_not_told() {
        let seat = |holder: &str, booking_id: &str| pb::Seat {
            id: "S2".into(),
            row: "S".into(),
            status: pb::SeatStatus::Taken as i32,
            holder: holder.into(),
            booking_id: booking_id.into(),
            ..Default::default()
        };
        let hidden = seat("", "");
        assert_eq!(
            seat_json(&hidden),
            json!({ "id": "S2", "row": "S", "status": "taken", "holder": "", "booking_id": "",
                    "category": "", "price_minor": 0, "hold_id": "", "hold_expires_at_ms": 0 })
        );
        assert_eq!(
            page_seat_json(&hidden),
            json!({ "id": "S2", "row": "S", "status": "taken", "category": "", "price_minor": 0 })
        );
        let told = seat("user1", "bk-1");
        assert!(
            page_seat_json(&told).get("hold_id").is_none(),
            "no hold, no hold fields"
        );
        assert_eq!(page_seat_json(&told)["holder"], "user1");
        assert_eq!(page_seat_json(&told)["booking_id"], "bk-1");
    }
}
