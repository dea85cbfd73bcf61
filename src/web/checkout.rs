//! The page's checkout routes: hold seats (named, or the best N), confirm, extend and release
//! a hold, list the caller's holds, and the caller's tickets with their QR codes.
//!
//! Each route is one call on the cluster as the caller, refused as [`super::api::ApiFailure`] maps the
//! client's errors, like the rest of the page's API. A ticket's QR code is drawn here, as SVG
//! text the page puts inline: the page loads no QR library and nothing from elsewhere.
//!
//! What it does not do: keep time. Holds expire in log time on the cluster; `GET /api/holds`
//! says the node's clock (`now_ms`) so the page counts down against the cluster, not against
//! the browser's clock or this server's.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{body, logged_in, optional_body, request_id, JsonResult, PageState};
use crate::json::{booking_json, hold_json, ticket_json};
use crate::pb::booking::v1 as pb;

/// The smallest side of a ticket's QR code, in SVG units (the page scales it by CSS).
const QR_SIDE_MIN: u32 = 176;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Named seats; or none, with `best`.
    #[serde(default)]
    seats: Vec<String>,
    /// The best this many seats the cluster finds.
    best: Option<u32>,
    category: Option<String>,
    max_price_minor: Option<u64>,
    /// With `best`: the seats may be apart when none are together.
    #[serde(default)]
    split: bool,
    /// None: the cluster's default length.
    duration_ms: Option<u64>,
    request_id: Option<String>,
}

/// `POST /api/events/{event}/hold`: holds named seats or the best N, all or none.
pub async fn hold(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    raw: Result<Json<HoldBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let asked = body(
        raw,
        r#"{"seats": ["A1", "A2"]} or {"best": 2, "category"?: "...", "split"?: false}"#,
    )?;
    // The cluster decides what a good request is (both seats and best, none, too many);
    // this only shapes it.
    let request = pb::HoldRequest {
        request_id: request_id(asked.request_id),
        event,
        seats: asked.seats,
        best_count: asked.best.unwrap_or(0),
        category: asked.category.unwrap_or_default(),
        max_price_minor: asked.max_price_minor.unwrap_or(0),
        allow_split: asked.split,
        duration_ms: asked.duration_ms.unwrap_or(0),
    };
    let reply = client.hold(request).await?;
    Ok(held(&reply))
}

fn held(reply: &pb::HoldReply) -> Json<Value> {
    let hold = reply.hold.as_ref().map(hold_json);
    Json(json!({ "hold": hold, "applied_index": reply.applied_index }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// What the payment is known as, recorded with the booking.
    payment_ref: Option<String>,
    request_id: Option<String>,
}

/// `POST /api/holds/{hold}/confirm`: the hold becomes a booking with the same number.
pub async fn confirm(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(hold): Path<String>,
    raw: Result<Json<ConfirmBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let asked = optional_body(raw, r#"{"payment_ref"?: "...", "request_id"?: "..."}"#)?;
    let payment_ref = asked.payment_ref.unwrap_or_default();
    let reply = client
        .confirm_hold_with_id(&request_id(asked.request_id), &hold, payment_ref.trim())
        .await?;
    let booking = reply.booking.as_ref().map(booking_json);
    Ok(Json(
        json!({ "booking": booking, "applied_index": reply.applied_index }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// From now; none: the cluster's default hold length.
    duration_ms: Option<u64>,
    request_id: Option<String>,
}

/// `POST /api/holds/{hold}/extend`: the hold's expiry moves on, up to its maximum.
pub async fn extend(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(hold): Path<String>,
    raw: Result<Json<ExtendBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let asked = optional_body(raw, r#"{"duration_ms"?: 60000, "request_id"?: "..."}"#)?;
    let reply = client
        .extend_hold_with_id(
            &request_id(asked.request_id),
            &hold,
            asked.duration_ms.unwrap_or(0),
        )
        .await?;
    Ok(held(&reply))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    request_id: Option<String>,
}

/// `POST /api/holds/{hold}/release`: the hold's seats are free again now.
pub async fn release(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(hold): Path<String>,
    raw: Result<Json<ReleaseBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let asked = optional_body(raw, r#"{"request_id"?: "..."}"#)?;
    let reply = client
        .release_hold_with_id(&request_id(asked.request_id), &hold)
        .await?;
    Ok(Json(json!({
        "event": reply.event,
        "seats": reply.seats,
        "applied_index": reply.applied_index,
    })))
}

/// `GET /api/holds`: the caller's live holds, and the node's clock when it answered.
pub async fn holds(State(shared): State<Arc<PageState>>, headers: HeaderMap) -> JsonResult {
    let reply = logged_in(&shared, &headers)?.my_holds().await?;
    let holds: Vec<Value> = reply.holds.iter().map(hold_json).collect();
    Ok(Json(json!({
        "holds": holds,
        "now_ms": reply.now_ms,
        "applied_index": reply.applied_index,
    })))
}

/// `GET /api/tickets`: a ticket for every seat of the caller's confirmed bookings, each with
/// its code drawn as a QR code (`qr_svg`).
pub async fn tickets(State(shared): State<Arc<PageState>>, headers: HeaderMap) -> JsonResult {
    let reply = logged_in(&shared, &headers)?.my_tickets().await?;
    let tickets: Vec<Value> = reply
        .tickets
        .iter()
        .map(|t| {
            let mut ticket = ticket_json(t);
            if let Some(fields) = ticket.as_object_mut() {
                fields.insert("qr_svg".into(), qr_svg(&t.code).into());
            }
            ticket
        })
        .collect();
    Ok(Json(
        json!({ "tickets": tickets, "applied_index": reply.applied_index }),
    ))
}

/// A ticket's code as an SVG QR code, dark on light whatever the page's colours (scanners
/// want that), without the XML declaration an inline `<svg>` must not carry. Empty when the
/// code cannot be drawn (longer than a QR code holds): the page then shows the code alone.
pub fn qr_svg(code: &str) -> String {
    let Ok(qr) = qrcode::QrCode::new(code.as_bytes()) else {
        return String::new();
    };
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(QR_SIDE_MIN, QR_SIDE_MIN)
        .quiet_zone(true)
        .build();
    match svg.find("<svg") {
        Some(at) => svg[at..].to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_code_draws_as_an_inline_svg() {
        let svg = qr_svg("tk1.demo.S2.7.1.abcdefabcdefabcdefabcd");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("<path"), "{svg}");
        assert!(!svg.contains("<?xml"));
    }

    #[test]
    fn a_code_too_long_for_a_qr_code_draws_nothing() {
        assert_eq!(qr_svg(&"x".repeat(8_000)), "");
    }
}
