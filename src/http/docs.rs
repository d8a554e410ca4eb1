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
        (name = "events", description = "The event log: what happened to the projects, money and KYC the caller can see"),
        (name = "webhook-endpoints", description = "Outbound webhooks (Standard Webhooks) to the marketplace (admins only)"),
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
    add_links(&mut doc);
    if let Ok(finished) = serde_json::from_value(doc) {
        *openapi = finished;
    }
}

/// One OpenAPI link: from an answer, the operation a client calls next with
/// a value taken from it (`$response.body#/id`, `$request.path.id`).
struct Link {
    from: (&'static str, &'static str, &'static str),
    name: &'static str,
    to: (&'static str, &'static str),
    id: &'static str,
    description: &'static str,
}

/// The main flows, as links: a deal from project to release, money in and
/// out, identity checks.
const LINKS: &[Link] = &[
    Link {
        from: ("/api/v1/projects", "post", "201"),
        name: "GetProject",
        to: ("/api/v1/projects/{id}", "get"),
        id: "$response.body#/id",
        description: "the new draft",
    },
    Link {
        from: ("/api/v1/projects", "post", "201"),
        name: "SendProject",
        to: ("/api/v1/projects/{id}/send", "post"),
        id: "$response.body#/id",
        description: "the buyer sends the draft to the seller",
    },
    Link {
        from: ("/api/v1/projects/{id}/send", "post", "200"),
        name: "AcceptProject",
        to: ("/api/v1/projects/{id}/accept", "post"),
        id: "$request.path.id",
        description: "the seller accepts: the project becomes active",
    },
    Link {
        from: ("/api/v1/projects/{id}/accept", "post", "200"),
        name: "ListMilestones",
        to: ("/api/v1/projects/{id}/milestones", "get"),
        id: "$request.path.id",
        description: "the milestones to fund with POST /api/v1/escrow/hold",
    },
    Link {
        from: ("/api/v1/projects/{id}", "get", "200"),
        name: "GetFirstMilestone",
        to: ("/api/v1/milestones/{id}", "get"),
        id: "$response.body#/milestones/0/id",
        description: "the project's first milestone",
    },
    Link {
        from: ("/api/v1/milestones/{id}/submit", "post", "200"),
        name: "ReviewMilestone",
        to: ("/api/v1/milestones/{id}/approve", "post"),
        id: "$request.path.id",
        description: "the buyer approves (then releases) or rejects the delivery",
    },
    Link {
        from: ("/api/v1/escrow/hold", "post", "201"),
        name: "GetHold",
        to: ("/api/v1/escrow/transactions/{id}", "get"),
        id: "$response.body#/transactions/0/id",
        description: "the hold's transaction",
    },
    Link {
        from: ("/api/v1/escrow/release", "post", "201"),
        name: "GetRelease",
        to: ("/api/v1/escrow/transactions/{id}", "get"),
        id: "$response.body#/transactions/0/id",
        description: "the release's transaction",
    },
    Link {
        from: ("/api/v1/wallet/deposit", "post", "201"),
        name: "GetDeposit",
        to: ("/api/v1/escrow/transactions/{id}", "get"),
        id: "$response.body#/transaction/id",
        description: "the deposit's record, pending until the gateway confirms",
    },
    Link {
        from: ("/api/v1/wallet/withdraw", "post", "201"),
        name: "GetWithdrawal",
        to: ("/api/v1/escrow/transactions/{id}", "get"),
        id: "$response.body#/id",
        description: "the withdrawal's record",
    },
    Link {
        from: ("/api/v1/wallet/destinations", "post", "201"),
        name: "RemoveDestination",
        to: ("/api/v1/wallet/destinations/{id}", "delete"),
        id: "$response.body#/id",
        description: "remove the destination",
    },
    Link {
        from: ("/api/v1/kyc/submit", "post", "201"),
        name: "ApproveSubmission",
        to: ("/api/v1/admin/kyc/{id}/approve", "post"),
        id: "$response.body#/id",
        description: "an admin (not the submitter) approves it",
    },
];

fn add_links(doc: &mut serde_json::Value) {
    for link in LINKS {
        let (path, method, status) = link.from;
        let Some(response) = doc
            .pointer_mut(&format!("/paths/{}/{method}/responses/{status}", pointer_escape(path)))
            .and_then(|r| r.as_object_mut())
        else {
            continue;
        };
        // (utoipa reads a link back only with parameters: every link here
        // passes the target's `{id}`.)
        let value = serde_json::json!({
            "operationRef": format!("#/paths/{}/{}", pointer_escape(link.to.0), link.to.1),
            "parameters": { "id": link.id },
            "description": link.description,
        });
        let links = response.entry("links").or_insert_with(|| serde_json::json!({}));
        links[link.name] = value;
    }
}

/// A JSON-pointer segment for a path (`/` is `~1`, `~` is `~0`).
fn pointer_escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
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

#[cfg(test)]
mod link_tests {
    #[test]
    fn every_link_lands_on_a_described_answer_and_points_at_an_operation() {
        let doc = serde_json::to_value(crate::http::openapi_document("test")).unwrap();
        let mut found = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        found += 1;
                        let target = link["operationRef"].as_str().unwrap();
                        let pointer = target.strip_prefix('#').unwrap();
                        assert!(
                            doc.pointer(pointer).is_some_and(|o| o.get("responses").is_some()),
                            "{method} {path} {status} link {name}: {target} is not an operation"
                        );
                        let id = link["parameters"]["id"].as_str().unwrap();
                        assert!(id.starts_with("$response.body#/") || id == "$request.path.id", "{id}");
                        let target_path = pointer.rsplit_once('/').unwrap().0;
                        assert!(target_path.contains("{id}"), "{name}: the target takes an id");
                    }
                }
            }
        }
        assert_eq!(
            found,
            super::LINKS.len(),
            "a link's answer (path, method, status) is not in the document"
        );
    }
}
