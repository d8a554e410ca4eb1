//! The append-only audit trail. Callers pass the transaction the audited
//! change happens in, so the event and the change commit or roll back together.

use uuid::Uuid;

use super::{DbHandle, StoreError, timestamp};

/// One audited action. `details` is a small JSON object of ids and states,
/// never secrets or personal data.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: serde_json::Value,
}

pub async fn record(db: &mut impl DbHandle, event: AuditEvent<'_>) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "audit_events.insert",
        sqlx::query(
            "insert into audit_events (id, occurred_at, actor_id, action, target_type, target_id, request_id, details) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(timestamp::now())
        .bind(event.actor_id)
        .bind(event.action)
        .bind(event.target_type)
        .bind(event.target_id)
        .bind(event.request_id)
        .bind(event.details.to_string())
        .execute(conn),
    )
    .await?;
    Ok(())
}
