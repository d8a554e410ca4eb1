//! Service endpoints: identity, version and the probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::build_info::BuildInfo;
use crate::health::{self, Check, DatabaseCheck, MigrationsCheck, Status};
use crate::state::AppState;

pub const TAG: &str = "service";

#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    pub name: String,
    pub version: String,
    pub environment: &'static str,
    /// Where the OpenAPI document is served.
    pub openapi: &'static str,
    /// The interactive API documentation page.
    pub docs: &'static str,
}

/// Name, version and environment of this service.
#[utoipa::path(get, path = "/api/v1/", tag = TAG, responses((status = 200, body = ServiceInfo)))]
pub async fn root(State(state): State<AppState>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        name: state.config.app_name.clone(),
        version: state.config.app_version.clone(),
        environment: state.config.environment.as_str(),
        openapi: super::docs::OPENAPI_PATH,
        docs: super::docs::DOCS_PATH,
    })
}

/// The build: version, git SHA, build time and compiler.
#[utoipa::path(get, path = "/api/v1/version", tag = TAG, responses((status = 200, body = BuildInfo)))]
pub async fn version(State(state): State<AppState>) -> Json<BuildInfo> {
    Json(state.build.clone())
}

#[derive(Serialize, ToSchema)]
pub struct Pong {
    #[schema(example = "pong")]
    pub status: &'static str,
}

/// Liveness: answers without any I/O, so it fails only if the process is stuck.
#[utoipa::path(get, path = "/api/v1/ping", tag = TAG, responses((status = 200, body = Pong)))]
pub async fn ping() -> Json<Pong> {
    Json(Pong { status: "pong" })
}

#[derive(Serialize, ToSchema)]
pub struct HealthChecks {
    pub database: DatabaseCheck,
    pub migrations: MigrationsCheck,
    pub gateway: health::GatewayCheck,
}

#[derive(Serialize, ToSchema)]
pub struct HealthReport {
    pub status: Status,
    pub version: String,
    pub environment: &'static str,
    pub checks: HealthChecks,
}

/// Health: the database answers and its migrations are applied; the payment
/// gateway is configured and answering.
///
/// 200 when the database and migrations are healthy (`status` is `degraded`
/// when only the gateway is failing), 503 otherwise; the body says which
/// check failed and why, without connection details.
#[utoipa::path(get, path = "/api/v1/health", tag = TAG, responses(
    (status = 200, description = "every check healthy", body = HealthReport),
    (status = 503, description = "at least one check unhealthy", body = HealthReport),
))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let (healthy, report) = health_report(&state).await;
    (status_code(healthy), Json(report))
}

/// What `GET /api/v1/health` reports, and whether it is healthy (the
/// console's operator view shows the same).
pub async fn health_report(state: &AppState) -> (bool, HealthReport) {
    let (database, schema) = health::check_database(&state.db).await;
    let migrations = health::check_migrations(schema.as_ref());
    let gateway = health::check_gateway(
        state.gateway.name(),
        &state.config.payments,
        state.metrics.last_gateway_call(),
    );
    let healthy = database.check.is_healthy() && migrations.check.is_healthy();
    let status = match (healthy, gateway.check.is_healthy()) {
        (false, _) => Status::Unhealthy,
        (true, false) => Status::Degraded,
        (true, true) => Status::Healthy,
    };
    let report = HealthReport {
        status,
        version: state.config.app_version.clone(),
        environment: state.config.environment.as_str(),
        checks: HealthChecks {
            database,
            migrations,
            gateway,
        },
    };
    (healthy, report)
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why it is not ready (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Readiness: 200 only when the database answers, migrations are current,
/// the required tables exist and the process is not draining.
#[utoipa::path(get, path = "/api/v1/readiness", tag = TAG, responses(
    (status = 200, description = "ready for traffic", body = Readiness),
    (status = 503, description = "not ready: draining, or the database is not usable", body = Readiness),
))]
pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let readiness = readiness_report(&state).await;
    (status_code(readiness.ready), Json(readiness))
}

/// What `GET /api/v1/readiness` reports.
async fn readiness_report(state: &AppState) -> Readiness {
    if state.lifecycle.is_draining() {
        return readiness_given(state, &[]);
    }
    let (database, schema) = health::check_database(&state.db).await;
    let migrations = health::check_migrations(schema.as_ref());
    readiness_given(state, &[&database.check, &migrations.check])
}

/// Readiness from checks already made (the database's and the
/// migrations'), as the probe would answer it now; the console's operator
/// view reuses its health report's checks rather than repeating them.
pub fn readiness_given(state: &AppState, checks: &[&Check]) -> Readiness {
    let reason = if state.lifecycle.is_draining() {
        Some("draining: the process is shutting down".to_owned())
    } else {
        first_problem(checks)
    };
    Readiness {
        ready: reason.is_none(),
        reason,
    }
}

fn first_problem(checks: &[&Check]) -> Option<String> {
    checks
        .iter()
        .find(|c| !c.is_healthy())
        .map(|c| c.message.clone().unwrap_or_else(|| "unhealthy".into()))
}

fn status_code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
