//! The seat map, for a person (by row, coloured at a terminal, with a legend) and for a
//! script (JSON).

use nu_ansi_term::Color;
use serde_json::{json, Value};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::json::seat_json;
use crate::pb::booking::v1 as pb;
use crate::pb::booking::v1::{GetSeatsReply, SeatStatus, WatchSeatsReply};

fn status(code: i32) -> SeatStatus {
    SeatStatus::try_from(code).unwrap_or(SeatStatus::Taken)
}

/// One line per row: `A  [ 1] [ 2] ...`, each seat marked by shape as well as colour: `.`
/// free, `#` taken, `*` mine.
pub fn seat_map(reply: &GetSeatsReply, colour: bool) -> String {
    let event = reply.event.clone().unwrap_or_default();
    let mut out = format!(
        "{}: {} free, {} taken (applied index {})\n",
        event.name, event.free, event.taken, reply.applied_index
    );
    let mut row = String::new();
    for seat in &reply.seats {
        if seat.row != row {
            if !row.is_empty() {
                out.push('\n');
            }
            row.clone_from(&seat.row);
            out.push_str(&format!("{row:<4}"));
        }
        // The number is the id without its row ("S10" in row "S"); an id the server sent
        // that does not start with its row is shown whole rather than cut mid-character.
        let number = seat
            .id
            .strip_prefix(seat.row.as_str())
            .unwrap_or(seat.id.as_str());
        let (mark, paint) = match status(seat.status) {
            SeatStatus::Free => ('.', Color::Green),
            SeatStatus::Mine => ('*', Color::Cyan),
            SeatStatus::Taken => ('#', Color::Red),
            SeatStatus::Held => ('~', Color::Yellow),
            SeatStatus::HeldByYou => ('+', Color::Purple),
        };
        let cell = format!("{mark}{number:<3}");
        if colour {
            out.push_str(&paint.paint(cell).to_string());
        } else {
            out.push_str(&cell);
        }
        out.push(' ');
    }
    out.push_str("\nlegend: .free  *mine  #taken");
    let held = |wanted: SeatStatus| reply.seats.iter().any(|s| status(s.status) == wanted);
    if held(SeatStatus::Held) || held(SeatStatus::HeldByYou) {
        out.push_str("  ~held  +held by you");
    }
    if let Some(event) = &reply.event {
        if !event.categories.is_empty() {
            out.push_str(&format!("\nprices: {}", categories_text(event)));
        }
    }
    out
}

/// An event's categories in a line: `front €80.00 (A, at most 2 a person), rear €45.00 (B C)`.
pub fn categories_text(event: &pb::Event) -> String {
    let shown: Vec<String> = event
        .categories
        .iter()
        .map(|c| {
            let limit = match c.max_seats_per_user {
                0 => String::new(),
                n => format!(", at most {n} a person"),
            };
            format!(
                "{} {} ({}{limit})",
                c.name,
                crate::json::price_text(c.price_minor, &event.currency),
                c.covers.join(" ")
            )
        })
        .collect();
    shown.join(", ")
}

/// One change of `seats --watch`: `[index 42] S7 taken, S3 free` (the whole map after a
/// reset, which a node sends when the watcher fell too far behind).
pub fn watch_line(update: &WatchSeatsReply, colour: bool) -> String {
    let seats: Vec<String> = update
        .seats
        .iter()
        .map(|s| {
            let word = crate::json::seat_status_word(s.status);
            let text = format!("{} {word}", s.id);
            match (colour, status(s.status)) {
                (false, _) => text,
                (true, SeatStatus::Free) => Color::Green.paint(text).to_string(),
                (true, SeatStatus::Mine) => Color::Cyan.paint(text).to_string(),
                (true, SeatStatus::Taken) => Color::Red.paint(text).to_string(),
                (true, SeatStatus::Held) => Color::Yellow.paint(text).to_string(),
                (true, SeatStatus::HeldByYou) => Color::Purple.paint(text).to_string(),
            }
        })
        .collect();
    let what = if update.reset { "the whole map: " } else { "" };
    format!(
        "[index {}] {what}{}",
        update.applied_index,
        seats.join(", ")
    )
}

pub fn watch_json(update: &WatchSeatsReply) -> Value {
    let seats: Vec<Value> = update.seats.iter().map(seat_json).collect();
    json!({ "applied_index": update.applied_index, "reset": update.reset, "seats": seats })
}

pub fn seats_json(reply: &GetSeatsReply) -> Value {
    let seats: Vec<Value> = reply.seats.iter().map(seat_json).collect();
    let event = reply.event.clone().unwrap_or_default();
    json!({
        "event": event.name,
        "free": event.free,
        "taken": event.taken,
        "applied_index": reply.applied_index,
        "seats": seats,
    })
}

/// The events as a table; the one in use is marked with `*`.
pub fn events_table(events: &[pb::Event], in_use: &str) -> String {
    let mut table = table(&["event", "seats", "free", "taken", ""]);
    for e in events {
        let seats = u64::from(e.rows) * u64::from(e.seats_per_row);
        let marker = if e.name == in_use { "*" } else { "" };
        table.add_row(vec![
            Cell::new(&e.name),
            Cell::new(seats).set_alignment(CellAlignment::Right),
            Cell::new(e.free).set_alignment(CellAlignment::Right),
            Cell::new(e.taken).set_alignment(CellAlignment::Right),
            Cell::new(marker),
        ]);
    }
    table.to_string()
}

/// The user's bookings as a table.
pub fn bookings_table(bookings: &[pb::Booking]) -> String {
    let mut table = table(&["booking", "event", "seats"]);
    for b in bookings {
        table.add_row(vec![b.id.clone(), b.event.clone(), b.seats.join(", ")]);
    }
    table.to_string()
}

/// A table in the shell's plain style: a header, columns as wide as their widest cell, no
/// borders (so it reads the same in a log, a pipe and a terminal).
pub(super) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::booking::v1::{Event, Seat};

    fn reply(seats: &[(&str, &str)]) -> GetSeatsReply {
        GetSeatsReply {
            event: Some(Event {
                name: "gala".into(),
                ..Event::default()
            }),
            seats: seats
                .iter()
                .map(|(row, id)| Seat {
                    id: id.to_string(),
                    row: row.to_string(),
                    status: SeatStatus::Free as i32,
                    ..Seat::default()
                })
                .collect(),
            applied_index: 7,
        }
    }

    #[test]
    fn a_seat_shows_its_number_within_its_row() {
        let map = seat_map(&reply(&[("S", "S1"), ("S", "S10")]), false);
        assert!(map.contains("S   .1   .10"), "{map}");
    }

    /// The server's data is not trusted to keep ids and rows consistent: a row longer than
    /// the id, or one ending inside a multi-byte character of the id, must not panic.
    #[test]
    fn ids_that_do_not_start_with_their_row_are_shown_whole() {
        let map = seat_map(
            &reply(&[("ÅBCDEF", "A1"), ("A", "é1"), ("Ü", "Ü2"), ("", "")]),
            false,
        );
        assert!(map.contains(".A1"), "{map}");
        assert!(map.contains(".é1"), "{map}");
        assert!(map.contains(".2"), "{map}");
    }
}
