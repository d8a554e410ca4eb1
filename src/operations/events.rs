//! Events: what operations emit (the constructors below, one per kind of
//! object) and what the events API reads.
//!
//! An operation emits with `tx.emit(events::milestone(EventType::…, &project,
//! &milestone))` next to its audit record; see [`crate::store::events`] for
//! how the outbox commits with the change.

use serde::Serialize;

use super::OperationError;
use crate::domain::account::Role;
use crate::domain::event::EventType;
use crate::store::Database;
use crate::store::escrow::EscrowTransaction;
use crate::store::events::{self as log, Event, Filter, NewEvent};
use crate::store::projects::{Milestone, Project};
use crate::store::users::User;

fn snapshot(value: &impl Serialize) -> serde_json::Value {
    // Store rows serialize infallibly (strings, integers, enums).
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A project event: the buyer and the seller may read it.
pub fn project(event_type: EventType, project: &Project) -> NewEvent {
    NewEvent {
        event_type,
        user_id: Some(project.buyer_id.clone()),
        counterparty_id: Some(project.seller_id.clone()),
        project_id: Some(project.id.clone()),
        subject_id: project.id.clone(),
        data: snapshot(project),
    }
}

/// A milestone event, read by the project's parties.
pub fn milestone(event_type: EventType, project: &Project, milestone: &Milestone) -> NewEvent {
    NewEvent {
        subject_id: milestone.id.clone(),
        data: snapshot(milestone),
        ..self::project(event_type, project)
    }
}

/// An escrow transaction's event: its user and counterparty may read it.
pub fn transaction(event_type: EventType, record: &EscrowTransaction) -> NewEvent {
    NewEvent {
        event_type,
        user_id: Some(record.user_id.clone()),
        counterparty_id: record.counterparty_id.clone(),
        project_id: record.project_id.clone(),
        subject_id: record.id.clone(),
        data: snapshot(record),
    }
}

/// A KYC decision as an event carries it: ids and the outcome, never the
/// documents or personal data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KycDecision {
    pub id: String,
    pub user_id: String,
    pub status: crate::domain::kyc::KycStatus,
    pub rejection_reason: Option<String>,
    pub reviewed_at: Option<String>,
}

/// A KYC decision's event, read by the person it is about.
pub fn kyc_decision(event_type: EventType, submission: &crate::store::kyc::Submission) -> NewEvent {
    NewEvent {
        event_type,
        user_id: Some(submission.user_id.clone()),
        counterparty_id: None,
        project_id: None,
        subject_id: submission.id.clone(),
        data: snapshot(&KycDecision {
            id: submission.id.clone(),
            user_id: submission.user_id.clone(),
            status: submission.status,
            rejection_reason: submission.rejection_reason.clone(),
            reviewed_at: submission.reviewed_at.clone(),
        }),
    }
}

/// What an event's `data` is, by its `object.type` (for the OpenAPI
/// document; README, "Events and webhooks", maps each event type to one).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EventSnapshot {
    /// `object.type` = `project`: `project.*` events.
    Project(Project),
    /// `milestone`: `milestone.*` events.
    Milestone(Milestone),
    /// `transaction`: `escrow.*` and `wallet.*` events.
    Transaction(EscrowTransaction),
    /// `kyc_submission`: `kyc.*` events.
    Kyc(KycDecision),
}

/// An event as the API shows it and webhooks send it (the same JSON).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// Time-ordered UUID; also the `webhook-id` of its deliveries.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    pub event_type: String,
    pub created_at: String,
    /// What `data` is a snapshot of: `project`, `milestone`, `transaction`
    /// (an escrow transaction) or `kyc_submission`.
    pub object: ObjectRef,
    pub project_id: Option<String>,
    /// The users this event concerns (and who may read it).
    pub parties: Vec<String>,
    /// The object after the change, as its own endpoint shows it (a project
    /// without its milestones).
    #[schema(value_type = EventSnapshot)]
    pub data: serde_json::Value,
    /// The request that caused it (`X-Request-ID`); none for background work.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObjectRef {
    #[serde(rename = "type")]
    pub object_type: String,
    pub id: String,
}

impl From<Event> for EventView {
    fn from(event: Event) -> EventView {
        let data = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::String(event.data));
        EventView {
            id: event.id,
            event_type: event.event_type,
            created_at: event.created_at,
            object: ObjectRef {
                object_type: event.subject_type,
                id: event.subject_id,
            },
            project_id: event.project_id,
            parties: [event.user_id, event.counterparty_id].into_iter().flatten().collect(),
            data,
            request_id: event.request_id,
        }
    }
}

/// One page of the log, oldest first.
#[derive(Debug)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub has_more: bool,
}

/// What a caller asks the log for.
#[derive(Debug, Default)]
pub struct Query<'a> {
    /// The last event of the previous page.
    pub after: Option<&'a str>,
    pub event_type: Option<EventType>,
    pub project_id: Option<&'a str>,
    pub since: Option<&'a str>,
    pub limit: i64,
}

/// Events the caller may see: a party sees the events of their projects,
/// transactions and KYC; an admin sees every event.
pub async fn list(db: &Database, user: &User, query: Query<'_>) -> Result<EventPage, OperationError> {
    let mut conn = db.acquire().await?;
    let after_seq = match query.after {
        Some(id) => Some(log::seq_of(&mut conn, id).await?.ok_or_else(|| {
            OperationError::BadRequest(format!(
                "after: no event {id} (an event older than EVENT_RETENTION_DAYS is pruned; restart from `since`)"
            ))
        })?),
        None => None,
    };
    let filter = Filter {
        visible_to: (user.role != Role::Admin).then_some(user.id.as_str()),
        event_type: query.event_type.map(EventType::as_str),
        project_id: query.project_id,
        since: query.since,
        after_seq,
        limit: query.limit + 1,
    };
    let mut items = log::list(&mut conn, &filter).await?;
    let has_more = items.len() as i64 > query.limit;
    items.truncate(usize::try_from(query.limit).unwrap_or(0));
    Ok(EventPage { items, has_more })
}

/// One event, if the caller may see it (otherwise "not found").
pub async fn get(db: &Database, user: &User, id: &str) -> Result<Event, OperationError> {
    let mut conn = db.acquire().await?;
    let event = log::find(&mut conn, id).await?;
    event
        .filter(|e| {
            user.role == Role::Admin
                || e.user_id.as_deref() == Some(&user.id)
                || e.counterparty_id.as_deref() == Some(&user.id)
        })
        .ok_or(OperationError::NotFound("event"))
}
