//! One span and one access-log line per request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Instrument, Level};

use crate::http::error::ErrorCause;
use crate::http::request_id::RequestId;

/// The route template that served a request, copied from axum's
/// [`MatchedPath`] into the response so outer layers can read it. Requests
/// that matched no route have none and are labelled `unmatched`.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub String);

pub const UNMATCHED: &str = "unmatched";

/// Route-level layer: records which template matched.
pub async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

/// Probes are polled every few seconds; their lines go to debug level so the
/// log shows traffic, not heartbeats.
fn is_probe(route: &str) -> bool {
    matches!(route, "/api/v1/ping" | "/api/v1/health" | "/api/v1/readiness")
}

pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;

    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map_or(UNMATCHED, |r| r.0.as_str());
    let status = response.status().as_u16();
    span.record("route", route);
    span.record("status", status);
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let cause = response.extensions().get::<ErrorCause>().map(|c| c.0.as_str());

    let level = if status >= 500 {
        Level::ERROR
    } else if is_probe(route) {
        Level::DEBUG
    } else {
        Level::INFO
    };
    macro_rules! access_log {
        ($level:expr) => {
            tracing::event!(parent: &span, $level, request_id = %request_id, method = %method, route, status,
                latency_ms, error = cause, "request completed")
        };
    }
    match level {
        Level::ERROR => access_log!(Level::ERROR),
        Level::DEBUG => access_log!(Level::DEBUG),
        _ => access_log!(Level::INFO),
    }
    response
}
