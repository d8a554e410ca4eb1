//! The events API (a party reads the events of what they can see; an admin
//! reads all) and the admin API for outbound webhook endpoints. Handlers
//! extract, call [`crate::operations::events`] or
//! [`crate::operations::webhooks`], and render.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::escrow::parse_time;
use super::extract::{AdminUser, ApiJson, ApiQuery, AuthUser, Id, IdPath};
use crate::domain::event::EventType;
use crate::operations::events::{self, EventView};
use crate::operations::webhooks::{Replay, Webhooks, event_types_list};
use crate::state::AppState;
use crate::store::deliveries::Attempt;
use crate::store::webhook_endpoints::Endpoint;

pub const TAG: &str = "events";
pub const ADMIN_TAG: &str = "webhook-endpoints";
const MAX_LIMIT: i64 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// The `next_cursor` of the previous page: events after that one.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<i64>,
    /// One event type, e.g. `milestone.funded`.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub event_type: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<Id>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
}

/// A page of events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub has_more: bool,
    /// Pass as `after` for the next page; null when there is none yet
    /// (poll again later with the last event's id).
    pub next_cursor: Option<String>,
}

fn limit(raw: Option<i64>, default: i64) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(default);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::unprocessable(format!("limit must be from 1 to {MAX_LIMIT}")))
    }
}

/// Events, oldest first: the catch-up feed after a webhook outage. Ids
/// grow with time but a transaction that commits late can add an event
/// behind a cursor; to miss nothing, re-read from `since` a minute before
/// your last event and drop the ids you have.
#[utoipa::path(get, path = "/api/v1/events", tag = TAG, security(("bearer" = [])), params(EventFilter),
    responses((status = 200, body = EventPage), (status = 400, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = limit(filter.limit, 50)?;
    let event_type = filter
        .event_type
        .as_deref()
        .map(|t| {
            EventType::parse(t).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "type: unknown event type {t:?} (README, \"Events and webhooks\")"
                ))
            })
        })
        .transpose()?;
    let since = parse_time("since", filter.since.as_deref())?;
    let page = events::list(
        &state.db,
        &user,
        events::Query {
            after: filter.after.as_ref().map(Id::as_str),
            event_type,
            project_id: filter.project_id.as_ref().map(Id::as_str),
            since: since.as_deref(),
            limit,
        },
    )
    .await?;
    let next_cursor = page.has_more.then(|| page.items.last().map(|e| e.id.clone())).flatten();
    Ok(Json(EventPage {
        items: page.items.into_iter().map(Into::into).collect(),
        has_more: page.has_more,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EventView), (status = 404, body = super::error::Problem)))]
pub async fn get_event(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(events::get(&state.db, &user, &id).await?.into()))
}

fn webhooks(state: &AppState) -> Webhooks<'_> {
    Webhooks {
        db: &state.db,
        sealer: &state.sealer,
        config: &state.config.webhooks,
    }
}

#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// `["*"]` for every type.
    pub event_types: Vec<String>,
    /// enabled, failing (still tried) or disabled.
    pub status: String,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i64,
    pub failing_since: Option<String>,
    /// Until then the previous secret also signs (after a rotation).
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> EndpointView {
        EndpointView {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: if e.event_types == "*" {
                vec!["*".into()]
            } else {
                event_types_list(&e.event_types)
            },
            status: e.status,
            disabled_reason: e.disabled_reason,
            consecutive_failures: e.consecutive_failures,
            failing_since: e.failing_since,
            previous_secret_expires_at: e.previous_expires_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CreateEndpoint {
    /// https in production; loopback and private addresses only where
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS` allows.
    pub url: String,
    /// Event types to send, or `["*"]` for all.
    pub event_types: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// An endpoint with its secret: shown once, at creation or rotation.
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

#[utoipa::path(post, path = "/api/v1/admin/webhook-endpoints", tag = ADMIN_TAG, security(("bearer" = [])), request_body = CreateEndpoint,
    responses((status = 201, body = EndpointWithSecret), (status = 403, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let created = webhooks(&state)
        .create(&body.url, &body.event_types, body.description.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret {
            endpoint: created.endpoint.into(),
            secret: created.secret,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
}

#[utoipa::path(get, path = "/api/v1/admin/webhook-endpoints", tag = ADMIN_TAG, security(("bearer" = [])),
    responses((status = 200, body = EndpointList), (status = 403, body = super::error::Problem)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
) -> Result<Json<EndpointList>, ApiError> {
    let items = webhooks(&state).list().await?;
    Ok(Json(EndpointList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/webhook-endpoints/{id}", tag = ADMIN_TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = super::error::Problem)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(webhooks(&state).get(&id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// false disables it (nothing is sent; deliveries wait); true enables
    /// it again and forgets its failures.
    pub enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/admin/webhook-endpoints/{id}", tag = ADMIN_TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateEndpoint,
    responses((status = 200, body = EndpointView), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<UpdateEndpoint>,
) -> Result<Json<EndpointView>, ApiError> {
    let updated = webhooks(&state)
        .update(
            &id,
            body.url.as_deref(),
            body.event_types.as_deref(),
            body.description.as_deref(),
            body.enabled,
        )
        .await?;
    Ok(Json(updated.into()))
}

#[utoipa::path(delete, path = "/api/v1/admin/webhook-endpoints/{id}", tag = ADMIN_TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "deleted with its deliveries and attempts"), (status = 404, body = super::error::Problem)))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    webhooks(&state).delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new `whsec_…` secret, shown once.
    pub secret: String,
    /// Until then deliveries carry a signature with the old secret too.
    pub previous_secret_expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/admin/webhook-endpoints/{id}/rotate-secret", tag = ADMIN_TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404, body = super::error::Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Json<RotatedSecret>, ApiError> {
    let (secret, until) = webhooks(&state).rotate(&id).await?;
    Ok(Json(RotatedSecret {
        secret,
        previous_secret_expires_at: until,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptFilter {
    #[param(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<Id>,
    /// The id of the last attempt of the previous page.
    #[param(value_type = Option<String>, format = Uuid)]
    pub before: Option<Id>,
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    /// Newest first.
    pub items: Vec<Attempt>,
}

/// Delivery attempts to an endpoint: outcome, status code, latency and the
/// start of the answer.
#[utoipa::path(get, path = "/api/v1/admin/webhook-endpoints/{id}/attempts", tag = ADMIN_TAG, security(("bearer" = [])),
    params(("id" = String, Path), AttemptFilter),
    responses((status = 200, body = AttemptList), (status = 404, body = super::error::Problem)))]
pub async fn attempts(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
    ApiQuery(filter): ApiQuery<AttemptFilter>,
) -> Result<Json<AttemptList>, ApiError> {
    let items = webhooks(&state)
        .attempts(
            &id,
            filter.event_id.as_ref().map(Id::as_str),
            filter.before.as_ref().map(Id::as_str),
            limit(filter.limit, 50)?,
        )
        .await?;
    Ok(Json(AttemptList { items }))
}

/// One event (`event_id`) or a time range (`since`, `until`).
#[derive(Deserialize, ToSchema)]
pub struct ReplayRequest {
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<Id>,
    /// RFC 3339, included.
    pub since: Option<String>,
    /// RFC 3339, excluded.
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayAnswer {
    /// Events queued for delivery again (from their first attempt).
    pub queued: usize,
}

/// Sends events to the endpoint again, with their original `webhook-id`.
#[utoipa::path(post, path = "/api/v1/admin/webhook-endpoints/{id}/replay", tag = ADMIN_TAG, security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, body = ReplayAnswer), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn replay(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayAnswer>), ApiError> {
    let since = parse_time("since", body.since.as_deref())?;
    let until = parse_time("until", body.until.as_deref())?;
    let what = match (&body.event_id, &since, &until) {
        (Some(event), None, None) => Replay::Event(event.as_str()),
        (None, Some(since), Some(until)) if since < until => Replay::Range { since, until },
        (None, Some(_), Some(_)) => return Err(ApiError::unprocessable("since must be before until")),
        _ => {
            return Err(ApiError::unprocessable(
                "name one event (event_id) or a range (since and until), not both",
            ));
        }
    };
    let queued = webhooks(&state).replay(&id, what).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayAnswer { queued })))
}
