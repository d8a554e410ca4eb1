//! The HTTP surface: the router, its middleware stack, and one module per
//! resource.

mod access_log;
pub mod admin;
pub mod auth;
pub mod console;
pub mod debug;
pub mod docs;
pub mod error;
pub mod escrow;
pub mod events;
pub mod extract;
mod files;
pub mod idempotency;
pub mod kyc;
pub mod metrics;
pub mod milestones;
pub mod projects;
pub mod request_id;
pub mod service;
pub mod wallet;
pub mod webhooks;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{AllowedOrigins, Config};
use crate::state::AppState;
use error::ApiError;

/// Builds the whole application: routes, docs and middleware.
///
/// ## Middleware order
/// From the outside in:
/// 0. When `SENTRY_DSN` is set, Sentry's two layers wrap all of the below
///    (a hub per request, so tags set by the layers inside stay with it).
/// 1. `request_id` — assigns the id first, so every later layer, log line
///    and error body can carry it; turns any non-problem error response from
///    the layers inside into problem+json on the way out.
/// 2. `access_log::observe` — one span and one access-log line per request,
///    measured around everything below so that timeouts, panics and body-limit
///    rejections are logged (and counted) too.
/// 3. `CatchPanicLayer` — a panicking middleware becomes a 500 problem and
///    the server keeps serving; it sits inside observe so the 500 is logged.
/// 4. A NUL in the URL refused, CORS, then the security headers.
/// 5. Inside the routes: the body-size limit, honoured by the extractors that
///    read bodies; `record_route`, which reports the matched template; then
///    `TimeoutLayer` (abandons a request after `REQUEST_TIMEOUT_SECONDS`) and
///    a second panic catcher, both inside `record_route` so a timed-out or
///    panicking request keeps its route label in logs and metrics.
///
/// Each stack is one `ServiceBuilder` given to one `layer` call (the first
/// layer the outermost): every `Router::layer` call boxes the routes once
/// more, and every box is cloned for every request.
pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let unless_set = |name, value| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    let sentry = config.sentry.dsn.is_some();
    // `Router::layer` wraps each route separately, inside the point where
    // axum answers 405 (with its `Allow` header). Nesting the routes as the
    // fallback of an outer router makes the stack below wrap the whole app.
    Router::new().fallback_service(routes(state.clone())).layer(
        ServiceBuilder::new()
            // Sentry outermost, in the order its maintainers document for
            // axum: a hub per request, then the HTTP layer (request data,
            // transaction).
            .option_layer(
                sentry.then(sentry::integrations::tower::NewSentryLayer::<axum::extract::Request>::new_from_top),
            )
            .option_layer(sentry.then(|| sentry::integrations::tower::SentryHttpLayer::new().enable_transaction()))
            .layer(from_fn(request_id::middleware))
            .layer(from_fn_with_state(state.clone(), access_log::observe))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(from_fn(refuse_nul_in_uri))
            .option_layer(cors(config))
            // Answers are about one user's money, identity and tokens: never
            // kept by a browser or a shared cache. (Each header is set only
            // where a handler did not choose otherwise.)
            .layer(unless_set(header::CACHE_CONTROL, "no-store"))
            .layer(unless_set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(unless_set(header::X_FRAME_OPTIONS, "DENY"))
            .layer(unless_set(header::REFERRER_POLICY, "no-referrer"))
            .option_layer(
                config
                    .force_https
                    .then(|| unless_set(header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains")),
            ),
    )
}

/// `METRICS_ADDR`'s listener: `/metrics` and nothing else. Requests that
/// reach the handler through it carry [`metrics::OwnListener`].
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("this listener serves only GET /metrics") })
        .layer(axum::Extension(metrics::OwnListener))
        .with_state(state)
}

/// The OpenAPI document of this build, as `/api-docs/openapi.json` serves
/// it (and `amani openapi` prints it).
pub fn openapi_document(version: &str) -> utoipa::openapi::OpenApi {
    let (_, mut openapi) = api_routes();
    openapi.info.version = version.to_owned();
    docs::finish(&mut openapi);
    openapi
}

/// Every API route with its OpenAPI description (no state yet).
fn api_routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(service::root))
        .routes(routes!(service::version))
        .routes(routes!(service::ping))
        .routes(routes!(service::health))
        .routes(routes!(service::readiness))
        .routes(routes!(metrics::metrics))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::me, auth::update_me))
        .routes(routes!(auth::change_password))
        .routes(routes!(kyc::status))
        .routes(routes!(kyc::admin_list))
        .routes(routes!(kyc::approve))
        .routes(routes!(kyc::reject))
        .routes(routes!(kyc::document))
        .routes(routes!(admin::deactivate_user))
        .routes(routes!(admin::reactivate_user))
        .routes(routes!(admin::search_users))
        .routes(routes!(admin::issue_password_reset))
        .routes(routes!(auth::reset_password))
        .routes(routes!(admin::audit_trail))
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(projects::send))
        .routes(routes!(projects::accept))
        .routes(routes!(projects::cancel))
        .routes(routes!(projects::dispute))
        .routes(routes!(projects::resolve))
        .routes(routes!(milestones::create_milestone, milestones::list_milestones))
        .routes(routes!(milestones::get_milestone, milestones::update_milestone))
        .routes(routes!(milestones::submit_milestone))
        .routes(routes!(milestones::review_milestone))
        .routes(routes!(milestones::dispute_milestone))
        .routes(routes!(milestones::answer_dispute))
        .routes(routes!(milestones::resolve_milestone))
        .routes(routes!(milestones::evidence_file))
        .routes(routes!(escrow::hold))
        .routes(routes!(escrow::release))
        .routes(routes!(escrow::refund))
        .routes(routes!(escrow::transactions))
        .routes(routes!(events::list_events))
        .routes(routes!(events::get_event))
        .routes(routes!(events::create_endpoint, events::list_endpoints))
        .routes(routes!(
            events::get_endpoint,
            events::update_endpoint,
            events::delete_endpoint
        ))
        .routes(routes!(events::rotate_secret))
        .routes(routes!(events::attempts))
        .routes(routes!(events::replay))
        .routes(routes!(escrow::transaction))
        .routes(routes!(wallet::wallet))
        .routes(routes!(wallet::deposit))
        .routes(routes!(wallet::withdraw))
        .routes(routes!(wallet::add_destination, wallet::list_destinations))
        .routes(routes!(wallet::remove_destination))
        .routes(routes!(webhooks::payment))
        // Documents are larger than ordinary bodies; only these routes say so
        // (the innermost limit wins).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(kyc::submit))
                .routes(routes!(kyc::resubmit))
                .routes(routes!(milestones::add_evidence, milestones::list_evidence))
                .layer(DefaultBodyLimit::max(files::MULTIPART_LIMIT)),
        )
        .split_for_parts()
}

/// Every route and the docs, without the outer middleware stack.
fn routes(state: AppState) -> Router {
    let (api, _) = api_routes();
    let openapi = openapi_document(&state.config.app_version);
    let max_body_bytes = state.config.max_body_bytes;
    let request_timeout = state.config.request_timeout;
    let api = if state.config.debug_routes {
        api.merge(debug::routes())
    } else {
        api
    };
    // The page must work offline and tell nobody what our API looks like:
    // no call to swagger.io's online validator.
    let swagger = SwaggerUi::new(docs::DOCS_PATH)
        .url(docs::OPENAPI_PATH, openapi)
        .config(utoipa_swagger_ui::Config::default().validator_url("none"));
    api.merge(swagger)
        .merge(console::routes())
        // A panicking or timed-out handler is answered here, inside
        // record_route, so its 500 or 503 keeps the route label; the outer
        // panic catcher covers the middleware.
        .route_layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state.clone(), access_log::record_route))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    request_timeout,
                ))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// A NUL character (`%00`) in the path or the query string is refused
/// before any handler sees it: no id or filter we store or look up may hold
/// one (PostgreSQL cannot store it), so it is the client's mistake, on both
/// engines alike.
async fn refuse_nul_in_uri(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    let has_nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::bad_request("the URL must not contain a NUL character (%00)").into_response();
    }
    next.run(request).await
}

fn cors(config: &Config) -> Option<CorsLayer> {
    let origin = match &config.allowed_origins {
        AllowedOrigins::None => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        // Parsed and checked in config, so every entry is a valid header value.
        AllowedOrigins::List(list) => AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                request_id::X_REQUEST_ID.clone(),
            ])
            .expose_headers([request_id::X_REQUEST_ID.clone(), header::RETRY_AFTER]),
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    let mut response = ApiError::internal(format!("handler panicked: {message}")).into_response();
    response.extensions_mut().insert(access_log::Panicked);
    response
}
