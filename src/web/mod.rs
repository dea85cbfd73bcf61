//! The page: a seat map, booking and checkout (holds with a countdown, tickets with QR
//! codes), sign-up, the Ask box and the cluster's health, served with its JSON API by axum
//! on `[web] listen` (127.0.0.1:8080 by default).
//!
//! The server holds no state of its own. Every route is a call on the cluster through the one
//! [`Client`], as the caller (the bearer token the page got from `/api/login`), so the page
//! sees the same rules, errors and failover as the shell. Live updates come from the
//! `WatchSeats` stream of whichever node answers, relayed as server-sent events, and from
//! one shared poll of the cluster's status. The assets are compiled in: nothing is fetched
//! from anywhere else, and the page's Content-Security-Policy says so.
//!
//! What it does not do: serve TLS (put it behind a proxy to expose it), or keep sessions
//! (the token is the session; the page keeps it in the tab's sessionStorage).

mod api;
mod batcher;
mod checkout;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::assistant::Assistant;
use crate::client::Client;
use crate::config::Config;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Only this origin: no CDN, no external font, no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// The page, its assets, its JSON API and the assistant's routes.
pub fn router(client: Client, assistant: Arc<Assistant>) -> Router {
    let pages = Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        );
    let shared = api::PageState::new(client.clone());
    let json_api = Router::new()
        .route("/api/login", post(api::login))
        .route("/api/events", get(api::events))
        .route("/api/events/{event}/seats", get(api::seats))
        .route("/api/events/{event}/reserve", post(api::reserve))
        .route("/api/events/{event}/cancel", post(api::cancel_seats))
        .route("/api/events/{event}/watch", get(api::watch_seats))
        .route("/api/bookings", get(api::bookings))
        .route("/api/bookings/{booking}/cancel", post(api::cancel_booking))
        .route("/api/register", post(api::register))
        .route("/api/events/{event}/hold", post(checkout::hold))
        .route("/api/holds", get(checkout::holds))
        .route("/api/holds/{hold}/confirm", post(checkout::confirm))
        .route("/api/holds/{hold}/extend", post(checkout::extend))
        .route("/api/holds/{hold}/release", post(checkout::release))
        .route("/api/tickets", get(checkout::tickets))
        .route("/api/cluster", get(api::cluster))
        .route("/api/cluster/watch", get(api::watch_cluster))
        .fallback(api::not_found)
        .with_state(shared);
    pages
        .merge(crate::assistant::http::router(client, assistant))
        .merge(json_api)
}

/// Serves the page on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, client: Client, assistant: Arc<Assistant>) {
    crate::https::serve(listener, None, router(client, assistant)).await;
}

/// Starts the page on the config's `[web] listen` address. A taken port is reported, not
/// fatal: the shell works without the page.
pub async fn start(config: &Config, assistant: Arc<Assistant>) -> Option<SocketAddr> {
    let addr = config.web.listen;
    let app = router(Client::from_config(config), assistant);
    crate::https::start(config, addr, app, "the page").await
}
