//! Outbound webhook endpoints: where the marketplace wants events sent.

use sqlx::FromRow;

use super::{DbHandle, StoreError, timestamp};

/// Consecutive failed attempts after which an endpoint is `failing`.
pub const FAILING_AFTER: i64 = 5;

#[derive(Debug, Clone, FromRow)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// `*`, or the types between commas: `,milestone.funded,escrow.released,`.
    pub event_types: String,
    pub secret_sealed: String,
    pub previous_sealed: Option<String>,
    pub previous_expires_at: Option<String>,
    /// enabled, failing or disabled.
    pub status: String,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i64,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: &'a str,
    pub secret_sealed: &'a str,
}

pub async fn insert(db: &mut impl DbHandle, new: NewEndpoint<'_>) -> Result<Endpoint, StoreError> {
    let now = timestamp::now();
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.insert",
        sqlx::query_as(
            "insert into webhook_endpoints (id, url, description, event_types, secret_sealed, status, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, 'enabled', $6, $6) returning *",
        )
        .bind(new.id)
        .bind(new.url)
        .bind(new.description)
        .bind(new.event_types)
        .bind(new.secret_sealed)
        .bind(now)
        .fetch_one(conn),
    )
    .await
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<Endpoint>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.find",
        sqlx::query_as("select * from webhook_endpoints where id = $1")
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

/// Every endpoint, oldest first (an operator has a handful).
pub async fn list(db: &mut impl DbHandle) -> Result<Vec<Endpoint>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.list",
        sqlx::query_as("select * from webhook_endpoints order by created_at, id").fetch_all(conn),
    )
    .await
}

/// What an admin changes (None: unchanged).
#[derive(Debug, Default)]
pub struct Changes<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a str>,
    /// `enabled` (which also clears the failure count) or `disabled`.
    pub status: Option<&'a str>,
    pub disabled_reason: Option<&'a str>,
}

pub async fn update(db: &mut impl DbHandle, id: &str, changes: Changes<'_>) -> Result<Option<Endpoint>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.update",
        sqlx::query_as(
            "update webhook_endpoints set url = coalesce($2, url), description = coalesce($3, description), \
             event_types = coalesce($4, event_types), status = coalesce($5, status), \
             disabled_reason = case when $5 is null then disabled_reason when $5 = 'disabled' then $6 else null end, \
             consecutive_failures = case when $5 = 'enabled' then 0 else consecutive_failures end, \
             failing_since = case when $5 = 'enabled' then null else failing_since end, \
             updated_at = $7 where id = $1 returning *",
        )
        .bind(id)
        .bind(changes.url)
        .bind(changes.description)
        .bind(changes.event_types)
        .bind(changes.status)
        .bind(changes.disabled_reason)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// A new secret; the old one is still signed with until `previous_expires_at`.
pub async fn rotate(
    db: &mut impl DbHandle,
    id: &str,
    secret_sealed: &str,
    previous_expires_at: &str,
) -> Result<Option<Endpoint>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.rotate",
        sqlx::query_as(
            "update webhook_endpoints set previous_sealed = secret_sealed, previous_expires_at = $3, \
             secret_sealed = $2, updated_at = $4 where id = $1 returning *",
        )
        .bind(id)
        .bind(secret_sealed)
        .bind(previous_expires_at)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// Deletes an endpoint with its deliveries and attempts; false if absent.
pub async fn delete(db: &mut impl DbHandle, id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_attempts.delete_endpoint",
        sqlx::query("delete from webhook_attempts where endpoint_id = $1")
            .bind(id)
            .execute(&mut *conn),
    )
    .await?;
    obs.run(
        "webhook_deliveries.delete_endpoint",
        sqlx::query("delete from webhook_deliveries where endpoint_id = $1")
            .bind(id)
            .execute(&mut *conn),
    )
    .await?;
    let deleted = obs
        .run(
            "webhook_endpoints.delete",
            sqlx::query("delete from webhook_endpoints where id = $1")
                .bind(id)
                .execute(conn),
        )
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// A delivered attempt: the endpoint is healthy again.
pub async fn record_success(db: &mut impl DbHandle, id: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.record_success",
        sqlx::query(
            "update webhook_endpoints set consecutive_failures = 0, failing_since = null, \
             status = case when status = 'failing' then 'enabled' else status end \
             where id = $1 and (consecutive_failures > 0 or status = 'failing')",
        )
        .bind(id)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// A failed attempt: `failing` after [`FAILING_AFTER`] in a row, `disabled`
/// once it has been failing since before `disable_before`. Returns the
/// endpoint's status afterwards and whether this attempt disabled it.
pub async fn record_failure(
    db: &mut impl DbHandle,
    id: &str,
    now: &str,
    disable_before: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String, String)> = obs
        .run(
            "webhook_endpoints.record_failure",
            sqlx::query_as(
                "update webhook_endpoints set consecutive_failures = consecutive_failures + 1, \
                 failing_since = coalesce(failing_since, $2), \
                 status = case when status = 'disabled' then status \
                     when coalesce(failing_since, $2) <= $3 then 'disabled' \
                     when consecutive_failures + 1 >= $4 then 'failing' else status end, \
                 disabled_reason = case when status <> 'disabled' and coalesce(failing_since, $2) <= $3 \
                     then 'every attempt failed since ' || coalesce(failing_since, $2) else disabled_reason end, \
                 updated_at = case when status <> 'disabled' and coalesce(failing_since, $2) <= $3 \
                     then $2 else updated_at end \
                 where id = $1 returning status, updated_at",
            )
            .bind(id)
            .bind(now)
            .bind(disable_before)
            .bind(FAILING_AFTER)
            .fetch_optional(conn),
        )
        .await?;
    Ok(row.map(|(status, updated_at)| {
        let just_disabled = status == "disabled" && updated_at == now;
        (status, just_disabled)
    }))
}

/// Endpoints by status, for the gauges.
pub async fn count_by_status(db: &mut impl DbHandle) -> Result<Vec<(String, i64)>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_endpoints.count_by_status",
        sqlx::query_as("select status, count(*) from webhook_endpoints group by status").fetch_all(conn),
    )
    .await
}
