//! The checkout commands of a session: `hold`, `holds`, `confirm`, `extend`, `release`,
//! `tickets` and `check-in`, each a method returning its text and its JSON.
//!
//! A hold's time left is shown from this machine's clock against the hold's expiry in log
//! time (the leaders' clocks): on one machine, or machines kept in step by NTP, they agree
//! to well under a second.

use serde_json::{json, Value};

use super::command::{Cmd, HoldArgs};
use super::{CommandOutput, Session};
use crate::json::{booking_json, hold_json, price_text, ticket_json};
use crate::pb::booking::v1 as pb;

/// `9:41 left`, or `expired` once the expiry has passed.
pub fn time_left(expires_at_ms: u64, now_ms: u64) -> String {
    match expires_at_ms.checked_sub(now_ms).filter(|&ms| ms > 0) {
        Some(ms) => {
            let secs = ms.div_ceil(1000);
            format!("{}:{:02} left", secs / 60, secs % 60)
        }
        None => "expired".to_string(),
    }
}

fn hold_line(hold: &pb::Hold, now_ms: u64) -> String {
    let price = price_text(hold.total_minor, &hold.currency);
    let price = if price.is_empty() {
        String::new()
    } else {
        format!(", {price}")
    };
    format!(
        "hold {}: {} in {}{price} ({})",
        hold.id,
        hold.seats.join(", "),
        hold.event,
        time_left(hold.expires_at_ms, now_ms)
    )
}

fn hold_output(reply: pb::HoldReply, verb: &str) -> CommandOutput {
    let hold = reply.hold.unwrap_or_default();
    let now = crate::clock::now_ms();
    CommandOutput::new(
        format!(
            "{verb} {}; confirm {} to buy",
            hold_line(&hold, now),
            hold.id
        ),
        json!({ "hold": hold_json(&hold), "applied_index": reply.applied_index }),
    )
}

/// A ticket's code as a QR code of text blocks, two modules a character high.
pub fn qr_text(code: &str) -> String {
    match qrcode::QrCode::new(code.as_bytes()) {
        Ok(qr) => qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}

impl Session {
    /// Runs one of the checkout commands.
    pub(super) async fn execute_checkout(&mut self, cmd: Cmd) -> Result<CommandOutput, String> {
        match cmd {
            Cmd::Hold(args) => self.hold(args).await,
            Cmd::Holds => self.holds().await,
            Cmd::Confirm { hold, payment_ref } => {
                self.confirm_hold(&hold, payment_ref.as_deref()).await
            }
            Cmd::Extend {
                hold,
                duration_secs,
            } => self.extend_hold(&hold, duration_secs).await,
            Cmd::Release(hold) => self.release_hold(&hold).await,
            Cmd::Tickets => self.tickets().await,
            Cmd::CheckIn(code) => self.check_in(&code).await,
            other => Err(format!("{other:?} is not a checkout command")),
        }
    }

    pub(super) async fn hold(&mut self, args: HoldArgs) -> Result<CommandOutput, String> {
        let request = pb::HoldRequest {
            request_id: String::new(),
            event: self.event.clone(),
            seats: args.seats,
            best_count: args.best.unwrap_or(0),
            category: args.category.unwrap_or_default(),
            max_price_minor: args.max_price_minor.unwrap_or(0),
            allow_split: args.split,
            duration_ms: args.duration_secs.map_or(0, |s| s.saturating_mul(1000)),
        };
        let reply = self.client.hold(request).await.map_err(|e| e.to_string())?;
        Ok(hold_output(reply, "holding"))
    }

    pub(super) async fn holds(&self) -> Result<CommandOutput, String> {
        let reply = self.client.my_holds().await.map_err(|e| e.to_string())?;
        let now = crate::clock::now_ms();
        let text = match reply.holds.is_empty() {
            true => "no holds".to_string(),
            false => reply
                .holds
                .iter()
                .map(|h| hold_line(h, now))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        let holds: Vec<Value> = reply.holds.iter().map(hold_json).collect();
        Ok(CommandOutput::new(
            text,
            json!({ "holds": holds, "now_ms": reply.now_ms }),
        ))
    }

    pub(super) async fn confirm_hold(
        &self,
        hold: &str,
        payment_ref: Option<&str>,
    ) -> Result<CommandOutput, String> {
        let reply = self
            .client
            .confirm_hold(hold, payment_ref.unwrap_or_default())
            .await
            .map_err(|e| e.to_string())?;
        let booking = reply.booking.unwrap_or_default();
        let price = price_text(booking.total_minor, &booking.currency);
        let price = if price.is_empty() {
            String::new()
        } else {
            format!(" for {price}")
        };
        Ok(CommandOutput::new(
            format!(
                "confirmed {}: reserved {} in {}{price} (booking {}); `tickets` shows them",
                hold,
                booking.seats.join(", "),
                booking.event,
                booking.id
            ),
            json!({ "booking": booking_json(&booking), "applied_index": reply.applied_index }),
        ))
    }

    pub(super) async fn extend_hold(
        &self,
        hold: &str,
        duration_secs: Option<u64>,
    ) -> Result<CommandOutput, String> {
        let duration_ms = duration_secs.map_or(0, |s| s.saturating_mul(1000));
        let reply = self
            .client
            .extend_hold(hold, duration_ms)
            .await
            .map_err(|e| e.to_string())?;
        Ok(hold_output(reply, "extended"))
    }

    pub(super) async fn release_hold(&self, hold: &str) -> Result<CommandOutput, String> {
        let reply = self
            .client
            .release_hold(hold)
            .await
            .map_err(|e| e.to_string())?;
        Ok(CommandOutput::new(
            format!(
                "released {hold}: {} free again in {}",
                reply.seats.join(", "),
                reply.event
            ),
            json!({ "event": reply.event, "seats": reply.seats, "applied_index": reply.applied_index }),
        ))
    }

    pub(super) async fn tickets(&self) -> Result<CommandOutput, String> {
        let reply = self.client.my_tickets().await.map_err(|e| e.to_string())?;
        let mut text = String::new();
        for t in &reply.tickets {
            let used = match t.checked_in_at_ms {
                0 => "not used".to_string(),
                at => format!(
                    "checked in at {} by {}",
                    crate::domain::clock_text(at),
                    t.checked_in_by
                ),
            };
            text.push_str(&format!(
                "{} seat {} ({}), {used}\ncode: {}\n",
                t.event, t.seat, t.booking_id, t.code
            ));
            if self.mode.interactive {
                text.push_str(&qr_text(&t.code));
                text.push('\n');
            }
        }
        if text.is_empty() {
            text = "no tickets".to_string();
        }
        let tickets: Vec<Value> = reply.tickets.iter().map(ticket_json).collect();
        Ok(CommandOutput::new(
            text.trim_end(),
            json!({ "tickets": tickets }),
        ))
    }

    pub(super) async fn check_in(&self, code: &str) -> Result<CommandOutput, String> {
        let reply = self
            .client
            .check_in(code)
            .await
            .map_err(|e| e.to_string())?;
        Ok(CommandOutput::new(
            format!(
                "checked in: {} seat {} ({})",
                reply.event, reply.seat, reply.booking_id
            ),
            json!({
                "event": reply.event, "seat": reply.seat, "booking_id": reply.booking_id,
                "at_ms": reply.at_ms, "by": reply.by, "applied_index": reply.applied_index,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_down_in_minutes_and_seconds() {
        assert_eq!(time_left(600_000, 0), "10:00 left");
        assert_eq!(time_left(61_500, 0), "1:02 left");
        assert_eq!(time_left(5_000, 5_000), "expired");
        assert_eq!(time_left(0, 9), "expired");
    }

    #[test]
    fn a_ticket_code_draws_as_a_qr_code() {
        let qr = qr_text("tk1.demo.S2.7.1.abcdefabcdefabcdefabcd");
        assert!(qr.lines().count() > 10, "{qr}");
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
    }
}
