//! Idempotency keys as data, stored in the transaction of the operation
//! they guard, so the key and what it did commit together or not at all.
//!
//! Two ways to use a key:
//! - [`record`] after the operation, with its response (one statement): a
//!   duplicate runs the operation too, but its own key insert then finds the
//!   first one's — on PostgreSQL after waiting for it to commit — so it
//!   rolls back and replays what [`find`] returns. Operations that end in
//!   one transaction use this (escrow).
//! - [`claim`] before the operation, with an empty response: for operations
//!   whose first transaction is only their first step (a payment, completed
//!   after a gateway call), so a duplicate must not start the step at all.
//!
//! If the operation fails, its transaction (and the key) roll back, so the
//! client may retry with the same key.

use super::{DbHandle, StoreError, timestamp};

/// What a key that was already used answers.
pub enum Used {
    /// The key was used with the same request: here is its response.
    Replay { status: u16, body: String },
    /// The key was used with a different request.
    Mismatch,
}

/// Claims the key before the operation. `None`: this request owns it.
pub async fn claim(
    db: &mut impl DbHandle,
    user_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<Used>, StoreError> {
    if insert(db, "idempotency_keys.claim", user_id, key, request_hash, 0, "").await? {
        return Ok(None);
    }
    // Not inserted, so it is there (as fetching one row would say).
    match find(db, user_id, key, request_hash).await? {
        Some(used) => Ok(Some(used)),
        None => Err(StoreError::Sqlx(sqlx::Error::RowNotFound)),
    }
}

/// Stores the key with the response of the operation it guarded, in that
/// operation's transaction. `false`: the key was stored by another request
/// (on PostgreSQL, once that request committed): roll this one back and
/// answer with [`find`].
pub async fn record(
    db: &mut impl DbHandle,
    user_id: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &str,
) -> Result<bool, StoreError> {
    insert(db, "idempotency_keys.record", user_id, key, request_hash, status, body).await
}

async fn insert(
    db: &mut impl DbHandle,
    operation: &'static str,
    user_id: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &str,
) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let inserted = obs
        .run(
            operation,
            sqlx::query(
                "insert into idempotency_keys (user_id, key, request_hash, response_status, response_body, created_at) \
                 values ($1, $2, $3, $4, $5, $6) on conflict (user_id, key) do nothing",
            )
            .bind(user_id)
            .bind(key)
            .bind(request_hash)
            .bind(i64::from(status))
            .bind(body)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(inserted.rows_affected() == 1)
}

/// What the key answers if it was used: its response when `request_hash`
/// matches the request it was used with.
pub async fn find(
    db: &mut impl DbHandle,
    user_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<Used>, StoreError> {
    let (conn, obs) = db.parts();
    let found: Option<(String, i64, String)> = obs
        .run(
            "idempotency_keys.find",
            sqlx::query_as(
                "select request_hash, response_status, response_body from idempotency_keys where user_id = $1 and key = $2",
            )
            .bind(user_id)
            .bind(key)
            .fetch_optional(conn),
        )
        .await?;
    Ok(found.map(|(hash, status, body)| {
        if hash == request_hash {
            Used::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body,
            }
        } else {
            Used::Mismatch
        }
    }))
}
