//! `Idempotency-Key` for money-moving POSTs: required, scoped to the user;
//! the same key and body replay the first response (with
//! `Idempotent-Replayed: true`); the same key with another body is 422.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::idempotency::{self, Used};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// A key of 1 to 255 visible ASCII characters (a UUID is typical).
pub fn key_from(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers
        .get(HEADER)
        .ok_or_else(|| ApiError::bad_request("an Idempotency-Key header is required on this request (e.g. a UUID)"))?;
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters"))?;
    Ok(key.to_owned())
}

/// The request's key and the hash of what it is bound to (`scope`, the
/// route, and the request body).
pub fn fingerprint(headers: &HeaderMap, scope: &str, request: &impl Serialize) -> Result<(String, String), ApiError> {
    let key = key_from(headers)?;
    let canonical = serde_json::to_vec(&(scope, request)).map_err(ApiError::internal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical);
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((key, hash))
}

/// The headers of a response that replays a used key.
pub fn replayed_header() -> (header::HeaderName, HeaderValue) {
    (
        header::HeaderName::from_static(REPLAYED),
        HeaderValue::from_static("true"),
    )
}

/// Runs `operation` in a transaction and stores the key with its response
/// in that transaction (one statement: see [`idempotency`]). `request`
/// (with `scope`, the route) is what the key is bound to. A failed
/// operation rolls back, key included.
///
/// A key used before is answered from what it stored: with its response if
/// the request is the same, 422 if not. Such a request runs the operation
/// first and rolls it back: when its key insert finds the first one's, or
/// when the operation fails because the first one already did it (a
/// milestone already funded) — only then is the key looked up.
pub async fn run<T, F>(
    state: &AppState,
    user_id: &str,
    headers: &HeaderMap,
    scope: &str,
    request: &impl Serialize,
    operation: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&mut Tx) -> Result<(StatusCode, T), ApiError>,
{
    let (key, hash) = fingerprint(headers, scope, request)?;

    let mut tx = state.db.begin().await?;
    let (status, value) = match operation(&mut tx).await {
        Ok(answer) => answer,
        Err(err) => {
            drop(tx);
            return match used(state, user_id, &key, &hash).await {
                Ok(Some(used)) => answer_used(used),
                // Not used before (or not knowable now): the operation's
                // own error is the answer.
                Ok(None) | Err(_) => Err(err),
            };
        }
    };
    let body = serde_json::to_string(&value).map_err(ApiError::internal)?;
    let record = idempotency::Record {
        user_id,
        key: &key,
        request_hash: &hash,
        status: status.as_u16(),
        body: &body,
    };
    if !tx.commit_with_key(&record).await? {
        let used = used(state, user_id, &key, &hash)
            .await?
            .ok_or_else(|| ApiError::internal("an idempotency key was stored and then not found"))?;
        return answer_used(used);
    }
    Ok((
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

async fn used(state: &AppState, user_id: &str, key: &str, hash: &str) -> Result<Option<Used>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(idempotency::find(&mut conn, user_id, key, hash).await?)
}

fn answer_used(used: Used) -> Result<Response, ApiError> {
    match used {
        Used::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok((
                status,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    replayed_header(),
                ],
                body,
            )
                .into_response())
        }
        Used::Mismatch => Err(ApiError::unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key",
        )),
    }
}

/// Whether `response` replays a used key (its operation was rolled back).
pub fn is_replay(response: &Response) -> bool {
    response.headers().contains_key(REPLAYED)
}
