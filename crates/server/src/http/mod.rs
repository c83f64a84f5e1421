//! The HTTP endpoint (`[http]`, off unless configured; docs/operations.md):
//! `GET /metrics` (Prometheus / OpenMetrics text), `POST /` (the control
//! API, Kea's command envelope) and `/ui` (the live web view, ui/). On
//! axum (tokio's HTTP framework, on hyper): the project already runs on
//! tokio, and axum gives routing, body limits and graceful shutdown
//! without a hand-written HTTP parser.

mod connections;
mod control;
mod lease_json;
mod metrics;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::config::HttpConfig;
use crate::shared::Shared;

/// Larger control requests are refused (a command is a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;

/// What the handlers reach.
pub struct HttpContext {
    pub(crate) shared: Arc<Shared>,
    /// The file the configuration was read from (`config-get`).
    pub(crate) config_path: Option<PathBuf>,
    /// Unix time of the start (`status-get`).
    pub(crate) started: u32,
    token: Option<String>,
    registry: Registry,
    limits: connections::ConnectionLimits,
    /// The current acceptor (a live reload replaces it).
    tls: Option<watch::Receiver<tokio_rustls::TlsAcceptor>>,
}

impl HttpContext {
    pub fn new(
        shared: Arc<Shared>,
        http: &HttpConfig,
        config_path: Option<PathBuf>,
        started: u32,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics::ServerMetrics::new(
            Arc::clone(&shared),
            http.kea_compat,
        )));
        HttpContext {
            shared,
            config_path,
            started,
            token: http.token.clone(),
            registry,
            limits: connections::ConnectionLimits {
                max_connections: http.max_connections,
                header_timeout: http.header_timeout,
            },
            tls: None,
        }
    }

    /// Serve HTTPS with the acceptor `acceptor` holds (`[http] tls_cert`,
    /// see [`crate::tls::https_acceptor`]); each new connection takes the current one.
    pub fn with_tls(
        mut self,
        acceptor: Option<watch::Receiver<tokio_rustls::TlsAcceptor>>,
    ) -> Self {
        self.tls = acceptor;
        self
    }

    /// A request without the configured bearer token is refused.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compared in constant time: the token is a password.
        given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bind the endpoint (at start, so that a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serve until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<HttpContext>,
    stop: watch::Receiver<bool>,
) {
    let (limits, tls) = (ctx.limits, ctx.tls.clone());
    let refusals = Arc::clone(&ctx.shared.refusals);
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/", post(control_request))
        .nest("/ui", ui::router(Arc::clone(&ctx)))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(ctx);
    connections::serve(listener, app, limits, tls, refusals, stop).await;
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (Authorization: Bearer <http.token>)\n",
    )
        .into_response()
}

async fn metrics_page(State(ctx): State<Arc<HttpContext>>, headers: HeaderMap) -> Response {
    if !ctx.authorized(&headers) {
        return unauthorized();
    }
    // Off the async workers: the engine's lock, and a database read for
    // a store several servers share.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &ctx.registry)
            .map(|()| text)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let text = match encoded {
        Ok(text) => text,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding: {e}\n"),
            )
                .into_response();
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn control_request(
    State(ctx): State<Arc<HttpContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !ctx.authorized(&headers) {
        return unauthorized();
    }
    let (status, answer) = control::handle(&ctx, &body).await;
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}
