//! `POST /ui/command`: the page's searches, answered by the control API's
//! own handler (the same envelope and answers as `POST /`), limited to
//! commands that only read. A session cookie is an ambient credential:
//! whatever a page could be tricked into sending with it must not change
//! anything, so `lease4-del`, `dhcp-disable`, `config-reload` and the
//! like stay behind the bearer token at `/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{unauthorized, UiContext};
use crate::http::control;

/// The commands the web view may run.
const READ_ONLY: &[&str] = &[
    "lease4-get",
    "lease4-get-by-client-id",
    "lease4-get-by-hw-address",
    "lease4-history",
    "list-commands",
    "statistic-get-all",
    "status-get",
    "version-get",
];

pub(super) async fn run(
    State(ui): State<Arc<UiContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !ui.authorized(&headers) {
        return unauthorized();
    }
    // A cross-site HTML form cannot send this type (SameSite=Strict already
    // keeps the cookie off such requests; this is the second lock).
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"result": 1, "text": "Content-Type: application/json"}),
        );
    }
    let command = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("command").and_then(Value::as_str).map(str::to_owned));
    match command {
        Some(c) if READ_ONLY.contains(&c.as_str()) => {
            let (status, value) = control::handle(&ui.http, &body).await;
            answer(status, value)
        }
        Some(c) => answer(
            StatusCode::FORBIDDEN,
            json!({"result": 1, "text": format!("'{c}' is not allowed from the web view (use the control API at / with the bearer token)")}),
        ),
        None => answer(
            StatusCode::BAD_REQUEST,
            json!({"result": 1, "text": "not a command"}),
        ),
    }
}

fn answer(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
