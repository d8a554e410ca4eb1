//! Outbound webhook deliveries: one per event and endpoint, created when
//! the worker fans an event out, and every attempt made.
//!
//! Several replicas share the work through the database alone: fanning out
//! takes events `for update skip locked` (PostgreSQL; SQLite has one
//! writer), and a delivery is claimed by a compare-and-set on
//! `lease_until`, so one worker at a time sends it. A worker killed mid-send
//! leaves a lease that runs out; the delivery is then sent again with the
//! same `webhook-id`, which Standard Webhooks receivers deduplicate.

use sqlx::FromRow;
use uuid::Uuid;

use super::{DbHandle, Engine, StoreError, Tx};

/// Fans out up to `limit` events not yet dispatched: a pending delivery for
/// every endpoint (not disabled) that wants the event's type. Returns how
/// many events were dispatched.
pub async fn dispatch(tx: &mut Tx, engine: Engine, now: &str, limit: i64) -> Result<usize, StoreError> {
    let lock = match engine {
        Engine::Postgres => " for update skip locked",
        Engine::Sqlite => "",
    };
    let seqs: Vec<i64> = {
        let (conn, obs) = tx.parts();
        obs.run(
            "events.undispatched",
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select seq from events where dispatched_at is null order by seq limit $1{lock}"
            )))
            .bind(limit)
            .fetch_all(conn),
        )
        .await?
    };
    if seqs.is_empty() {
        return Ok(0);
    }
    let list = (0..seqs.len())
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let fan_out = format!(
        "insert into webhook_deliveries (event_id, event_seq, endpoint_id, order_key, status, attempts, \
         next_attempt_at, created_at) \
         select e.id, e.seq, w.id, e.order_key, 'pending', 0, $1, $1 from events e join webhook_endpoints w \
         on w.status <> 'disabled' and (w.event_types = '*' or w.event_types like '%,' || e.type || ',%') \
         where e.seq in ({list}) on conflict do nothing"
    );
    let mark = format!("update events set dispatched_at = $1 where seq in ({list})");
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(fan_out)).bind(now.to_owned());
    let mut update = sqlx::query(sqlx::AssertSqlSafe(mark)).bind(now.to_owned());
    for seq in &seqs {
        insert = insert.bind(*seq);
        update = update.bind(*seq);
    }
    let (conn, obs) = tx.parts();
    obs.run("webhook_deliveries.fan_out", insert.execute(&mut *conn))
        .await?;
    obs.run("events.mark_dispatched", update.execute(conn)).await?;
    Ok(seqs.len())
}

/// Endpoints (not disabled) with a delivery due now.
pub async fn endpoints_due(db: &mut impl DbHandle, now: &str) -> Result<Vec<String>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_deliveries.endpoints_due",
        sqlx::query_scalar(
            "select distinct d.endpoint_id from webhook_deliveries d \
             join webhook_endpoints w on w.id = d.endpoint_id and w.status <> 'disabled' \
             where d.status = 'pending' and d.next_attempt_at <= $1 and (d.lease_until is null or d.lease_until < $1)",
        )
        .bind(now)
        .fetch_all(conn),
    )
    .await
}

/// Up to `limit` deliveries due to one endpoint, oldest event first, each
/// the earliest of its order key still waiting (events of one project reach
/// an endpoint in the order they were written).
pub async fn due_for(
    db: &mut impl DbHandle,
    endpoint_id: &str,
    now: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_deliveries.due",
        sqlx::query_scalar(
            // The head of each order key (its earliest pending delivery) in
            // one grouped index range; then only heads that are due, not
            // leased, and not behind an event still to be fanned out.
            "with heads as (select order_key, min(event_seq) as head from webhook_deliveries \
             where endpoint_id = $1 and status = 'pending' group by order_key) \
             select d.event_id from heads h join webhook_deliveries d \
             on d.endpoint_id = $1 and d.order_key = h.order_key and d.event_seq = h.head \
             where d.status = 'pending' and d.next_attempt_at <= $2 and (d.lease_until is null or d.lease_until < $2) \
             and not exists (select 1 from events u where u.dispatched_at is null \
                 and u.order_key = d.order_key and u.seq < d.event_seq) \
             order by d.event_seq limit $3",
        )
        .bind(endpoint_id)
        .bind(now)
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// Claims one delivery until `lease_until`; false if another worker has it
/// or it is no longer pending.
pub async fn claim(
    db: &mut impl DbHandle,
    event_id: &str,
    endpoint_id: &str,
    now: &str,
    lease_until: &str,
) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let claimed = obs
        .run(
            "webhook_deliveries.claim",
            sqlx::query(
                "update webhook_deliveries set lease_until = $4 where event_id = $1 and endpoint_id = $2 \
                 and status = 'pending' and (lease_until is null or lease_until < $3)",
            )
            .bind(event_id)
            .bind(endpoint_id)
            .bind(now)
            .bind(lease_until)
            .execute(conn),
        )
        .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Where one attempt goes and with which secrets.
#[derive(Debug, Clone, FromRow)]
pub struct Outgoing {
    pub event_id: String,
    pub endpoint_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub url: String,
    pub secret_sealed: String,
    pub previous_sealed: Option<String>,
    pub previous_expires_at: Option<String>,
}

pub async fn outgoing(
    db: &mut impl DbHandle,
    event_id: &str,
    endpoint_id: &str,
) -> Result<Option<Outgoing>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_deliveries.outgoing",
        sqlx::query_as(
            "select d.event_id, d.endpoint_id, d.attempts, w.url, w.secret_sealed, w.previous_sealed, \
             w.previous_expires_at from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id \
             where d.event_id = $1 and d.endpoint_id = $2",
        )
        .bind(event_id)
        .bind(endpoint_id)
        .fetch_optional(conn),
    )
    .await
}

/// What an attempt found.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub event_id: &'a str,
    pub endpoint_id: &'a str,
    pub attempted_at: &'a str,
    /// delivered, http_error, timeout, connection_error, refused.
    pub outcome: &'static str,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_body: Option<&'a str>,
}

pub async fn insert_attempt(db: &mut impl DbHandle, attempt: &AttemptRecord<'_>) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_attempts.insert",
        sqlx::query(
            "insert into webhook_attempts (id, endpoint_id, event_id, attempted_at, outcome, status_code, latency_ms, \
             response_body) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(attempt.endpoint_id)
        .bind(attempt.event_id)
        .bind(attempt.attempted_at)
        .bind(attempt.outcome)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(attempt.response_body)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// After an attempt: `delivered`; or pending again at `next_attempt_at`;
/// or `failed` when `next_attempt_at` is None (no retry left).
pub async fn settle(
    db: &mut impl DbHandle,
    attempt: &AttemptRecord<'_>,
    next_attempt_at: Option<&str>,
) -> Result<(), StoreError> {
    let status = if attempt.outcome == "delivered" {
        "delivered"
    } else if next_attempt_at.is_some() {
        "pending"
    } else {
        "failed"
    };
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_deliveries.settle",
        sqlx::query(
            "update webhook_deliveries set status = $3, attempts = attempts + 1, \
             next_attempt_at = coalesce($4, next_attempt_at), lease_until = null, last_status_code = $5, \
             last_error = $6, delivered_at = case when $3 = 'delivered' then $7 else delivered_at end \
             where event_id = $1 and endpoint_id = $2 and status = 'pending'",
        )
        .bind(attempt.event_id)
        .bind(attempt.endpoint_id)
        .bind(status)
        .bind(next_attempt_at)
        .bind(attempt.status_code)
        .bind((attempt.outcome != "delivered").then_some(attempt.outcome))
        .bind(attempt.attempted_at)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// Sends `event_id` to an endpoint again from the first attempt (a replay):
/// creates the delivery, or resets the existing one. False if no such event.
pub async fn replay(db: &mut impl DbHandle, event_id: &str, endpoint_id: &str, now: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let done = obs
        .run(
            "webhook_deliveries.replay",
            sqlx::query(
                "insert into webhook_deliveries (event_id, event_seq, endpoint_id, order_key, status, attempts, \
                 next_attempt_at, created_at) select id, seq, $2, order_key, 'pending', 0, $3, $3 from events \
                 where id = $1 on conflict (event_id, endpoint_id) do update set status = 'pending', attempts = 0, \
                 next_attempt_at = excluded.next_attempt_at, lease_until = null, delivered_at = null",
            )
            .bind(event_id)
            .bind(endpoint_id)
            .bind(now)
            .execute(conn),
        )
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Events created in `[from, to)` (stored timestamps), oldest first, at
/// most `limit`: what a range replay sends.
pub async fn event_ids_between(
    db: &mut impl DbHandle,
    from: &str,
    to: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "events.between",
        sqlx::query_scalar("select id from events where created_at >= $1 and created_at < $2 order by seq limit $3")
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(conn),
    )
    .await
}

/// An attempt as the admin API shows it.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub id: String,
    pub event_id: String,
    pub attempted_at: String,
    /// delivered, http_error, timeout, connection_error or refused.
    pub outcome: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The first 1 KiB of the answer, or the error.
    pub response_body: Option<String>,
}

/// An endpoint's attempts, newest first; `before` is the id of the last
/// attempt of the previous page.
pub async fn attempts(
    db: &mut impl DbHandle,
    endpoint_id: &str,
    event_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Attempt>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "webhook_attempts.list",
        sqlx::query_as(
            "select id, event_id, attempted_at, outcome, status_code, latency_ms, response_body from webhook_attempts \
             where endpoint_id = $1 and ($2 is null or event_id = $2) and ($3 is null or id < $3) \
             order by id desc limit $4",
        )
        .bind(endpoint_id)
        .bind(event_id)
        .bind(before)
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// For the gauges: deliveries waiting (to endpoints not disabled, plus
/// events not yet fanned out) and the creation time of the oldest event
/// among them.
pub async fn backlog(db: &mut impl DbHandle) -> Result<(i64, Option<String>), StoreError> {
    let (conn, obs) = db.parts();
    let (pending, oldest_pending): (i64, Option<String>) = obs
        .run(
            "webhook_deliveries.backlog",
            sqlx::query_as(
                "select count(*), min(e.created_at) from webhook_deliveries d \
                 join events e on e.id = d.event_id \
                 join webhook_endpoints w on w.id = d.endpoint_id and w.status <> 'disabled' \
                 where d.status = 'pending'",
            )
            .fetch_one(&mut *conn),
        )
        .await?;
    let (undispatched, oldest_undispatched): (i64, Option<String>) = obs
        .run(
            "events.backlog",
            sqlx::query_as("select count(*), min(created_at) from events where dispatched_at is null").fetch_one(conn),
        )
        .await?;
    let oldest = [oldest_pending, oldest_undispatched].into_iter().flatten().min();
    Ok((pending + undispatched, oldest))
}

/// Deletes attempts, deliveries and events older than `cutoff`, at most
/// `limit` events at a time. Returns how many events were deleted.
pub async fn prune(tx: &mut Tx, cutoff: &str, limit: i64) -> Result<u64, StoreError> {
    let (conn, obs) = tx.parts();
    obs.run(
        "webhook_attempts.prune",
        sqlx::query("delete from webhook_attempts where attempted_at < $1")
            .bind(cutoff)
            .execute(&mut *conn),
    )
    .await?;
    let old = "select id from events where created_at < $1 order by seq limit $2";
    obs.run(
        "webhook_deliveries.prune",
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "delete from webhook_deliveries where event_id in ({old})"
        )))
        .bind(cutoff)
        .bind(limit)
        .execute(&mut *conn),
    )
    .await?;
    let deleted = obs
        .run(
            "events.prune",
            sqlx::query(sqlx::AssertSqlSafe(format!("delete from events where id in ({old})")))
                .bind(cutoff)
                .bind(limit)
                .execute(conn),
        )
        .await?;
    Ok(deleted.rows_affected())
}
