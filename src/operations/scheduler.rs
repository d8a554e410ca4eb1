//! The scheduler: timed work (a milestone whose inspection period elapsed,
//! a project not funded by its deadline, a dispute left unanswered, a
//! milestone past its due date) done through the same operations
//! the API uses, so rules, ledger, audit, events and metrics are the same.
//!
//! - **Stored**: a job is a row of `scheduled_jobs`, written in the
//!   transaction of its cause ([`crate::store::jobs`]).
//! - **Once, on any number of replicas**: a replica leases a due job
//!   (compare-and-set), then marks it done as the first statement of the
//!   transaction that does the work; a second runner of the same job finds
//!   it done and drops its transaction. The work itself re-checks the state
//!   under the project's lock (a buyer who answered one second before the
//!   deadline wins; the job ends `obsolete`).
//! - **kill -9**: a transaction cut short commits nothing; a lease whose
//!   replica died runs out (`SCHEDULER_LEASE_SECONDS`, a minute) and the
//!   job is taken again.
//! - **Failures**: a job whose work fails is retried after a backoff (5 s,
//!   doubling, at most 10 min), counted as `failed`, and shows as late.
//! - **A controllable clock**: [`Scheduler::pass`] takes the time to act
//!   at, so tests move the clock instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{OperationError, escrow, milestones};
use crate::store::jobs::{self, Job};
use crate::store::{Database, timestamp};
use crate::telemetry::metrics::{JobLabels, Metrics};

pub use crate::domain::job::{
    DISPUTE_UNANSWERED, FUNDING_DEADLINE, INSPECTION_ELAPSED, KINDS, MILESTONE_DUE, OUTCOMES,
};

/// How often the scheduler looks for due work.
const TICK: Duration = Duration::from_secs(1);
/// Jobs taken per pass.
const BATCH: i64 = 100;
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(600);

pub struct Scheduler {
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    /// How long this replica owns a job it took (`SCHEDULER_LEASE_SECONDS`).
    lease: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub done: usize,
    pub obsolete: usize,
    pub failed: usize,
}

impl Scheduler {
    pub fn new(db: Arc<Database>, metrics: Arc<Metrics>, lease: Duration) -> Scheduler {
        Scheduler { db, metrics, lease }
    }

    /// Runs a pass every second until `stop` changes.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            if let Err(err) = self.pass(OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %err, "scheduler pass failed");
            }
        }
    }

    /// Does the work due at `now`: takes each due job (a lease), runs it,
    /// and counts what happened. A job another replica holds is skipped.
    pub async fn pass(&self, now: OffsetDateTime) -> Result<PassReport, OperationError> {
        let stamp = timestamp::format(now);
        let lease_until = timestamp::format(now + self.lease);
        let due = {
            let mut conn = self.db.acquire().await?;
            jobs::due(&mut conn, &stamp, BATCH).await?
        };
        let mut report = PassReport::default();
        for job in due {
            let claimed = {
                let mut conn = self.db.acquire().await?;
                jobs::claim(&mut conn, &job.id, &stamp, &lease_until).await?
            };
            let Some(job) = claimed else { continue };
            let outcome = match self.run_job(&job).await {
                Ok(Some(outcome)) => outcome,
                // Another replica finished it meanwhile.
                Ok(None) => continue,
                Err(err) => {
                    self.retry_later(&job, now, &err).await;
                    "failed"
                }
            };
            match outcome {
                "done" => report.done += 1,
                "obsolete" => report.obsolete += 1,
                _ => report.failed += 1,
            }
            self.metrics
                .scheduled_jobs
                .get_or_create(&JobLabels {
                    kind: kind_label(&job.kind),
                    outcome,
                })
                .inc();
        }
        Ok(report)
    }

    /// Runs one job in one transaction that also marks it done. None if it
    /// was done already.
    async fn run_job(&self, job: &Job) -> Result<Option<&'static str>, OperationError> {
        let mut tx = self.db.begin().await?;
        if !jobs::finish(&mut tx, &job.id, "done").await? {
            return Ok(None);
        }
        let did = match job.kind.as_str() {
            INSPECTION_ELAPSED => escrow::release_after_inspection(&mut tx, &job.target_id, &job.due_at)
                .await?
                .is_some(),
            FUNDING_DEADLINE => escrow::expire_unfunded(&mut tx, &job.target_id).await?.is_some(),
            DISPUTE_UNANSWERED => escrow::settle_unanswered_dispute(&mut tx, &job.target_id, &job.due_at)
                .await?
                .is_some(),
            MILESTONE_DUE => milestones::mark_overdue(&mut tx, &job.target_id, &job.due_at)
                .await?
                .is_some(),
            other => {
                tracing::error!(kind = other, job_id = job.id, "a scheduled job of an unknown kind");
                false
            }
        };
        if !did {
            jobs::set_outcome(&mut tx, &job.id, "obsolete").await?;
        }
        tx.commit().await?;
        if did {
            match job.kind.as_str() {
                INSPECTION_ELAPSED => self.metrics.milestones_auto_released.inc(),
                FUNDING_DEADLINE => self.metrics.projects_expired.inc(),
                _ => 0,
            };
        }
        Ok(Some(if did { "done" } else { "obsolete" }))
    }

    /// Records a failed attempt; the job is due again after a backoff that
    /// doubles with each attempt.
    async fn retry_later(&self, job: &Job, now: OffsetDateTime, err: &OperationError) {
        tracing::warn!(error = %err, job_id = job.id, kind = job.kind, attempts = job.attempts, "scheduled job failed; will retry");
        let doublings = u32::try_from(job.attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        let wait = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
        let retry_at = timestamp::format(now + wait);
        let recorded = async {
            let mut conn = self.db.acquire().await?;
            jobs::failed(&mut conn, &job.id, &err.to_string(), &retry_at).await
        };
        if let Err(store) = recorded.await {
            tracing::warn!(error = %store, job_id = job.id, "could not record a failed job (its lease runs out instead)");
        }
    }
}

/// The metric label for a stored kind (a closed set).
fn kind_label(kind: &str) -> &'static str {
    KINDS.into_iter().find(|k| *k == kind).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_labelled_from_a_closed_set() {
        assert_eq!(kind_label("project.funding_deadline"), FUNDING_DEADLINE);
        assert_eq!(kind_label("made.up"), "unknown");
    }
}
