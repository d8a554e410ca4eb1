//! The OpenAPI document, generated from the handlers' annotations, and the
//! interactive docs page (Swagger UI, vendored into the binary: no CDN).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";
pub const DOCS_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Amani",
        description = "Escrow for a marketplace of clients and freelancers. Errors are \
            `application/problem+json` (RFC 9457) with a `request_id`; every response carries \
            `X-Request-ID`. Amounts are integers in minor units next to an ISO-4217 `currency`.",
    ),
    components(schemas(super::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "service", description = "Identity, version, probes and metrics"),
        (name = "auth", description = "Accounts and access tokens"),
        (name = "kyc", description = "Identity verification"),
        (name = "admin", description = "Administration (admins only)"),
        (name = "projects", description = "Projects and milestones"),
        (name = "escrow", description = "Funding, release, refund and transaction history (amounts in minor units)"),
        (name = "wallet", description = "Balances, deposits and withdrawals"),
        (name = "webhooks", description = "Payment-provider callbacks"),
    ),
)]
pub struct ApiDoc;

/// The security schemes: `bearer` (an access token from `/api/v1/auth/login`)
/// and `metrics_token` (`METRICS_TOKEN`, for `/metrics`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            )
        };
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("metrics_token", bearer());
    }
}

/// What every answer may carry, described once.
fn header(description: &str) -> serde_json::Value {
    serde_json::json!({ "description": description, "schema": { "type": "string" } })
}

fn problem(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "headers": { "X-Request-ID": header("The request's id (the caller's when sane, else generated)") },
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// Completes what the handlers' annotations leave out, so the document is a
/// contract a client generator can trust: every response described, errors
/// as `application/problem+json` (what the server really sends), the
/// errors every operation can meet (401 on secured ones, 400/422 where
/// input is read, 500 and 503 everywhere the database is used), and the
/// response headers (`X-Request-ID`, `Retry-After`, `Idempotent-Replayed`).
pub fn finish(openapi: &mut utoipa::openapi::OpenApi) {
    let Ok(mut doc) = serde_json::to_value(&*openapi) else {
        return;
    };
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                    continue;
                }
                finish_operation(path, method, operation);
            }
        }
    }
    if let Ok(finished) = serde_json::from_value(doc) {
        *openapi = finished;
    }
}

fn finish_operation(path: &str, method: &str, operation: &mut serde_json::Value) {
    let secured = operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    let idempotent = operation["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
    let reads_body = operation.get("requestBody").is_some();
    let reads_input = reads_body
        || operation["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "query" || p["in"] == "path"));
    let uses_database = path.starts_with("/api/v1")
        && !matches!(
            path,
            "/api/v1/ping" | "/api/v1/version" | "/api/v1/" | "/api/v1/health" | "/api/v1/readiness"
        );
    let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else {
        return;
    };
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    if secured {
        add("401", "Missing, expired or revoked access token");
    }
    if reads_body && method != "get" {
        add("400", "The body is not valid JSON (or not the expected form)");
        add("413", "The body is larger than this endpoint accepts");
        add("415", "The body is not `application/json`");
    }
    if reads_input {
        add("422", "A field or parameter breaks a rule; `detail` names it");
    }
    add(
        "500",
        "Internal error (details in the logs and Sentry, never in the answer)",
    );
    if uses_database {
        add(
            "503",
            "The database (or a dependency) is unavailable; retry after `Retry-After` if given",
        );
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        if response
            .get("description")
            .and_then(|d| d.as_str())
            .is_none_or(str::is_empty)
        {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Response");
            response.insert("description".into(), reason.into());
        }
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error
            && let Some(content) = response.get_mut("content").and_then(|c| c.as_object_mut())
            && let Some(json) = content.remove("application/json")
        {
            content.insert("application/problem+json".into(), json);
        }
        let headers = response.entry("headers").or_insert_with(|| serde_json::json!({}));
        if let Some(headers) = headers.as_object_mut() {
            headers
                .entry("X-Request-ID")
                .or_insert_with(|| header("The request's id (the caller's when sane, else generated)"));
            if matches!(status.as_str(), "429" | "503") {
                headers
                    .entry("Retry-After")
                    .or_insert_with(|| header("Seconds to wait before retrying"));
            }
            if idempotent && !is_error {
                headers.entry("Idempotent-Replayed").or_insert_with(|| {
                    header("`true` when this answer replays an earlier request with the same Idempotency-Key")
                });
            }
        }
    }
}
