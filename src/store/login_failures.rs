//! Consecutive failed password checks per key (see the migration for the
//! keys), for the doubling lockout of `operations::accounts`.

use super::{DbHandle, StoreError, timestamp};

/// When the key's lockout ends, if one was set (a stored timestamp).
pub async fn locked_until(db: &mut impl DbHandle, key: &str) -> Result<Option<String>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(Option<String>,)> = obs
        .run(
            "login_failures.find",
            sqlx::query_as("select locked_until from login_failures where key = $1")
                .bind(key)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.and_then(|(until,)| until))
}

/// Counts one more failure and returns the count.
pub async fn record(db: &mut impl DbHandle, key: &str) -> Result<i64, StoreError> {
    let (conn, obs) = db.parts();
    let (failures,): (i64,) = obs
        .run(
            "login_failures.record",
            sqlx::query_as(
                "insert into login_failures (key, failures, updated_at) values ($1, 1, $2) \
                 on conflict (key) do update set failures = login_failures.failures + 1, updated_at = $2 \
                 returning failures",
            )
            .bind(key)
            .bind(timestamp::now())
            .fetch_one(conn),
        )
        .await?;
    Ok(failures)
}

pub async fn lock(db: &mut impl DbHandle, key: &str, until: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "login_failures.lock",
        sqlx::query("update login_failures set locked_until = $2 where key = $1")
            .bind(key)
            .bind(until)
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// Forgets the key's failures (after a success).
pub async fn clear(db: &mut impl DbHandle, key: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "login_failures.clear",
        sqlx::query("delete from login_failures where key = $1")
            .bind(key)
            .execute(conn),
    )
    .await?;
    Ok(())
}
