//! The assistant over HTTP, as the prototype had it on port 8000.
//!
//! - `POST /ask` with `{"q": "...", "event"?, "backend"?}` answers `{"answer", "backend",
//!   "tools", "applied_index", "proposal"}`. It never changes anything: a question that would
//!   reserve or cancel comes back with a `proposal` (`{question, action: {kind, ...},
//!   request_id}`).
//! - `POST /ask/confirm` with `{"proposal": <that object>}` carries out exactly that proposal,
//!   with its request id (so a retried confirm reserves once), and answers `{"carried_out"}`.
//!
//! A bearer token (`Authorization: Bearer TOKEN`) makes personal questions work and is needed
//! to confirm. Errors are `{"error": "..."}` with 400 (a bad body or proposal), 401 (no or a
//! bad token), 403/404/409 (the cluster refuses: not yours, no such seat, taken) or 503. The
//! same routes are also under `/api`, where the page mounts them. The shell's `ask` and these
//! routes share the same [`Assistant`].

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{carry_out_typed, Assistant, Backend, Proposal};
use crate::client::{Client, ClientError};
use crate::domain::state::DEMO_EVENT;
use crate::limits::QUESTION_MAX_BYTES;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub q: String,
    /// The event a question is about unless it names one (default: the demo event).
    pub event: Option<String>,
    pub backend: Option<Backend>,
    /// No longer how to confirm: kept only to say so (see [`confirm`]).
    #[serde(default)]
    pub confirm: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub proposal: Proposal,
}

/// What the `/ask` routes share (axum state): the client and the assistant.
struct AskState {
    client: Client,
    assistant: Arc<Assistant>,
}

/// The routes, ready to serve or to mount in a bigger router: `/ask` and `/ask/confirm`, and
/// the same under `/api`.
pub fn router(client: Client, assistant: Arc<Assistant>) -> Router {
    Router::new()
        .route("/ask", post(ask))
        .route("/ask/confirm", post(confirm))
        .route("/api/ask", post(ask))
        .route("/api/ask/confirm", post(confirm))
        .with_state(Arc::new(AskState { client, assistant }))
}

/// Serves the routes on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, client: Client, assistant: Arc<Assistant>) {
    crate::https::serve(listener, None, router(client, assistant)).await;
}

/// What a route answers: an HTTP status and a JSON body.
type StatusJson = (StatusCode, Json<Value>);

fn error(status: StatusCode, message: impl Into<String>) -> StatusJson {
    (status, Json(json!({ "error": message.into() })))
}

/// The shared client, logged in as the bearer token's user if the request has one. A token
/// the cluster does not take is a 401 here rather than an anonymous answer.
async fn as_asker(shared: &AskState, headers: &HeaderMap) -> Result<Option<Client>, StatusJson> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let unauthorized = || {
        error(
            StatusCode::UNAUTHORIZED,
            "send the token as Authorization: Bearer TOKEN",
        )
    };
    let token = value
        .to_str()
        .ok()
        .and_then(crate::wire::bearer_token)
        .unwrap_or_default();
    // A token is `user.expiry.signature`; the cluster checks it on every call.
    let user = token.split('.').next().unwrap_or_default();
    let mut client = shared.client.clone();
    if token.is_empty() || client.set_token(user, token).is_err() {
        return Err(unauthorized());
    }
    if let Err(refused @ ClientError::Unauthenticated { .. }) = client.my_bookings().await {
        return Err(error(StatusCode::UNAUTHORIZED, refused.to_string()));
    }
    Ok(Some(client))
}

async fn ask(
    State(shared): State<Arc<AskState>>,
    headers: HeaderMap,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> StatusJson {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            let message = format!(
                "send {{\"q\": \"your question\"}}: {}",
                rejection.body_text()
            );
            return error(StatusCode::BAD_REQUEST, message);
        }
    };
    // Confirming used to re-ask and carry out whatever the new answer proposed, which need
    // not be what the person saw: now only the proposal itself can be confirmed.
    if request.confirm.as_ref().is_some_and(|c| c != &json!(false)) {
        return error(
            StatusCode::BAD_REQUEST,
            "\"confirm\" is no longer taken by /ask: send the answer's \"proposal\" to \
             POST /ask/confirm as {\"proposal\": ...} to carry it out",
        );
    }
    if request.q.trim().is_empty() || request.q.len() > QUESTION_MAX_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("\"q\" must be a question of 1 to {QUESTION_MAX_BYTES} bytes"),
        );
    }
    if request.backend.is_some() && !shared.assistant.callers_may_choose_backend() {
        return error(
            StatusCode::FORBIDDEN,
            "this server does not let callers choose the assistant's backend \
             ([assistant] ask_may_choose_backend in cluster.toml); leave out \"backend\"",
        );
    }
    let client = match as_asker(&shared, &headers).await {
        Ok(asker) => asker.unwrap_or_else(|| shared.client.clone()),
        Err(reply) => return reply,
    };
    let event = request.event.as_deref().unwrap_or(DEMO_EVENT);
    let answer = shared
        .assistant
        .ask(&client, event, &request.q, request.backend, &|_| {})
        .await;
    (StatusCode::OK, Json(answer.to_json()))
}

/// Carries out a proposal that `/ask` made, as the token's user, with its request id.
async fn confirm(
    State(shared): State<Arc<AskState>>,
    headers: HeaderMap,
    body: Result<Json<ConfirmRequest>, JsonRejection>,
) -> StatusJson {
    let client = match as_asker(&shared, &headers).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "log in first: confirming needs Authorization: Bearer TOKEN",
            )
        }
        Err(reply) => return reply,
    };
    let proposal = match body {
        Ok(Json(request)) => request.proposal.checked(),
        Err(rejection) => Err(rejection.body_text()),
    };
    let proposal = match proposal {
        Ok(proposal) => proposal,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "send {{\"proposal\": ...}} with the proposal exactly as /ask gave it: \
                     {problem}"
                ),
            )
        }
    };
    match carry_out_typed(&client, &proposal).await {
        Ok(done) => (StatusCode::OK, Json(json!({ "carried_out": done }))),
        Err(refused) => error(refusal_status(&refused), refused.to_string()),
    }
}

/// The HTTP status for the cluster's refusal of a confirmed proposal: the same mapping as the
/// page's API ([`ClientError::http_status`]).
fn refusal_status(refused: &ClientError) -> StatusCode {
    let (status, _) = refused.http_status();
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Starts `/ask` on the config's `[assistant] listen` address, beside a local cluster this
/// process started. A taken port is reported, not fatal: the shell works without it.
pub async fn start(
    config: &crate::config::Config,
    assistant: Arc<Assistant>,
) -> Option<std::net::SocketAddr> {
    let addr = config.assistant.listen_addr()?;
    let app = router(Client::from_config(config), assistant);
    crate::https::start(config, addr, app, "the assistant's /ask").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_maps_to_the_http_status_a_page_can_act_on() {
        let words = || "the words".to_string();
        let refused = ClientError::Refused {
            reason: words(),
            code: tonic::Code::FailedPrecondition,
        };
        assert_eq!(refusal_status(&refused), StatusCode::CONFLICT);
        let anonymous = ClientError::Unauthenticated { message: words() };
        assert_eq!(refusal_status(&anonymous), StatusCode::UNAUTHORIZED);
        let missing = ClientError::NotFound { message: words() };
        assert_eq!(refusal_status(&missing), StatusCode::NOT_FOUND);
        let theirs = ClientError::PermissionDenied { message: words() };
        assert_eq!(refusal_status(&theirs), StatusCode::FORBIDDEN);
        let unknown = ClientError::UnknownOutcome {
            message: words(),
            code: tonic::Code::Unavailable,
        };
        assert_eq!(refusal_status(&unknown), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn a_proposal_from_outside_is_checked_like_a_tool_call() {
        let parse = |v: Value| -> Result<Proposal, String> {
            serde_json::from_value::<ConfirmRequest>(json!({ "proposal": v }))
                .map_err(|e| e.to_string())
                .and_then(|r| r.proposal.checked())
        };
        let good = parse(json!({
            "question": "anything: it is made again",
            "action": { "kind": "reserve", "event": "demo", "seats": ["s2", "S3"] },
            "request_id": "abc123",
        }))
        .expect("good");
        assert_eq!(good.question, "Reserve S2 and S3 in demo?");
        assert_eq!(
            good.action,
            super::super::Action::Reserve {
                event: "demo".into(),
                seats: vec!["S2".into(), "S3".into()]
            }
        );
        let without_question = parse(json!({
            "action": { "kind": "cancel_booking", "booking": "bk-7" }, "request_id": "r-1",
        }));
        assert_eq!(
            without_question.expect("ok").question,
            "Cancel booking bk-7?"
        );
        for (bad, why) in [
            (
                json!({ "action": { "kind": "reserve", "event": "demo", "seats": ["S2; DROP"] }, "request_id": "a" }),
                "not a seat id",
            ),
            (
                json!({ "action": { "kind": "reserve", "event": "demo", "seats": [] }, "request_id": "a" }),
                "1 to 10 seat ids",
            ),
            (
                json!({ "action": { "kind": "reserve", "event": "de mo", "seats": ["S2"] }, "request_id": "a" }),
                "not an event name",
            ),
            (
                json!({ "action": { "kind": "cancel_booking", "booking": "7" }, "request_id": "a" }),
                "not a booking id",
            ),
            (
                json!({ "action": { "kind": "reserve", "event": "demo", "seats": ["S2"] }, "request_id": "" }),
                "'request_id' must be",
            ),
            (
                json!({ "action": { "kind": "reserve", "event": "demo", "seats": ["S2"] }, "request_id": "x".repeat(65) }),
                "'request_id' must be",
            ),
            (
                json!({ "action": { "kind": "book_all", "event": "demo" }, "request_id": "a" }),
                "unknown variant",
            ),
            (
                json!({ "action": { "kind": "reserve", "event": "demo", "seats": ["S2"], "price": 0 }, "request_id": "a" }),
                "unknown field",
            ),
        ] {
            match parse(bad.clone()) {
                Ok(p) => panic!("{bad} was taken: {p:?}"),
                Err(e) => assert!(e.contains(why), "{bad}: {e}"),
            }
        }
    }
}
