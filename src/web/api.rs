//! The JSON API behind the page. Each route is one call on the cluster as the caller; the
//! client's errors become HTTP statuses in one place ([`ApiFailure`]'s `From<ClientError>`),
//! with the cluster's own message, so the page and the shell say the same thing about the
//! same refusal.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::client::{new_request_id, Client, ClientError, Consistency};
use crate::json::{booking_json, event_json, page_seat_json};
use crate::pb::booking::v1 as pb;

/// How often the shared poll asks the cluster for its status while anyone watches it.
const CLUSTER_POLL: Duration = Duration::from_millis(250);
/// A comment on idle event streams, so proxies and browsers keep them open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What every route of the page's API shares (axum state): the client and the cluster poll.
pub struct PageState {
    pub(super) client: Client,
    /// Every page user's reserves, carried to the cluster many to a call.
    batcher: super::batcher::Batcher,
    /// The cluster's status as JSON, polled by one task for every watcher.
    cluster: watch::Sender<Option<Value>>,
}

impl PageState {
    pub fn new(client: Client) -> Arc<PageState> {
        let shared = Arc::new(PageState {
            batcher: super::batcher::Batcher::start(client.clone()),
            client,
            cluster: watch::Sender::new(None),
        });
        tokio::spawn(poll_cluster(Arc::downgrade(&shared)));
        shared
    }
}

/// Polls the cluster's status while someone watches it, and publishes it when it changes.
/// Ends when the server is dropped.
async fn poll_cluster(shared: std::sync::Weak<PageState>) {
    let mut tick = tokio::time::interval(CLUSTER_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.cluster.receiver_count() == 0 {
            continue;
        }
        let status = match shared.client.cluster_status().await {
            Ok(status) => cluster_json(&status),
            Err(error) => json!({ "error": page_words(&error), "nodes": [] }),
        };
        shared.cluster.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&status);
            *current = Some(status);
            changed
        });
    }
}

/// A refusal as the page sees it: an HTTP status and `{"error", "code"}`.
pub struct ApiFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For a 429: the seconds the cluster said to wait (sent as Retry-After).
    retry_after_secs: Option<u64>,
}

impl ApiFailure {
    pub(super) fn bad_request(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn unauthenticated(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

/// The cluster's refusal, with the one mapping of the client's errors to HTTP
/// ([`ClientError::http_status`], which `/ask/confirm` shares).
impl From<ClientError> for ApiFailure {
    fn from(error: ClientError) -> ApiFailure {
        let (http, code) = error.http_status();
        let retry_after_secs = match &error {
            ClientError::Throttled {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        };
        ApiFailure {
            status: StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: page_words(&error),
            retry_after_secs,
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "code": self.code });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// What a route answers: its JSON, or a refusal as the page sees it.
pub(super) type JsonResult = Result<Json<Value>, ApiFailure>;

/// The error as the page shows it: the cluster's words, except when no node answers.
fn page_words(error: &ClientError) -> String {
    match error {
        // The page's server is up but no node is: say so in the page's words.
        ClientError::NoNodeAnswered(_) => {
            "no node of the cluster answers right now; the page retries".into()
        }
        _ => error.to_string(),
    }
}

/// A body that failed to parse, said as what to send instead.
pub(super) fn body<T>(
    body: Result<Json<T>, JsonRejection>,
    expected: &str,
) -> Result<T, ApiFailure> {
    body.map(|Json(value)| value).map_err(|rejection| {
        ApiFailure::bad_request(format!("send {expected}: {}", rejection.body_text()))
    })
}

/// As [`body`], for routes whose body is optional: none at all (no JSON content type) means
/// every field left out.
pub(super) fn optional_body<T: Default>(
    body: Result<Json<T>, JsonRejection>,
    expected: &str,
) -> Result<T, ApiFailure> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(rejection) => Err(ApiFailure::bad_request(format!(
            "send {expected} or nothing: {}",
            rejection.body_text()
        ))),
    }
}

/// A client acting as the caller, if the request carries `Authorization: Bearer TOKEN`. The
/// cluster checks the token on every call; this only shapes it.
fn as_caller(shared: &PageState, headers: &HeaderMap) -> Result<Client, ApiFailure> {
    let mut client = shared.client.clone();
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(client);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(crate::wire::bearer_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiFailure::unauthenticated("send the token as Authorization: Bearer TOKEN")
        })?;
    // A token is `user.expiry.signature`.
    let user = token.split('.').next().unwrap_or_default();
    client
        .set_token(user, token)
        .map_err(|_| ApiFailure::unauthenticated("the token is not valid header text"))?;
    Ok(client)
}

/// As [`as_caller`], for routes that act for someone: without a token, 401.
pub(super) fn logged_in(shared: &PageState, headers: &HeaderMap) -> Result<Client, ApiFailure> {
    let client = as_caller(shared, headers)?;
    if client.token().is_none() {
        return Err(ApiFailure::unauthenticated(
            "log in first: this needs your token",
        ));
    }
    Ok(client)
}

/// A request id from the page (so its retry reserves once), or a new one.
pub(super) fn request_id(given: Option<String>) -> String {
    given
        .filter(|id| !id.is_empty())
        .unwrap_or_else(new_request_id)
}

pub fn cluster_json(status: &pb::ClusterStatusReply) -> Value {
    crate::session::status::to_json(status)
}

pub async fn not_found() -> ApiFailure {
    ApiFailure {
        status: StatusCode::NOT_FOUND,
        code: "NOT_FOUND",
        message: "no such page or API route".into(),
        retry_after_secs: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    user: String,
    password: String,
}

/// A login as the page keeps it: the token and who it is for.
fn session_json(reply: &pb::LoginReply) -> Json<Value> {
    let role = match pb::Role::try_from(reply.role) {
        Ok(pb::Role::Admin) => "admin",
        _ => "customer",
    };
    Json(json!({
        "token": reply.token,
        "user": reply.user,
        "role": role,
        "expires_at": reply.expires_at,
    }))
}

pub async fn login(
    State(shared): State<Arc<PageState>>,
    raw: Result<Json<LoginBody>, JsonRejection>,
) -> JsonResult {
    let LoginBody { user, password } = body(raw, r#"{"user": "...", "password": "..."}"#)?;
    let mut client = shared.client.clone();
    let reply = client.login(&user, &password).await?;
    Ok(session_json(&reply))
}

/// `POST /api/register`: a customer signs up, and is logged in at once (the reply is the
/// login's). Always as a stranger, never with the caller's token, so the page cannot make
/// anything but a customer; the node throttles sign-ups and refuses a taken name without
/// saying whether it exists.
pub async fn register(
    State(shared): State<Arc<PageState>>,
    raw: Result<Json<LoginBody>, JsonRejection>,
) -> JsonResult {
    let LoginBody { user, password } = body(raw, r#"{"user": "...", "password": "..."}"#)?;
    let mut client = shared.client.clone();
    client.add_user(&user, &password, false).await?;
    let reply = client.login(&user, &password).await?;
    Ok(session_json(&reply))
}

pub async fn events(State(shared): State<Arc<PageState>>, headers: HeaderMap) -> JsonResult {
    let reply = as_caller(&shared, &headers)?.list_events().await?;
    let events: Vec<Value> = reply.events.iter().map(event_json).collect();
    Ok(Json(
        json!({ "events": events, "applied_index": reply.applied_index }),
    ))
}

pub async fn seats(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
) -> JsonResult {
    let reply = as_caller(&shared, &headers)?
        .get_seats(&event, Consistency::Linearizable)
        .await?;
    let seats: Vec<Value> = reply.seats.iter().map(page_seat_json).collect();
    let event = reply.event.as_ref().map(event_json);
    Ok(Json(json!({
        "event": event,
        "seats": seats,
        "applied_index": reply.applied_index,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatsBody {
    seats: Vec<String>,
    request_id: Option<String>,
}

pub async fn reserve(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    raw: Result<Json<SeatsBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let SeatsBody {
        seats,
        request_id: id,
    } = body(raw, r#"{"seats": ["A1", "A2"]}"#)?;
    // Through the batcher: one ReserveBatch carries every page user's reserve of the moment,
    // each in its user's name.
    let token = client.token().unwrap_or_default();
    let (booking, applied_index) = shared
        .batcher
        .reserve(token, request_id(id), &event, seats)
        .await?;
    Ok(Json(
        json!({ "booking": booking_json(&booking), "applied_index": applied_index }),
    ))
}

fn cancelled(reply: &pb::CancelReply) -> Json<Value> {
    Json(json!({
        "event": reply.event,
        "seats": reply.seats,
        "applied_index": reply.applied_index,
    }))
}

pub async fn cancel_seats(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    raw: Result<Json<SeatsBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    let SeatsBody {
        seats,
        request_id: id,
    } = body(raw, r#"{"seats": ["A1"]}"#)?;
    let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
    let reply = client
        .cancel_seats_with_id(&request_id(id), &event, &seats)
        .await?;
    Ok(cancelled(&reply))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBookingBody {
    request_id: Option<String>,
}

pub async fn cancel_booking(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(booking): Path<String>,
    raw: Result<Json<CancelBookingBody>, JsonRejection>,
) -> JsonResult {
    let client = logged_in(&shared, &headers)?;
    // The body is optional here: a missing one means "no request id of my own".
    let id = optional_body(raw, r#"{"request_id": "..."}"#)?.request_id;
    let reply = client
        .cancel_booking_with_id(&request_id(id), &booking)
        .await?;
    Ok(cancelled(&reply))
}

pub async fn bookings(State(shared): State<Arc<PageState>>, headers: HeaderMap) -> JsonResult {
    let reply = logged_in(&shared, &headers)?.my_bookings().await?;
    let bookings: Vec<Value> = reply.bookings.iter().map(booking_json).collect();
    Ok(Json(
        json!({ "bookings": bookings, "applied_index": reply.applied_index }),
    ))
}

pub async fn cluster(State(shared): State<Arc<PageState>>) -> JsonResult {
    let status = shared.client.cluster_status().await?;
    Ok(Json(cluster_json(&status)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    from: Option<u64>,
}

fn sse_error(failure: &ApiFailure) -> Event {
    Event::default()
        .event("error")
        .data(json!({ "error": failure.message, "code": failure.code }).to_string())
}

/// `GET /api/events/{event}/watch?from=N`: the event's seats as they change, as server-sent
/// events named `seats`. A refusal before the first update (no such event, a bad token) is
/// an HTTP error; a failure later is an `error` event, and the page resumes from its index.
pub async fn watch_seats(
    State(shared): State<Arc<PageState>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiFailure> {
    let from = query
        .map_err(|r| ApiFailure::bad_request(format!("?from=INDEX: {}", r.body_text())))?
        .from
        .unwrap_or(0);
    let client = as_caller(&shared, &headers)?;
    let mut watch = client.watch_seats(&event, from);
    let first = watch.next().await?;
    let stream =
        futures::stream::unfold((Some(first), Some(watch)), |(pending, watch)| async move {
            let mut watch = watch?;
            let reply = match pending {
                Some(reply) => Ok(reply),
                None => watch.next().await,
            };
            let event = match reply {
                Ok(reply) => {
                    let seats: Vec<Value> = reply.seats.iter().map(page_seat_json).collect();
                    let data = json!({
                        "applied_index": reply.applied_index,
                        "reset": reply.reset,
                        "seats": seats,
                    });
                    Event::default().event("seats").data(data.to_string())
                }
                // The last event: the page resumes with what it has.
                Err(status) => {
                    let last = Ok::<_, Infallible>(sse_error(&status.into()));
                    return Some((last, (None, None)));
                }
            };
            Some((Ok(event), (None, Some(watch))))
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// `GET /api/cluster/watch`: the cluster's status as server-sent events named `cluster`,
/// one now and one whenever it changes (an election, a node lost or back).
pub async fn watch_cluster(State(shared): State<Arc<PageState>>) -> Response {
    let mut rx = shared.cluster.subscribe();
    // The first status comes as soon as the poll has one.
    rx.mark_changed();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let status = rx.borrow_and_update().clone();
        let event = match status {
            Some(status) => Event::default().event("cluster").data(status.to_string()),
            None => Event::default().comment("waiting for the first status"),
        };
        Some((Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}
