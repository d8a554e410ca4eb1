//! The event log: an outbox written with the change it describes.
//!
//! An operation calls [`Tx::emit`] next to its audit record; the events are
//! kept with the transaction and inserted by [`Tx::commit`], with the audit
//! records, in one statement just before `COMMIT`, so an event exists if and
//! only if its change committed, and a transaction with several events pays
//! for one insert. Events are immutable; only `dispatched_at` is set later, once the
//! webhook worker has created their deliveries.

use sqlx::FromRow;
use uuid::Uuid;

use super::kept::{KeptRow, Values};
use super::{DbHandle, StoreError, Tx, timestamp};
use crate::domain::event::EventType;

/// Wakes the webhook worker of this process when events commit, so a
/// delivery does not wait for its next tick.
pub static WRITTEN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// An event as an operation describes it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    /// The parties who may read it (project events: buyer then seller).
    pub user_id: Option<String>,
    pub counterparty_id: Option<String>,
    pub project_id: Option<String>,
    pub subject_id: String,
    /// A snapshot of the object after the change.
    pub data: serde_json::Value,
}

/// An event waiting in its transaction for the commit.
#[derive(Debug)]
pub(super) struct Pending {
    id: String,
    created_at: String,
    request_id: Option<String>,
    traceparent: Option<String>,
    event: NewEvent,
}

impl Pending {
    pub(super) fn new(event: NewEvent) -> Pending {
        let mut headers = http::HeaderMap::new();
        crate::telemetry::traces::inject_trace(&mut headers);
        Pending {
            id: Uuid::now_v7().to_string(),
            created_at: timestamp::now(),
            request_id: crate::telemetry::request_id::current_string(),
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            event,
        }
    }

    pub(super) fn event_type(&self) -> EventType {
        self.event.event_type
    }
}

impl KeptRow for Pending {
    const INSERT: &'static str = "insert into events (id, type, created_at, user_id, counterparty_id, project_id, \
                                  subject_type, subject_id, order_key, data, request_id, traceparent)";
    const OPERATION: &'static str = "events.insert";

    fn bind(&self, values: &mut Values) {
        let event = &self.event;
        let order_key = event
            .project_id
            .as_deref()
            .or(event.user_id.as_deref())
            .unwrap_or(&event.subject_id);
        values.add(self.id.as_str());
        values.add(event.event_type.as_str());
        values.add(self.created_at.as_str());
        values.add(event.user_id.as_deref());
        values.add(event.counterparty_id.as_deref());
        values.add(event.project_id.as_deref());
        values.add(event.event_type.subject().as_str());
        values.add(event.subject_id.as_str());
        values.add(order_key);
        values.add(event.data.to_string());
        values.add(self.request_id.as_deref());
        values.add(self.traceparent.as_deref());
    }
}

/// A stored event.
#[derive(Debug, Clone, FromRow)]
pub struct Event {
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub user_id: Option<String>,
    pub counterparty_id: Option<String>,
    pub project_id: Option<String>,
    pub subject_type: String,
    pub subject_id: String,
    pub order_key: String,
    pub data: String,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

const SELECT: &str = "select seq, id, type, created_at, user_id, counterparty_id, project_id, subject_type, subject_id, \
                      order_key, data, request_id, traceparent from events";

/// What a list asks for.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Only events this user is a party to (None: every event, for admins).
    pub visible_to: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub project_id: Option<&'a str>,
    /// Created at or after this stored timestamp.
    pub since: Option<&'a str>,
    /// After this event (by `seq`).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// Events in the order they were written, oldest first.
pub async fn list(db: &mut impl DbHandle, filter: &Filter<'_>) -> Result<Vec<Event>, StoreError> {
    // Each optional clause adds one parameter; `$1` is the cursor.
    let mut sql = format!("{SELECT} where seq > $1");
    let mut values: Vec<&str> = Vec::new();
    let clauses = [
        (filter.visible_to, " and (user_id = $n or counterparty_id = $n)"),
        (filter.event_type, " and type = $n"),
        (filter.project_id, " and project_id = $n"),
        (filter.since, " and created_at >= $n"),
    ];
    for (value, clause) in clauses {
        if let Some(value) = value {
            values.push(value);
            sql.push_str(&clause.replace("$n", &format!("${}", values.len() + 1)));
        }
    }
    sql.push_str(&format!(" order by seq limit ${}", values.len() + 2));
    let mut query = sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(sql)).bind(filter.after_seq.unwrap_or(0));
    for value in values {
        query = query.bind(value.to_owned());
    }
    let query = query.bind(filter.limit);
    let (conn, obs) = db.parts();
    obs.run("events.list", query.fetch_all(conn)).await
}

/// The position of an event in the log (for cursors).
pub async fn seq_of(db: &mut impl DbHandle, id: &str) -> Result<Option<i64>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "events.seq_of",
        sqlx::query_scalar("select seq from events where id = $1")
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<Event>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "events.find",
        sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

impl Tx {
    /// Adds an event to this transaction: written by [`Tx::commit`], or
    /// never if the transaction is dropped.
    pub fn emit(&mut self, event: NewEvent) {
        self.events.push(Pending::new(event));
    }
}
