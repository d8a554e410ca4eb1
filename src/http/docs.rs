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
