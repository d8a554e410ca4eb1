//! One span, one access-log line and the HTTP metrics for every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Instrument, Level};

use super::error::{ErrorCause, ErrorKind, slug_for_status};
use crate::state::AppState;
use crate::telemetry::metrics::{ErrorLabels, RequestLabels, RouteLabels, TraceExemplar, method_label};
use crate::telemetry::request_id::RequestId;
use crate::telemetry::traces::RequestSpan;

/// The route template that served a request, copied from axum's
/// [`MatchedPath`] into the response so outer layers can read it. Requests
/// that matched no route have none and are labelled `unmatched`.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub String);

pub const UNMATCHED: &str = "unmatched";

/// The metrics endpoint is neither counted nor logged at info: scrapes are
/// not traffic.
pub const METRICS_ROUTE: &str = "/metrics";

/// Route-level layer: records which template matched, and counts the
/// request as in progress under that template while it runs.
pub async fn record_route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let in_progress = (state.config.metrics_enabled && route != METRICS_ROUTE).then(|| {
        let gauge = state
            .metrics
            .http_requests_in_progress
            .get_or_create(&RouteLabels {
                method: method_label(request.method()),
                endpoint: route.clone(),
            })
            .clone();
        gauge.inc();
        InProgress(gauge)
    });
    crate::telemetry::error_tracking::tag_route(&route);
    let mut response = next.run(request).await;
    drop(in_progress);
    response.extensions_mut().insert(MatchedRoute(route));
    response
}

/// Marks a 500 produced by a caught panic: the panic hook already reported
/// it to error tracking, so it is not reported again as a 5xx.
#[derive(Debug, Clone, Copy)]
pub struct Panicked;

/// Decrements the in-progress gauge even if the request future is dropped
/// (client gone, timeout).
struct InProgress(prometheus_client::metrics::gauge::Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Probes are polled every few seconds; their lines go to debug level so the
/// log shows traffic, not heartbeats.
fn is_quiet(route: &str) -> bool {
    matches!(
        route,
        "/api/v1/ping" | "/api/v1/health" | "/api/v1/readiness" | METRICS_ROUTE
    )
}

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request_id = %request_id,
        user_id = tracing::field::Empty,
        // Log lines name these two `method` and `route` (see
        // `telemetry::json`); the span names them as OpenTelemetry does.
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        url.scheme = "http",
        user_agent.original = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    crate::telemetry::traces::continue_trace(&span, request.headers());
    let otel_span = RequestSpan::of(&span);
    let trace = otel_span.ids();
    if let Some(ids) = trace {
        // For the log lines of the request (not a span field: recording one
        // costs every layer a call, and most requests write no line).
        crate::telemetry::json::attach_trace_ids(&span, ids);
    }
    crate::telemetry::error_tracking::tag_request(&request_id, trace);
    let response = next.run(request).instrument(span.clone()).await;

    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map_or(UNMATCHED, |r| r.0.as_str());
    let status = response.status();
    let elapsed = started.elapsed();
    otel_span.rename(format!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }

    if state.config.metrics_enabled && route != METRICS_ROUTE {
        let metrics = &state.metrics;
        let method = method_label(&method);
        metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                endpoint: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        // Only exported (enabled and sampled) traces are worth linking.
        let exemplar = trace
            .filter(|ids| ids.sampled && state.config.tracing.enabled)
            .map(|ids| TraceExemplar {
                trace_id: ids.trace_id.to_string(),
            });
        metrics
            .http_request_duration
            .get_or_create(&RouteLabels {
                method,
                endpoint: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64(), exemplar, None);
        if status.is_client_error() || status.is_server_error() {
            let error_type = response
                .extensions()
                .get::<ErrorKind>()
                .map_or_else(|| slug_for_status(status), |kind| kind.0);
            metrics
                .errors
                .get_or_create(&ErrorLabels {
                    error_type,
                    endpoint: route.to_owned(),
                })
                .inc();
        }
    }

    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let cause = response.extensions().get::<ErrorCause>().map(|c| c.0.as_str());
    if status.is_server_error() {
        state
            .metrics
            .server_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if status.is_server_error()
        && response.extensions().get::<Panicked>().is_none()
        && let Some(cause) = cause
    {
        crate::telemetry::error_tracking::capture_server_error(status.as_u16(), route, cause);
    }
    let status = status.as_u16();
    let level = if status >= 500 {
        Level::ERROR
    } else if is_quiet(route) {
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
