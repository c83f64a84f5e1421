//! The page, its script, style sheet and icon, compiled into the binary
//! (`include_str!`): nothing to install beside it, nothing fetched from
//! elsewhere. Every answer forbids loading anything from another origin
//! (Content-Security-Policy) and being framed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use super::UiContext;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

/// Where the login page shows its "wrong token" message.
const LOGIN_ERROR_MARK: &str = "<!--error-->";
const LOGIN_ERROR: &str =
    r#"<p id="login-error" class="error" role="alert">That token is not the server's.</p>"#;

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn headers(content_type: &'static str) -> [(HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// `GET /ui`: the view, or the sign-in form when the request carries no
/// session (a browser's first visit).
pub(super) async fn page(State(ui): State<Arc<UiContext>>, req: HeaderMap) -> Response {
    if ui.authorized(&req) {
        (headers("text/html; charset=utf-8"), INDEX).into_response()
    } else {
        login_page(StatusCode::OK, false)
    }
}

pub(super) fn login_page(status: StatusCode, wrong_token: bool) -> Response {
    let body = LOGIN.replace(LOGIN_ERROR_MARK, if wrong_token { LOGIN_ERROR } else { "" });
    (status, headers("text/html; charset=utf-8"), body).into_response()
}

pub(super) async fn script() -> Response {
    (headers("text/javascript; charset=utf-8"), SCRIPT).into_response()
}

pub(super) async fn style() -> Response {
    (headers("text/css; charset=utf-8"), STYLE).into_response()
}

pub(super) async fn icon() -> Response {
    (headers("image/svg+xml"), ICON).into_response()
}
