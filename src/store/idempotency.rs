//! Idempotency keys as data: the key is inserted first, in the transaction
//! of the operation it guards (`on conflict do nothing`). The first request
//! inserts it and goes on; a duplicate finds it — on PostgreSQL after
//! waiting for the first to commit — and replays the stored response.
//! If the operation fails, its transaction (and the key) roll back, so the
//! client may retry with the same key.

use super::{DbHandle, StoreError, timestamp};

pub enum Claim {
    /// This request owns the key: perform the operation.
    New,
    /// The key was used with the same request: here is its response.
    Replay { status: u16, body: String },
    /// The key was used with a different request.
    Mismatch,
}

pub async fn claim(db: &mut impl DbHandle, user_id: &str, key: &str, request_hash: &str) -> Result<Claim, StoreError> {
    let (conn, obs) = db.parts();
    let inserted = obs
        .run(
            "idempotency_keys.claim",
            sqlx::query(
                "insert into idempotency_keys (user_id, key, request_hash, response_status, response_body, created_at) \
                 values ($1, $2, $3, 0, '', $4) on conflict (user_id, key) do nothing",
            )
            .bind(user_id)
            .bind(key)
            .bind(request_hash)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let (conn, obs) = db.parts();
    let (hash, status, body): (String, i64, String) = obs
        .run(
            "idempotency_keys.find",
            sqlx::query_as(
                "select request_hash, response_status, response_body from idempotency_keys where user_id = $1 and key = $2",
            )
            .bind(user_id)
            .bind(key)
            .fetch_one(conn),
        )
        .await?;
    if hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay {
        status: u16::try_from(status).unwrap_or(500),
        body,
    })
}

/// Saves the response of the operation that claimed the key.
pub async fn save_response(
    db: &mut impl DbHandle,
    user_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "idempotency_keys.save",
        sqlx::query(
            "update idempotency_keys set response_status = $3, response_body = $4 where user_id = $1 and key = $2",
        )
        .bind(user_id)
        .bind(key)
        .bind(i64::from(status))
        .bind(body)
        .execute(conn),
    )
    .await?;
    Ok(())
}
