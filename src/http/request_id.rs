//! `X-Request-ID`: kept from the caller when sane, generated otherwise, and
//! returned on every response.
//!
//! The id lives in a task-local for the duration of the request, so code that
//! builds an error body, a log line or an outbound call can read it without
//! threading it through every signature. It is also put in the request's
//! extensions for handlers that want it explicitly.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, PROBLEM_JSON};
use crate::telemetry::request_id::CURRENT;
pub use crate::telemetry::request_id::{MAX_LEN, RequestId, current, scope};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The outermost middleware: assigns the id, runs the request inside its
/// scope, and makes sure every error leaving the service is problem+json
/// carrying that id, whichever layer produced it.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut response = CURRENT
        .scope(id.clone(), async move {
            let response = next.run(request).await;
            if needs_problem_body(&response) {
                problem_for(response, &method, &path)
            } else {
                response
            }
        })
        .await;

    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

fn needs_problem_body(response: &Response) -> bool {
    let status = response.status();
    // JSON bodies are kept: a problem document already, or a probe's report
    // (a 503 from /health says which check failed). So are the console's
    // HTML error pages: a browser shows them to a person.
    let answered = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json") || v.starts_with(b"text/html")
    });
    (status.is_client_error() || status.is_server_error()) && !answered
}

/// The most of a client's input an error detail repeats back.
pub const MAX_ECHO_CHARS: usize = 200;

/// A client's input as an error detail quotes it: at most
/// [`MAX_ECHO_CHARS`] characters, marked when cut, so a 64 KB path does not
/// come back in full.
pub fn echo(input: &str) -> String {
    if input.chars().count() <= MAX_ECHO_CHARS {
        return input.to_owned();
    }
    let kept: String = input.chars().take(MAX_ECHO_CHARS).collect();
    format!("{kept}… ({} characters in all)", input.chars().count())
}

/// Rebuilds an error response from an outer layer (or axum itself) as a
/// problem document, keeping the headers that matter to the client.
fn problem_for(response: Response, method: &axum::http::Method, path: &str) -> Response {
    let status = response.status();
    let detail = match status {
        StatusCode::NOT_FOUND => format!("no route matches {method} {}", echo(path)),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{method} is not allowed on {}; allowed: {allowed}", echo(path))
        }
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this endpoint accepts".to_owned(),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            "the request took too long and was abandoned; it may be retried".to_owned()
        }
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (parts, _body) = response.into_parts();
    let (mut new_parts, body) = ApiError::from_status(status, detail).into_response().into_parts();
    // Keep what inner layers set (Allow, Retry-After, security headers, the
    // matched route, an error cause); only the body and its type change.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new_parts.headers.insert(name.clone(), value.clone());
        }
    }
    new_parts.extensions.extend(parts.extensions);
    Response::from_parts(new_parts, Body::new(body))
}
