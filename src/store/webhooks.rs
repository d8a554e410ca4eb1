//! Payment webhooks received, deduplicated by the provider's event id.

use super::{DbHandle, StoreError, timestamp};

/// Records an event; false if this provider's event id was seen before.
pub async fn record(
    db: &mut impl DbHandle,
    provider: &str,
    event_id: &str,
    event_type: &str,
    reference: Option<&str>,
    outcome: &str,
) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "webhook_events.insert",
            sqlx::query(
                "insert into webhook_events (provider, event_id, event_type, reference, outcome, received_at) \
                 values ($1, $2, $3, $4, $5, $6) on conflict (provider, event_id) do nothing",
            )
            .bind(provider)
            .bind(event_id)
            .bind(event_type)
            .bind(reference)
            .bind(outcome)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Whether this provider's event was processed before.
pub async fn seen(db: &mut impl DbHandle, provider: &str, event_id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String,)> = obs
        .run(
            "webhook_events.find",
            sqlx::query_as("select outcome from webhook_events where provider = $1 and event_id = $2")
                .bind(provider)
                .bind(event_id)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.is_some())
}
