//! `POST /ask` over HTTP, as the prototype had it on port 8000: `{"q": "..."}` in,
//! `{"answer": "..."}` out (with `backend`, `tools`, `applied_index` and any `proposal`). A
//! bearer token makes personal questions work; `"confirm": true` carries out what the answer
//! proposes. The shell's `ask` and this route share the same [`Assistant`].

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{carry_out, Assistant, Backend};
use crate::client::Client;
use crate::domain::state::DEMO_EVENT;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub q: String,
    /// The event a question is about unless it names one (default: the demo event).
    pub event: Option<String>,
    pub backend: Option<Backend>,
    /// Carry out the answer's proposal, if it makes one.
    #[serde(default)]
    pub confirm: bool,
}

struct Shared {
    client: Client,
    assistant: Arc<Assistant>,
}

/// The routes, ready to serve.
pub fn router(client: Client, assistant: Arc<Assistant>) -> Router {
    Router::new()
        .route("/ask", post(ask))
        .with_state(Arc::new(Shared { client, assistant }))
}

/// Serves `/ask` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, client: Client, assistant: Arc<Assistant>) {
    if let Err(e) = axum::serve(listener, router(client, assistant)).await {
        tracing::warn!(error = %e, "the /ask server stopped");
    }
}

type Reply = (StatusCode, Json<Value>);

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    (status, Json(json!({ "error": message.into() })))
}

async fn ask(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Reply {
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
    if request.q.trim().is_empty() || request.q.len() > 2_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "\"q\" must be a question of 1 to 2000 bytes",
        );
    }
    let mut client = shared.client.clone();
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        // A token is `user.expiry.signature`; the cluster checks it on every call.
        let user = token.split('.').next().unwrap_or_default();
        if token.is_empty() || client.set_token(user, token).is_err() {
            return error(
                StatusCode::UNAUTHORIZED,
                "send the token as Authorization: Bearer TOKEN",
            );
        }
        if let Err(status) = client.my_bookings().await {
            if status.code() == tonic::Code::Unauthenticated {
                return error(StatusCode::UNAUTHORIZED, crate::cli::explain(&status));
            }
        }
    }
    let event = request.event.as_deref().unwrap_or(DEMO_EVENT);
    let answer = shared
        .assistant
        .ask(&client, event, &request.q, request.backend, &|_| {})
        .await;
    let mut reply = answer.to_json();
    if let (true, Some(proposal)) = (request.confirm, &answer.proposal) {
        reply["carried_out"] = match carry_out(&client, proposal).await {
            Ok(done) => json!(done),
            Err(problem) => return error(StatusCode::CONFLICT, problem),
        };
    }
    (StatusCode::OK, Json(reply))
}

/// Starts `/ask` on the config's `[assistant] listen` address, beside a local cluster this
/// process started. A taken port is reported, not fatal: the shell works without it.
pub async fn start(
    config: &crate::config::Config,
    assistant: Arc<Assistant>,
) -> Option<std::net::SocketAddr> {
    let addr = config.assistant.listen_addr()?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            let bound = listener.local_addr().ok();
            tokio::spawn(serve(listener, Client::from_config(config), assistant));
            bound
        }
        Err(e) => {
            eprintln!("the assistant's /ask could not listen on {addr}: {e}");
            None
        }
    }
}
