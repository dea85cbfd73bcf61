//! The assistant: questions in plain language, answered from the cluster's live state, as
//! the asking user.
//!
//! Every answer comes from tools ([`tools`]) called in the same turn; nothing is answered
//! from memory. A question that would change something (book, cancel) comes back as a
//! [`Proposal`]; nothing changes until the person confirms it and [`carry_out`] runs it.
//!
//! The backend is the local rules engine ([`rules`]): deterministic, no network.

pub mod rules;
pub mod tools;

use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::explain;
use crate::client::Client;

/// What the assistant answered.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub answer: String,
    pub backend: &'static str,
    /// The tools it called, in order.
    pub tools: Vec<&'static str>,
    /// The applied index the answer's reads saw, when it read seats.
    pub applied_index: Option<u64>,
    pub proposal: Option<Proposal>,
}

/// A change the assistant suggests, for the person to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// The question to put to the person: "Reserve S4 and S5 in demo?"
    pub question: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Reserve { event: String, seats: Vec<String> },
    CancelSeats { event: String, seats: Vec<String> },
    CancelBooking { booking: String },
}

impl Answer {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({ "answer": self.answer }))
    }
}

/// Carries out a confirmed proposal as the asking user; returns what happened.
pub async fn carry_out(client: &Client, action: &Action) -> Result<String, String> {
    match action {
        Action::Reserve { event, seats } => {
            let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
            let reply = client
                .reserve(event, &seats)
                .await
                .map_err(|s| explain(&s))?;
            let booking = reply.booking.unwrap_or_default();
            Ok(format!(
                "reserved {} in {} (booking {})",
                booking.seats.join(", "),
                booking.event,
                booking.id
            ))
        }
        Action::CancelSeats { event, seats } => {
            let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
            let reply = client
                .cancel_seats(event, &seats)
                .await
                .map_err(|s| explain(&s))?;
            Ok(format!(
                "cancelled {} in {}",
                reply.seats.join(", "),
                reply.event
            ))
        }
        Action::CancelBooking { booking } => {
            let reply = client
                .cancel_booking(booking)
                .await
                .map_err(|s| explain(&s))?;
            Ok(format!(
                "cancelled booking {booking}: {} in {}",
                reply.seats.join(", "),
                reply.event
            ))
        }
    }
}

/// "S4", "S4 and S5", "S4, S5 and S6".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
