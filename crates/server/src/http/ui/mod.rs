//! The live web view, `/ui` (issue 20; docs/operations.md, "Web view"):
//! pool utilisation bars and the latest binding changes, pushed over
//! Server-Sent Events from the store's change feed, and a search of the
//! current binding and its history. Static assets are compiled into the
//! binary (no build step, no CDN, works offline).
//!
//! A browser cannot send the bearer token on a page load: it trades the
//! token once for a session cookie (`session.rs`). The cookie reaches only
//! `/ui/…`, and `/ui/command` runs only read-only commands, so an ambient
//! browser credential can never delete a lease or stop DHCP.

mod assets;
mod change_json;
mod command;
mod events;
mod session;
mod usage;

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::HttpContext;
use session::Sessions;

/// What the web view's handlers reach.
pub(super) struct UiContext {
    http: Arc<HttpContext>,
    sessions: Sessions,
    usage: usage::UsageCache,
}

impl UiContext {
    /// The bearer token (scripts, tests), or a session cookie; anything
    /// goes when no token is configured.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.http.token {
            None => true,
            Some(token) => self.http.authorized(headers) || self.sessions.valid(token, headers),
        }
    }
}

/// The routes under `/ui`, to nest in the endpoint's router.
pub(super) fn router<S>(http: Arc<HttpContext>) -> Router<S> {
    let ui = Arc::new(UiContext {
        http,
        sessions: Sessions::new(),
        usage: usage::UsageCache::default(),
    });
    Router::new()
        .route("/", get(assets::page))
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/events", get(events::stream))
        .route("/command", post(command::run))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/icon.svg", get(assets::icon))
        .with_state(ui)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "sign in at /ui first (or send Authorization: Bearer <http.token>)\n",
    )
        .into_response()
}
