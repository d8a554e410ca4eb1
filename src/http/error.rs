//! The one HTTP error type and its `application/problem+json` body (RFC 9457).
//!
//! Handlers return `Result<_, ApiError>`. A client error carries a `detail`
//! that tells the client what to fix; an internal error keeps its cause for
//! the logs (and, later, Sentry) and says only "internal error" on the wire.

use std::fmt;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, stable for clients to match on.
    #[serde(rename = "type")]
    #[schema(example = "urn:amani:problem:not-found")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a human; never internals.
    pub detail: String,
    /// The `X-Request-ID` of the request, to quote to support.
    pub request_id: Option<String>,
}

/// The problem type of an error response (its URN's last part), for the
/// `errors_total{error_type}` metric.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);

/// The internal cause of a 5xx, attached to the response so the access log
/// (and error tracking) can report it without it reaching the body.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    cause: Option<String>,
    retry_after_seconds: Option<u64>,
    /// Adds `WWW-Authenticate: Bearer` (401 responses).
    bearer_challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            slug,
            detail: detail.into(),
            cause: None,
            retry_after_seconds: None,
            bearer_challenge: false,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        let mut err = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        err.bearer_challenge = true;
        err
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn too_many_requests(retry_after: std::time::Duration) -> ApiError {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many attempts; retry after {seconds} s"),
        )
        .retry_after(seconds.max(1))
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(5)
    }

    /// A 500 whose cause is logged, never shown.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        let mut err = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error");
        err.cause = Some(cause.to_string());
        err
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the client is told (the problem's `detail`).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A problem for a status produced outside any handler (a layer's 408 or
    /// 413, an unmatched method): the reason phrase, with the given detail.
    pub fn from_status(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(status, slug_for_status(status), detail)
    }
}

/// The problem type for a bare status code.
pub fn slug_for_status(status: StatusCode) -> &'static str {
    {
        match status {
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
            StatusCode::TOO_MANY_REQUESTS => "rate-limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "bad-request",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.cause.as_deref().unwrap_or(&self.detail))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("urn:amani:problem:{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            request_id: request_id::current().map(|id| id.to_string()),
        };
        let mut response = (self.status, Json(problem)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.bearer_challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorKind(self.slug));
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::Duplicate(what) => return ApiError::conflict(format!("{what} already exists")),
            StoreError::InsufficientFunds(_) => {
                return ApiError::conflict("insufficient available balance for this operation");
            }
            StoreError::BalanceLimit(_) => {
                return ApiError::unprocessable(format!(
                    "amount would take a balance past its limit of {} minor units; use a smaller amount",
                    crate::domain::money::MAX_BALANCE
                ));
            }
            _ => {}
        }
        let cause = error_chain(&err);
        if err.is_unavailable() {
            let mut api = ApiError::unavailable("the database is unavailable; try again shortly");
            api.cause = Some(cause);
            api
        } else {
            ApiError::internal(cause)
        }
    }
}

/// An error and its sources, outermost first: `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(err: crate::domain::DomainError) -> ApiError {
        match err {
            crate::domain::DomainError::Invalid { .. } => ApiError::unprocessable(err.to_string()),
            crate::domain::DomainError::Conflict(reason) => ApiError::conflict(reason),
        }
    }
}

impl From<crate::operations::OperationError> for ApiError {
    fn from(err: crate::operations::OperationError) -> ApiError {
        use crate::gateway::GatewayError;
        use crate::operations::OperationError;
        match err {
            OperationError::NotFound(what) => ApiError::not_found(format!("no such {what}")),
            OperationError::Forbidden(reason) => ApiError::forbidden(reason),
            OperationError::Invalid(reason) => ApiError::unprocessable(reason),
            OperationError::BadRequest(reason) => ApiError::bad_request(reason),
            OperationError::Unauthorized(reason) => ApiError::unauthorized(reason),
            OperationError::Internal(cause) => ApiError::internal(cause),
            OperationError::Locked(wait) => ApiError::too_many_requests(wait),
            OperationError::Busy => {
                ApiError::unavailable("too many password checks at once; retry in a second").retry_after(1)
            }
            OperationError::Domain(domain) => domain.into(),
            OperationError::Store(store) => store.into(),
            // The provider refusing the payment (bad details, limits) is not
            // our failure: a 4xx the client can act on, never a 5xx.
            OperationError::Gateway(GatewayError::Rejected(reason)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment-refused",
                format!("the payment provider refused the request: {reason}"),
            ),
            OperationError::Gateway(GatewayError::Unavailable(_) | GatewayError::Duplicate) => {
                ApiError::unavailable("the payment provider gave no answer; try again shortly").retry_after(5)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let detail = rejection.body_text();
        match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                status,
                "unsupported-media-type",
                "expected a JSON body with `Content-Type: application/json`",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::from_status(status, "the request body is too large"),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable(detail),
            _ => ApiError::bad_request(detail),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        // serde's message names the parameter and what was wrong with it.
        ApiError::unprocessable(format!("query string: {}", rejection.body_text()))
    }
}
