//! Idempotency keys as data, stored in the transaction of the operation
//! they guard, so the key and what it did commit together or not at all.
//!
//! Two ways to use a key:
//! - a [`Record`] stored at commit, with the operation's response (written
//!   with the transaction's audit records and events in one statement): a
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

use super::kept::{self, KeptRow, Values};
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
    let unanswered = Record {
        user_id,
        key,
        request_hash,
        status: 0,
        body: "",
    };
    let (conn, obs) = db.parts();
    let query = kept::insert_one(&unanswered)?;
    if obs
        .run("idempotency_keys.claim", query.fetch_optional(conn))
        .await?
        .is_some()
    {
        return Ok(None);
    }
    // Not inserted, so it is there (as fetching one row would say).
    match find(db, user_id, key, request_hash).await? {
        Some(used) => Ok(Some(used)),
        None => Err(StoreError::Sqlx(sqlx::Error::RowNotFound)),
    }
}

/// A key to store with the response of the operation it guarded, in that
/// operation's transaction: [`Tx::commit_with_key`](super::Tx::commit_with_key) writes it (one
/// statement with the transaction's audit records and events) and answers
/// `false` if the key was stored by another request (on PostgreSQL, once
/// that request committed): this one is then rolled back, to be answered
/// with [`find`].
pub struct Record<'a> {
    pub user_id: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub status: u16,
    pub body: &'a str,
}

impl KeptRow for Record<'_> {
    const INSERT: &'static str =
        "insert into idempotency_keys (user_id, key, request_hash, response_status, response_body, created_at)";
    /// One row if the key was stored, none if it was there.
    const AFTER: &'static str = " on conflict (user_id, key) do nothing returning 1";
    const OPERATION: &'static str = "idempotency_keys.record";

    fn bind(&self, values: &mut Values) {
        values.add(self.user_id);
        values.add(self.key);
        values.add(self.request_hash);
        values.add(i64::from(self.status));
        values.add(self.body);
        values.add(timestamp::now());
    }
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
