//! Scheduled jobs: work to do at a time (release a milestone whose
//! inspection period elapsed, expire a project not funded in time).
//!
//! A job is scheduled in the transaction of the change that makes it due (a
//! submission, a project sent: [`Tx::schedule`], written at commit), so it
//! exists exactly when its cause does. A replica claims it with a lease
//! (compare-and-set on `lease_until`) and marks it done with [`finish`] as
//! the first statement of the transaction that does the work: if two
//! replicas ever run one job (a lease ran out), the second's `finish` finds
//! it done and its transaction is dropped.

use sqlx::FromRow;
use uuid::Uuid;

use super::kept::{KeptRow, Values};
use super::{DbHandle, StoreError, Tx, timestamp};

#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub target_id: String,
    pub due_at: String,
    /// Attempts started, this one included once claimed.
    pub attempts: i64,
}

/// A job waiting in its transaction for the commit.
#[derive(Debug)]
pub(super) struct Pending {
    id: String,
    kind: String,
    target_id: String,
    due_at: String,
    created_at: String,
}

impl Tx {
    /// Schedules `kind` for `target_id` at `due_at` in this transaction:
    /// written by [`Tx::commit`] with its other kept rows (one statement,
    /// see [`super::kept`]), or never if the transaction is dropped. Scheduling the
    /// same job twice is a no-op.
    pub fn schedule(&mut self, kind: &str, target_id: &str, due_at: &str) {
        self.jobs.push(Pending {
            id: Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            target_id: target_id.to_owned(),
            due_at: due_at.to_owned(),
            created_at: timestamp::now(),
        });
    }
}

impl KeptRow for Pending {
    const INSERT: &'static str = "insert into scheduled_jobs (id, kind, target_id, due_at, created_at)";
    const AFTER: &'static str = " on conflict (kind, target_id, due_at) do nothing";
    const OPERATION: &'static str = "scheduled_jobs.insert";

    fn bind(&self, values: &mut Values) {
        values.add(self.id.as_str());
        values.add(self.kind.as_str());
        values.add(self.target_id.as_str());
        values.add(self.due_at.as_str());
        values.add(self.created_at.as_str());
    }
}

/// Jobs due at `now`, not done and not leased, earliest first.
pub async fn due(db: &mut impl DbHandle, now: &str, limit: i64) -> Result<Vec<Job>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "scheduled_jobs.due",
        sqlx::query_as(
            "select id, kind, target_id, due_at, attempts from scheduled_jobs \
             where done_at is null and due_at <= $1 and (lease_until is null or lease_until <= $1) \
             order by due_at limit $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// Leases a due job until `lease_until`; None if another replica has it or
/// it is done.
pub async fn claim(db: &mut impl DbHandle, id: &str, now: &str, lease_until: &str) -> Result<Option<Job>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "scheduled_jobs.claim",
        sqlx::query_as(
            "update scheduled_jobs set lease_until = $3, attempts = attempts + 1 \
             where id = $1 and done_at is null and (lease_until is null or lease_until <= $2) \
             returning id, kind, target_id, due_at, attempts",
        )
        .bind(id)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(conn),
    )
    .await
}

/// Marks a job done with its outcome, in the transaction doing its work;
/// false if it was already done (the caller drops its transaction).
pub async fn finish(db: &mut impl DbHandle, id: &str, outcome: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let finished = obs
        .run(
            "scheduled_jobs.finish",
            sqlx::query("update scheduled_jobs set done_at = $2, outcome = $3 where id = $1 and done_at is null")
                .bind(id)
                .bind(timestamp::now())
                .bind(outcome)
                .execute(conn),
        )
        .await?;
    Ok(finished.rows_affected() == 1)
}

/// Records a failed attempt; the job is tried again at `retry_at`.
pub async fn failed(db: &mut impl DbHandle, id: &str, error: &str, retry_at: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "scheduled_jobs.failed",
        sqlx::query("update scheduled_jobs set last_error = $2, lease_until = $3 where id = $1 and done_at is null")
            .bind(id)
            .bind(error)
            .bind(retry_at)
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// For the gauges: jobs due by `now` and not done, by kind, and the due
/// time of the earliest of them.
pub async fn backlog(db: &mut impl DbHandle, now: &str) -> Result<(Vec<(String, i64)>, Option<String>), StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<(String, i64, Option<String>)> = obs
        .run(
            "scheduled_jobs.backlog",
            sqlx::query_as(
                "select kind, count(*), min(due_at) from scheduled_jobs \
                 where done_at is null and due_at <= $1 group by kind",
            )
            .bind(now)
            .fetch_all(conn),
        )
        .await?;
    let earliest = rows.iter().filter_map(|(_, _, at)| at.clone()).min();
    Ok((
        rows.into_iter().map(|(kind, count, _)| (kind, count)).collect(),
        earliest,
    ))
}

/// Changes a finished job's outcome (in the transaction that finished it).
pub async fn set_outcome(db: &mut impl DbHandle, id: &str, outcome: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "scheduled_jobs.set_outcome",
        sqlx::query("update scheduled_jobs set outcome = $2 where id = $1")
            .bind(id)
            .bind(outcome)
            .execute(conn),
    )
    .await?;
    Ok(())
}
