//! Database-derived gauges, computed at scrape time so that every replica
//! reports what the database says, not what it happened to see.

use super::StoreError;
use crate::domain::money::Currency;
use crate::state::AppState;
use crate::telemetry::metrics::CurrencyLabels;

/// Reads the current values and sets the gauges. Features add their queries
/// here as their tables arrive.
pub async fn refresh(state: &AppState) -> Result<(), StoreError> {
    let mut conn = state.db.acquire().await?;
    let metrics = &state.metrics;
    metrics.kyc_pending.set(super::kyc::count_pending(&mut conn).await?);
    let totals = super::ledger::escrow_totals(&mut conn).await?;
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
    Ok(())
}
