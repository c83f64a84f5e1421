//! Signing in to the web view: the browser posts the `[http]` token once
//! (a form on `/ui`) and gets a session cookie, `HttpOnly` (no script can
//! read it), `SameSite=Strict` (never sent by another site's page, so no
//! cross-site request forgery), `Path=/ui` (never sent to the control API
//! at `/`). Its value is a SHA-256 of a key drawn at start and the token:
//! the server keeps no session table, the token itself is not in the
//! cookie, a restart or a new token signs everybody out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{assets, UiContext};
use crate::http::constant_time_eq;

const COOKIE: &str = "leaseline_ui";
/// A session lasts 12 hours.
const MAX_AGE_S: u32 = 12 * 3600;

pub(super) struct Sessions {
    key: [u8; 32],
}

impl Sessions {
    pub(super) fn new() -> Self {
        let mut key = [0u8; 32];
        // SAFETY: getrandom writes at most `key.len()` bytes into `key`.
        let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        if n != key.len() as isize {
            // Without a random key the value would be guessable from the
            // token alone; the time and pid still make it unique per run.
            tracing::warn!("getrandom failed; web view sessions use a weaker key");
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            key.copy_from_slice(&Sha256::digest(seed.as_bytes()));
        }
        Sessions { key }
    }

    /// The cookie value of a session signed in with `token`.
    fn value(&self, token: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(token.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the request carries a session cookie for `token`.
    pub(super) fn valid(&self, token: &str, headers: &HeaderMap) -> bool {
        let expected = self.value(token);
        cookie(headers, COOKIE)
            .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

/// `POST /ui/login` (the sign-in form): a cookie and back to `/ui`, or the
/// form again with 401.
pub(super) async fn login(State(ui): State<Arc<UiContext>>, Form(form): Form<SignIn>) -> Response {
    let Some(token) = &ui.http.token else {
        return see_other(None);
    };
    if !constant_time_eq(form.token.as_bytes(), token.as_bytes()) {
        return assets::login_page(StatusCode::UNAUTHORIZED, true);
    }
    // Secure: sent back over HTTPS only, when the endpoint speaks it.
    let secure = if ui.http.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={MAX_AGE_S}{secure}",
        ui.sessions.value(token)
    );
    see_other(Some(cookie))
}

/// `POST /ui/logout`: the cookie is cleared.
pub(super) async fn logout() -> Response {
    see_other(Some(format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"
    )))
}

fn see_other(cookie: Option<String>) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui")]).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_session_is_valid_for_its_token_and_key_only() {
        let s = Sessions::new();
        let token = "0123456789abcdef";
        let v = s.value(token);
        assert!(s.valid(token, &with_cookie(&format!("a=b; {COOKIE}={v}; c=d"))));
        assert!(!s.valid("another-token-0123", &with_cookie(&format!("{COOKIE}={v}"))));
        assert!(!s.valid(token, &with_cookie(&format!("{COOKIE}={v}0"))));
        assert!(!s.valid(token, &with_cookie("a=b")));
        assert!(!s.valid(token, &HeaderMap::new()));
        // Another start (another key): signed out.
        assert!(!Sessions::new().valid(token, &with_cookie(&format!("{COOKIE}={v}"))));
        assert!(!v.contains(token));
    }
}
