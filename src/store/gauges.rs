//! Database-derived gauges, read from the database (every 5 s, in the
//! background: `http::metrics::refresh_stored_gauges`) so that every
//! replica reports what the database says, not what it happened to see.

use super::StoreError;
use crate::domain::money::Currency;
use crate::telemetry::metrics::{CurrencyLabels, PAYMENT_KINDS, PENDING_AGES, PaymentAgeLabels};

/// Reads the current values and sets the gauges. Features add their queries
/// here as their tables arrive.
pub async fn refresh(
    conn: &mut super::Conn,
    metrics: &crate::telemetry::metrics::Metrics,
    stuck_after: std::time::Duration,
) -> Result<(), StoreError> {
    metrics.kyc_pending.set(super::kyc::count_pending(conn).await?);
    let totals = super::ledger::escrow_totals(conn).await?;
    for currency in Currency::ALL {
        let held = totals
            .iter()
            .find(|(code, _)| code == currency.code())
            .map_or(0, |(_, held)| *held);
        metrics
            .escrow_held
            .get_or_create(&CurrencyLabels {
                currency: currency.code().to_owned(),
            })
            .set(held);
    }
    refresh_pending_payments(conn, metrics, stuck_after).await?;
    refresh_webhooks(conn, metrics).await?;
    refresh_scheduled(conn, metrics).await
}

/// Scheduled jobs due and not done, and how late the earliest is.
async fn refresh_scheduled(
    conn: &mut super::Conn,
    metrics: &crate::telemetry::metrics::Metrics,
) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let (due, earliest) = super::jobs::backlog(conn, &super::timestamp::format(now)).await?;
    for kind in crate::domain::job::KINDS {
        let count = due.iter().find(|(k, _)| k == kind).map_or(0, |(_, c)| *c);
        metrics
            .scheduled_jobs_due
            .get_or_create(&crate::telemetry::metrics::KindLabels { kind })
            .set(count);
    }
    let late = earliest
        .and_then(|at| super::timestamp::parse(&at))
        .map_or(0, |at| (now - at).whole_seconds().max(0));
    metrics.scheduled_jobs_late.set(late);
    Ok(())
}

/// Outbound webhooks: what waits, how old the oldest waiting event is, and
/// endpoints by status.
async fn refresh_webhooks(
    conn: &mut super::Conn,
    metrics: &crate::telemetry::metrics::Metrics,
) -> Result<(), StoreError> {
    let (pending, oldest) = super::deliveries::backlog(conn).await?;
    metrics.webhook_pending.set(pending);
    let age = oldest
        .and_then(|at| super::timestamp::parse(&at))
        .map_or(0, |at| (time::OffsetDateTime::now_utc() - at).whole_seconds().max(0));
    metrics.webhook_oldest_undelivered.set(age);
    let counts = super::webhook_endpoints::count_by_status(conn).await?;
    for status in crate::telemetry::metrics::WEBHOOK_ENDPOINT_STATUSES {
        let count = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, c)| *c);
        metrics
            .webhook_endpoints
            .get_or_create(&crate::telemetry::metrics::StatusLabels { status })
            .set(count);
    }
    Ok(())
}

/// Deposits and withdrawals waiting for the provider, by age, and how many
/// are older than the stuck limit.
async fn refresh_pending_payments(
    conn: &mut super::Conn,
    metrics: &crate::telemetry::metrics::Metrics,
    stuck_after: std::time::Duration,
) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let ago = |d: time::Duration| super::timestamp::format(now - d);
    let bounds = [
        ago(time::Duration::minutes(5)),
        ago(time::Duration::hours(1)),
        ago(time::Duration::hours(24)),
    ];
    let rows = super::escrow::pending_by_age(conn, [&bounds[0], &bounds[1], &bounds[2]]).await?;
    for kind in PAYMENT_KINDS {
        let counts = rows.iter().find(|(k, _)| k == kind).map_or([0; 4], |(_, c)| *c);
        for (age, count) in PENDING_AGES.into_iter().zip(counts) {
            metrics
                .payments_pending
                .get_or_create(&PaymentAgeLabels { kind, age })
                .set(count);
        }
    }
    let stuck_cutoff = ago(time::Duration::try_from(stuck_after).unwrap_or(time::Duration::HOUR));
    metrics
        .payments_stuck
        .set(super::escrow::count_pending_before(conn, &stuck_cutoff).await?);
    Ok(())
}
