//! The append-only audit trail. Callers add a record to the transaction
//! the audited change happens in ([`Tx::audit`]), so the record and the
//! change commit or roll back together.

use sqlx::FromRow;
use uuid::Uuid;

use super::kept::{self, KeptRow, Values};
use super::{DbHandle, StoreError, Tx, timestamp};

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

/// An audit record waiting in its transaction for the commit.
#[derive(Debug)]
pub(super) struct Pending {
    id: String,
    occurred_at: String,
    actor_id: Option<String>,
    action: String,
    target_type: String,
    target_id: Option<String>,
    request_id: Option<String>,
    details: String,
}

impl Pending {
    fn new(event: AuditEvent<'_>) -> Pending {
        Pending {
            id: Uuid::now_v7().to_string(),
            occurred_at: timestamp::now(),
            actor_id: event.actor_id.map(str::to_owned),
            action: event.action.to_owned(),
            target_type: event.target_type.to_owned(),
            target_id: event.target_id.map(str::to_owned),
            request_id: event.request_id.map(str::to_owned),
            details: event.details.to_string(),
        }
    }
}

impl Tx {
    /// Adds a record to the audit trail in this transaction: written by
    /// [`Tx::commit`] with the transaction's other kept rows (one statement,
    /// see [`super::kept`]), or never if the transaction is dropped. The
    /// record's time is now, not the commit's.
    pub fn audit(&mut self, event: AuditEvent<'_>) {
        self.audits.push(Pending::new(event));
    }
}

impl KeptRow for Pending {
    const INSERT: &'static str =
        "insert into audit_events (id, occurred_at, actor_id, action, target_type, target_id, request_id, details)";
    const OPERATION: &'static str = "audit_events.insert";

    fn bind(&self, values: &mut Values) {
        values.add(self.id.as_str());
        values.add(self.occurred_at.as_str());
        values.add(self.actor_id.as_deref());
        values.add(self.action.as_str());
        values.add(self.target_type.as_str());
        values.add(self.target_id.as_deref());
        values.add(self.request_id.as_deref());
        values.add(self.details.as_str());
    }
}

/// Writes a record now, on `db`: for an action that changes nothing else
/// (a failed login, a document viewed). A change records its action with
/// [`Tx::audit`] instead.
pub async fn record(db: &mut impl DbHandle, event: AuditEvent<'_>) -> Result<(), StoreError> {
    let query = kept::insert_one(&Pending::new(event))?;
    let (conn, obs) = db.parts();
    obs.run(Pending::OPERATION, query.execute(conn)).await?;
    Ok(())
}

/// One audited action, as stored and as the admin API answers it.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: String,
    pub occurred_at: String,
    /// Null for the system's own actions (scheduled work, reconciliation).
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// The request that made the change, for its logs and trace.
    pub request_id: Option<String>,
    /// Ids and states, never secrets: a JSON object, stored as its text.
    #[serde(serialize_with = "as_json")]
    #[schema(value_type = Object)]
    pub details: String,
}

/// Writes stored JSON text as the JSON it is.
fn as_json<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => serde::Serialize::serialize(&value, serializer),
        Err(_) => serializer.serialize_none(),
    }
}

/// What to look for in the trail; every field narrows it.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub actor_id: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    /// Inclusive bounds on `occurred_at`, in the stored timestamp format.
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    /// Only records after this one in the list's order (a cursor).
    pub after: Option<&'a str>,
}

/// Up to `limit` records, newest first.
pub async fn list(
    db: &mut impl DbHandle,
    filter: &AuditFilter<'_>,
    limit: i64,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "audit_events.list",
        sqlx::query_as(
            "select id, occurred_at, actor_id, action, target_type, target_id, request_id, details \
             from audit_events where ($1 is null or actor_id = $1) and ($2 is null or target_type = $2) \
             and ($3 is null or target_id = $3) and ($4 is null or occurred_at >= $4) \
             and ($5 is null or occurred_at <= $5) \
             and ($6 is null or (occurred_at, id) < (select occurred_at, id from audit_events where id = $6)) \
             order by occurred_at desc, id desc limit $7",
        )
        .bind(filter.actor_id)
        .bind(filter.target_type)
        .bind(filter.target_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.after)
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// Whether a record with this id exists (to tell an unknown cursor from
/// the end of the trail).
pub async fn exists(db: &mut impl DbHandle, id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String,)> = obs
        .run(
            "audit_events.exists",
            sqlx::query_as("select id from audit_events where id = $1")
                .bind(id)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.is_some())
}
