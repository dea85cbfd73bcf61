//! What the assistant can look at and do: each tool is one call on the cluster's API, made as
//! the asking user, so the cluster's own rules apply (who reserved a seat is told only to the
//! holder and to admins, a customer cancels only their own seats). Reads are linearizable:
//! an answer about availability is as fresh as the moment it was asked.

use serde::Serialize;

use crate::client::{Client, Consistency};
use crate::pb::booking::v1 as pb;

/// The tools' names, as answers list them.
pub const LIST_EVENTS: &str = "list_events";
pub const SEATS: &str = "seats";
pub const MY_BOOKINGS: &str = "my_bookings";
pub const CLUSTER_STATUS: &str = "cluster_status";
pub const RESERVE: &str = "reserve";
pub const CANCEL: &str = "cancel";
pub const HELP: &str = "help";
pub const MY_HOLDS: &str = "my_holds";

#[derive(Debug, Clone, Serialize)]
pub struct SeatView {
    pub id: String,
    pub row: String,
    /// "free", "mine" or "taken".
    pub status: &'static str,
    /// Only when the asker reserved it or is an admin.
    pub holder: Option<String>,
    pub booking_id: Option<String>,
    /// The seat's price in minor units of the event's currency (0 without categories).
    #[serde(skip_serializing_if = "is_zero")]
    pub price_minor: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct SeatsView {
    pub event: String,
    pub applied_index: u64,
    pub free: u32,
    pub taken: u32,
    pub seats: Vec<SeatView>,
    /// Empty for an event without prices.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub currency: String,
}

impl SeatsView {
    pub fn seat(&self, id: &str) -> Option<&SeatView> {
        self.seats.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// The row labels, in order.
    pub fn rows(&self) -> Vec<&str> {
        let mut rows: Vec<&str> = Vec::new();
        for s in &self.seats {
            if rows.last() != Some(&s.row.as_str()) {
                rows.push(&s.row);
            }
        }
        rows
    }

    /// The first `n` adjacent free seats of one row, if there are any.
    pub fn adjacent_free(&self, n: usize) -> Option<Vec<String>> {
        self.adjacent_free_within(n, None)
    }

    /// [`SeatsView::adjacent_free`], of seats at most `max_price_minor` each when given.
    pub fn adjacent_free_within(
        &self,
        n: usize,
        max_price_minor: Option<u64>,
    ) -> Option<Vec<String>> {
        let mut run: Vec<&SeatView> = Vec::new();
        for seat in &self.seats {
            let follows = run.last().is_some_and(|last| last.row == seat.row);
            let affordable = max_price_minor.is_none_or(|max| seat.price_minor <= max);
            let status = if affordable { seat.status } else { "too dear" };
            match (status, follows) {
                ("free", true) => run.push(seat),
                ("free", false) => run = vec![seat],
                _ => run.clear(),
            }
            if n > 0 && run.len() == n {
                return Some(run.iter().map(|s| s.id.clone()).collect());
            }
        }
        None
    }
}

/// One of the asker's bookings, as the `my_bookings` tool shows it (the domain's
/// `BookingView` without the user, who is the asker, or the time).
#[derive(Debug, Clone, Serialize)]
pub struct MyBooking {
    pub id: String,
    pub event: String,
    pub seats: Vec<String>,
}

/// Seats one reserve or cancel may name, and the longest run `free_seats` looks for. (What a
/// seat id, an event name or a booking id looks like is `domain::validate`'s to say.)
pub const SEATS_MAX: usize = 10;

pub async fn list_events(client: &Client) -> Result<Vec<pb::Event>, String> {
    Ok(client
        .list_events()
        .await
        .map_err(|e| e.to_string())?
        .events)
}

pub async fn seats(client: &Client, event: &str) -> Result<SeatsView, String> {
    let reply = client
        .get_seats(event, Consistency::Linearizable)
        .await
        .map_err(|e| e.to_string())?;
    let info = reply.event.unwrap_or_default();
    let seats = reply
        .seats
        .into_iter()
        .map(|s| SeatView {
            status: crate::json::seat_status_word(s.status),
            id: s.id,
            row: s.row,
            holder: (!s.holder.is_empty()).then_some(s.holder),
            booking_id: (!s.booking_id.is_empty()).then_some(s.booking_id),
            price_minor: s.price_minor,
        })
        .collect();
    Ok(SeatsView {
        event: info.name,
        applied_index: reply.applied_index,
        free: info.free,
        taken: info.taken,
        seats,
        currency: info.currency,
    })
}

/// The asker's live holds, with the node's clock to tell the time left by.
pub async fn my_holds(client: &Client) -> Result<(Vec<pb::Hold>, u64), String> {
    let reply = client.my_holds().await.map_err(|e| e.to_string())?;
    Ok((reply.holds, reply.now_ms))
}

pub async fn my_bookings(client: &Client) -> Result<Vec<MyBooking>, String> {
    let reply = client.my_bookings().await.map_err(|e| e.to_string())?;
    Ok(reply
        .bookings
        .into_iter()
        .map(|b| MyBooking {
            id: b.id,
            event: b.event,
            seats: b.seats,
        })
        .collect())
}

pub async fn cluster_status(client: &Client) -> Result<pb::ClusterStatusReply, String> {
    client.cluster_status().await.map_err(|e| e.to_string())
}
