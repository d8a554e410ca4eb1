//! The OpenAPI document, generated from the handlers' annotations, and the
//! interactive docs page (Swagger UI, vendored into the binary: no CDN).

use utoipa::OpenApi;

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
    tags((name = "service", description = "Identity, version and probes")),
)]
pub struct ApiDoc;
