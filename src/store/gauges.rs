//! Database-derived gauges, computed at scrape time so that every replica
//! reports what the database says, not what it happened to see.

use super::StoreError;
use crate::state::AppState;

/// Reads the current values and sets the gauges. Features add their queries
/// here as their tables arrive.
pub async fn refresh(state: &AppState) -> Result<(), StoreError> {
    let mut conn = state.db.acquire().await?;
    state
        .metrics
        .kyc_pending
        .set(super::kyc::count_pending(&mut conn).await?);
    Ok(())
}
