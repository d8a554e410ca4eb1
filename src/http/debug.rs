//! Routes that fail on purpose, to check error tracking and alerting end to
//! end in a staging environment (`ENABLE_DEBUG_ROUTES=true`; refused in
//! production). Not part of the public API document.

use axum::Router;
use axum::routing::get;

use super::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/debug/panic", get(panic))
        .route("/api/v1/debug/error", get(internal_error))
}

/// A handler that panics: the client gets a 500 problem, the server keeps
/// serving, error tracking gets the panic.
async fn panic() -> &'static str {
    panic!("debug route: deliberate panic")
}

/// A handler that fails with an internal error and a cause chain. With a
/// bearer token, the event also shows which user met the error.
async fn internal_error(_user: Option<super::extract::AuthUser>) -> Result<&'static str, ApiError> {
    let cause = std::io::Error::other("debug route: deliberate failure");
    Err(ApiError::internal(format!("while serving the debug route: {cause}")))
}
