//! Reconciliation: asks the payment provider about every deposit and
//! withdrawal still `pending` after `RECONCILE_MIN_AGE_SECONDS`, and settles
//! it from the answer through the same [`Payments::apply`] as requests and
//! webhooks.
//!
//! - Safe with several replicas on one database: a worker first takes a
//!   short lease on a record (a compare-and-set on `lease_until`), so one
//!   replica at a time asks about it; settling is itself a compare-and-set,
//!   so even a lease that expired mid-call cannot settle twice.
//! - Survives kill -9: nothing is held in memory; a record whose worker died
//!   is picked up again when its lease runs out.
//! - What the provider has never heard of: a deposit's checkout older than
//!   `DEPOSIT_EXPIRY_SECONDS` is failed (nothing can be paid into a checkout
//!   that does not exist); a payout is sent again under the same reference,
//!   which the provider deduplicates (FinCra answers
//!   `DUPLICATE_CUSTOMER_REFERENCE` if it did receive it).
//! - Records pending longer than `PAYMENT_STUCK_AFTER_SECONDS` are counted
//!   (`amani_payments_stuck`) and alerted on (`PaymentStuck`).
//!
//! `amani reconcile [--dry-run]` runs one pass by hand and prints the report.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;

use super::payments::{Applied, Payments};
use crate::alerts::{Alert, Severity};
use crate::domain::payment::{PaymentKind, Settlement, decide};
use crate::operations::OperationError;
use crate::store::escrow::{self as records, EscrowTransaction};
use crate::store::timestamp;
use crate::telemetry::metrics::ReconcileLabels;

/// How long one worker may hold a record before another may try.
pub const LEASE: Duration = Duration::from_secs(120);
/// Records looked at in one pass (the next pass takes the rest).
pub const BATCH: i64 = 100;

/// One record looked at, and what happened.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileItem {
    pub reference: String,
    pub kind: String,
    pub amount: i64,
    pub currency: String,
    pub age_seconds: i64,
    /// What the provider said: succeeded, failed, pending, not_found, or
    /// the error when it could not be asked.
    pub provider_says: String,
    /// completed, failed, reversed, review, still_pending, resent, skipped
    /// (another worker has it), error; with `--dry-run`, `would_…`.
    pub action: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    pub dry_run: bool,
    pub examined: usize,
    pub settled: usize,
    pub still_pending: usize,
    pub errors: usize,
    /// Pending longer than the stuck limit after this pass.
    pub stuck: i64,
    pub items: Vec<ReconcileItem>,
}

fn provider_says(settlement: &Result<Settlement, String>) -> String {
    match settlement {
        Ok(Settlement::Succeeded { variance: None, .. }) => "succeeded".into(),
        Ok(Settlement::Succeeded {
            variance: Some(variance),
            ..
        }) => format!("succeeded ({variance})"),
        Ok(Settlement::Failed { reason }) => format!("failed ({reason})"),
        Ok(Settlement::Pending) => "pending".into(),
        Ok(Settlement::NotFound) => "not_found".into(),
        Err(err) => format!("error ({err})"),
    }
}

impl Payments {
    /// One pass over the pending records that are due.
    pub async fn reconcile_once(&self, dry_run: bool) -> Result<ReconcileReport, OperationError> {
        let span = tracing::info_span!("payment.reconcile", otel.name = "payment.reconcile", dry_run);
        self.reconcile_pass(dry_run).instrument(span).await
    }

    async fn reconcile_pass(&self, dry_run: bool) -> Result<ReconcileReport, OperationError> {
        let now = OffsetDateTime::now_utc();
        let min_age = time::Duration::try_from(self.reconcile.min_age).unwrap_or(time::Duration::MINUTE);
        let due = {
            let mut conn = self.db.acquire().await?;
            records::pending_due(
                &mut conn,
                &timestamp::format(now - min_age),
                &timestamp::format(now),
                BATCH,
            )
            .await?
        };
        let mut report = ReconcileReport {
            dry_run,
            ..ReconcileReport::default()
        };
        for record in due {
            let item = self.reconcile_record(&record, now, dry_run).await;
            report.examined += 1;
            match item.action.as_str() {
                "completed" | "failed" | "reversed" | "review" => report.settled += 1,
                "error" => report.errors += 1,
                _ => report.still_pending += 1,
            }
            report.items.push(item);
        }
        let stuck_cutoff = now - time::Duration::try_from(self.reconcile.stuck_after).unwrap_or(time::Duration::HOUR);
        let mut conn = self.db.acquire().await?;
        report.stuck = records::count_pending_before(&mut conn, &timestamp::format(stuck_cutoff)).await?;
        Ok(report)
    }

    async fn reconcile_record(&self, record: &EscrowTransaction, now: OffsetDateTime, dry_run: bool) -> ReconcileItem {
        let age_seconds = timestamp::parse(&record.created_at).map_or(0, |created| (now - created).whole_seconds());
        let mut item = ReconcileItem {
            reference: record.id.clone(),
            kind: record.kind.to_string(),
            amount: record.amount,
            currency: record.currency.to_string(),
            age_seconds,
            provider_says: String::new(),
            action: String::new(),
        };
        let Some(kind) = PaymentKind::of(record.kind) else {
            item.action = "error".into();
            return item;
        };
        if !dry_run {
            match self.take_lease(&record.id, now).await {
                Ok(true) => {}
                Ok(false) => {
                    item.action = "skipped".into();
                    return item;
                }
                Err(err) => {
                    item.provider_says = format!("error ({err})");
                    item.action = "error".into();
                    return item;
                }
            }
        }
        let answer = self.look_up(kind, record).await.map_err(|e| e.to_string());
        item.provider_says = provider_says(&answer);
        let outcome = match answer {
            Err(_) => Err("error"),
            Ok(settlement) => self.act_on(kind, record, settlement, age_seconds, dry_run).await,
        };
        item.action = match outcome {
            Ok(action) => action,
            Err(action) => action.to_owned(),
        };
        if !dry_run {
            self.count_reconciled(kind, &item.action);
            // A record that stays pending frees its lease for the next pass.
            if !matches!(item.action.as_str(), "completed" | "failed" | "reversed" | "review")
                && let Ok(mut conn) = self.db.acquire().await
            {
                let _ = records::release_lease(&mut conn, &record.id).await;
            }
        }
        item
    }

    async fn take_lease(&self, reference: &str, now: OffsetDateTime) -> Result<bool, OperationError> {
        let mut conn = self.db.acquire().await?;
        let until = now + time::Duration::try_from(LEASE).unwrap_or(time::Duration::MINUTE);
        Ok(records::take_lease(&mut conn, reference, &timestamp::format(now), &timestamp::format(until)).await?)
    }

    /// What to do with the provider's answer about a due record.
    async fn act_on(
        &self,
        kind: PaymentKind,
        record: &EscrowTransaction,
        settlement: Settlement,
        age_seconds: i64,
        dry_run: bool,
    ) -> Result<String, &'static str> {
        let expired = age_seconds >= i64::try_from(self.reconcile.deposit_expiry.as_secs()).unwrap_or(i64::MAX);
        let settlement = match (kind, settlement) {
            (PaymentKind::Deposit, Settlement::NotFound) if expired => Settlement::Failed {
                reason: "the provider has no checkout for this reference and it has expired".into(),
            },
            (PaymentKind::Withdrawal, Settlement::NotFound) => {
                if dry_run {
                    return Ok("would_resend".into());
                }
                tracing::warn!(reference = %record.id, "the provider has no payout for this reference; sending it again under the same reference");
                match self.send_payout(&record.id).await {
                    Ok(settlement) => match self.apply(&record.id, &settlement, None).await {
                        Ok(Applied::Settled(settled)) => return Ok(settled.status.to_string()),
                        Ok(_) => return Ok("resent".into()),
                        Err(_) => return Err("error"),
                    },
                    Err(_) => return Err("error"),
                }
            }
            (_, settlement) => settlement,
        };
        if dry_run {
            let decision = decide(kind, record.amount, &settlement);
            return Ok(match decision.status(kind) {
                Some(status) => format!("would_{status}"),
                None => "still_pending".into(),
            });
        }
        match self.apply(&record.id, &settlement, None).await {
            Ok(Applied::Settled(settled)) => Ok(settled.status.to_string()),
            Ok(Applied::Waiting(_)) => Ok("still_pending".into()),
            Ok(Applied::AlreadySettled(_)) => Ok("skipped".into()),
            Err(err) => {
                tracing::warn!(reference = %record.id, error = %err, "reconciliation could not settle a record");
                Err("error")
            }
        }
    }

    fn count_reconciled(&self, kind: PaymentKind, action: &str) {
        let outcome = match action {
            "completed" => "completed",
            "failed" | "reversed" => "failed",
            "review" => "review",
            "resent" => "resent",
            "error" => "error",
            _ => "still_pending",
        };
        self.metrics
            .payments_reconciled
            .get_or_create(&ReconcileLabels {
                kind: kind.as_str(),
                outcome,
            })
            .inc();
    }

    /// The worker: a pass every `RECONCILE_INTERVAL_SECONDS` until stopped;
    /// `PaymentStuck` is triggered while records are stuck, resolved when
    /// none are.
    pub async fn run_reconciliation(self: std::sync::Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut stuck_alert: Option<Alert> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.reconcile.interval) => {}
                _ = stop.changed() => return,
            }
            let report = match self.reconcile_once(false).await {
                Ok(report) => report,
                Err(err) => {
                    tracing::warn!(error = %err, "reconciliation pass failed");
                    continue;
                }
            };
            if report.examined > 0 {
                tracing::info!(
                    examined = report.examined,
                    settled = report.settled,
                    still_pending = report.still_pending,
                    errors = report.errors,
                    "reconciliation pass"
                );
            }
            match (report.stuck > 0, stuck_alert.take()) {
                (true, previous) => {
                    let alert = Alert::trigger(
                        self.environment,
                        "payment_stuck",
                        "PaymentStuck",
                        Severity::Error,
                        format!(
                            "{} deposit(s) or withdrawal(s) pending for more than {} s",
                            report.stuck,
                            self.reconcile.stuck_after.as_secs()
                        ),
                    )
                    .detail("runbook", "docs/runbooks/payments.md#a-payment-is-stuck");
                    if previous.is_none() {
                        tracing::warn!(stuck = report.stuck, "payments stuck in pending");
                    }
                    self.alerts.send(alert.clone());
                    stuck_alert = Some(alert);
                }
                (false, Some(alert)) => {
                    self.alerts
                        .send(alert.resolved("no payment is stuck in pending any more"));
                }
                (false, None) => {}
            }
        }
    }
}
