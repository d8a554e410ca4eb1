//! `GET /metrics`: the Prometheus scrape endpoint.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::error::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics::GAUGE_REFRESH;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Marks a request that came in on `METRICS_ADDR`'s listener.
#[derive(Debug, Clone, Copy)]
pub struct OwnListener;

/// Metrics in the Prometheus text format, or OpenMetrics (with trace-id
/// exemplars on request latency) when the scraper's `Accept` asks for it.
#[utoipa::path(get, path = "/metrics", tag = super::service::TAG, responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
    (status = 401, description = "METRICS_TOKEN is set and the bearer token is missing or wrong", body = super::error::Problem),
    (status = 404, description = "metrics are disabled (METRICS_ENABLED=false), or served on METRICS_ADDR's own listener", body = super::error::Problem),
), security(("metrics_token" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    own_listener: Option<axum::Extension<OwnListener>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.metrics_enabled {
        return Err(ApiError::not_found(
            "metrics are disabled on this instance (METRICS_ENABLED=false)",
        ));
    }
    if state.config.metrics_addr.is_some() && own_listener.is_none() {
        return Err(ApiError::not_found(
            "metrics are served on their own listener on this instance (METRICS_ADDR)",
        ));
    }
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
    }
    refresh_scrape_time_gauges(&state);
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let (content_type, body) = if wants_openmetrics {
        (OPENMETRICS, state.metrics.render_openmetrics())
    } else {
        (TEXT, state.metrics.render_text())
    };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response())
}

/// The pool gauges, read from the pool on every scrape (no I/O). The
/// gauges of stored state are kept up to date by [`refresh_stored_gauges`].
fn refresh_scrape_time_gauges(state: &AppState) {
    let metrics = &state.metrics;
    let (size, idle) = state.db.pool_stats();
    let idle = i64::try_from(idle).unwrap_or(i64::MAX);
    metrics.db_connections_idle.set(idle);
    metrics.db_connections_active.set(i64::from(size) - idle);
}

/// Keeps the gauges of stored state up to date every [`GAUGE_REFRESH`]
/// until shutdown: money in escrow, pending KYC, payments, webhooks and
/// scheduled jobs (from the database), the newest backup's time (from the
/// backup folder), the process's open descriptors, limits and volumes. A
/// scrape never waits on the database or the disk, and several scrapers
/// cost nothing more.
pub async fn refresh_stored_gauges(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let metrics = &state.metrics;
    loop {
        metrics.refresh_process();
        metrics
            .backup_last_success_timestamp
            .set(crate::ops::backup::last_success(&state.config.backup_dir));
        let refreshed = async {
            let mut conn = state.db.acquire().await?;
            crate::store::gauges::refresh(&mut conn, metrics, state.config.payments.reconcile.stuck_after).await
        };
        // Not refreshed (the database is down, or not migrated yet at
        // start): try again in a second rather than a full period.
        let next = match refreshed.await {
            Ok(()) => GAUGE_REFRESH,
            Err(err) => {
                tracing::debug!(error = %err, "stored-state gauges not refreshed");
                std::time::Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Compares secrets without an early exit, so timing does not reveal how
/// many leading bytes were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
