//! Projects: the agreement between a buyer and a seller. Handlers extract,
//! call one operation in [`crate::operations::projects`], and render.
//! Only the parties (and admins) see a project; anyone else gets 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{AdminUser, ApiJson, ApiQuery, AuthUser, Id, IdPath, Page, PageParams};
use crate::config::ScheduleConfig;
use crate::domain::account::{Email, bounded_text};
use crate::domain::escrow::{MilestoneStatus, ProjectStatus};
use crate::domain::money::{Currency, MinorUnits, Money};
use crate::operations::escrow::Resolution;
use crate::operations::projects::{self, MilestoneTerms, NewProjectTerms, ProjectDetails, SellerRef};
use crate::state::AppState;
use crate::store::escrow::EscrowTransaction;
use crate::store::projects::Milestone;

pub const TAG: &str = "projects";

#[derive(Serialize, ToSchema)]
pub struct MilestoneView {
    pub id: String,
    pub project_id: String,
    pub position: i64,
    pub title: String,
    pub description: Option<String>,
    /// Minor units of the project's currency.
    pub amount: i64,
    pub status: MilestoneStatus,
    pub rejection_reason: Option<String>,
    pub submission_note: Option<String>,
    /// The milestone's own inspection period in seconds; null: its
    /// project's (or the platform's).
    pub inspection_period_seconds: Option<i64>,
    /// While submitted: when the delivery is approved and released if the
    /// buyer neither approves, rejects nor disputes it first.
    pub inspection_deadline: Option<String>,
    /// Paid to the seller so far (minor units).
    pub released_amount: i64,
    /// Given back to the buyer so far (minor units).
    pub refunded_amount: i64,
    /// Still in escrow for this milestone (minor units).
    pub held_amount: i64,
    /// When the seller should deliver it.
    pub due_date: Option<String>,
    /// Past `due_date` and not delivered (pending, funded or rejected).
    pub overdue: bool,
    /// `buyer` or `seller`: who disputed this milestone.
    pub disputed_by: Option<String>,
    pub dispute_reason: Option<String>,
    pub dispute_evidence: Option<String>,
    /// The other party's answer.
    pub dispute_response: Option<String>,
    /// Until then the other party may answer; unanswered, the dispute is
    /// settled for the party who opened it.
    pub dispute_respond_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Milestone> for MilestoneView {
    fn from(m: Milestone) -> MilestoneView {
        MilestoneView {
            held_amount: m.held(),
            // The clock is read only for a milestone with a due date.
            overdue: m.due_date.is_some() && m.is_overdue(&crate::timestamp::now()),
            due_date: m.due_date,
            released_amount: m.released_amount,
            refunded_amount: m.refunded_amount,
            disputed_by: m.disputed_by,
            dispute_reason: m.dispute_reason,
            dispute_evidence: m.dispute_evidence,
            dispute_response: m.dispute_response,
            dispute_respond_by: m.dispute_respond_by,
            id: m.id,
            project_id: m.project_id,
            position: m.position,
            title: m.title,
            description: m.description,
            amount: m.amount,
            status: m.status,
            rejection_reason: m.rejection_reason,
            submission_note: m.submission_note,
            inspection_period_seconds: m.inspection_period_seconds,
            inspection_deadline: m.inspection_deadline,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub buyer_id: String,
    pub seller_id: String,
    pub currency: Currency,
    pub status: ProjectStatus,
    pub dispute_reason: Option<String>,
    /// Sum of the milestones, in minor units.
    pub total_amount: i64,
    pub milestones: Vec<MilestoneView>,
    /// The project's inspection period in seconds; null: the platform's.
    pub inspection_period_seconds: Option<i64>,
    /// Once sent to the seller: when the project is cancelled (and what is
    /// held refunded) if not every milestone is funded by then.
    pub funding_deadline: Option<String>,
    /// When the buyer wants the project done (informational).
    pub due_date: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProjectDetails> for ProjectView {
    fn from(details: ProjectDetails) -> ProjectView {
        let ProjectDetails { project, milestones } = details;
        ProjectView {
            total_amount: milestones.iter().map(|m| m.amount).sum(),
            milestones: milestones.into_iter().map(Into::into).collect(),
            id: project.id,
            title: project.title,
            description: project.description,
            buyer_id: project.buyer_id,
            seller_id: project.seller_id,
            currency: project.currency,
            status: project.status,
            dispute_reason: project.dispute_reason,
            inspection_period_seconds: project.inspection_period_seconds,
            funding_deadline: project.funding_deadline,
            due_date: project.due_date,
            created_at: project.created_at,
            updated_at: project.updated_at,
        }
    }
}

/// Bounded optional text (`None` stays `None`).
pub(super) fn optional_text(field: &'static str, text: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    Ok(text.map(|t| bounded_text(field, t, max)).transpose()?)
}

#[derive(Deserialize, ToSchema)]
pub struct MilestoneInput {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Minor units (integer, or a string of digits).
    pub amount: MinorUnits,
    /// Seconds the buyer has to review a delivery of this milestone before
    /// it is approved and released; omitted: the project's.
    #[schema(minimum = 1, maximum = 7776000)]
    pub inspection_period_seconds: Option<i64>,
    /// When the seller should deliver it (RFC 3339). Undelivered after it,
    /// the milestone is overdue (`overdue=true` in listings, a
    /// `milestone.overdue` event once).
    #[schema(format = DateTime)]
    pub due_date: Option<String>,
}

impl MilestoneInput {
    pub(super) fn checked(&self, currency: Currency, schedule: &ScheduleConfig) -> Result<MilestoneTerms, ApiError> {
        Ok(MilestoneTerms {
            title: bounded_text("milestone title", &self.title, 200)?,
            description: optional_text("description", self.description.as_deref(), 5000)?,
            amount: Money::new(self.amount.0, currency)?.minor,
            inspection_period_seconds: inspection_period(schedule, self.inspection_period_seconds)?,
            due_date: super::escrow::parse_time("due_date", self.due_date.as_deref())?,
        })
    }
}

/// An inspection period a client set, within the platform's bounds.
pub(super) fn inspection_period(schedule: &ScheduleConfig, seconds: Option<i64>) -> Result<Option<i64>, ApiError> {
    seconds
        .map(|s| schedule.check_inspection_period(s))
        .transpose()
        .map_err(ApiError::unprocessable)
}

#[derive(Deserialize, ToSchema)]
pub struct CreateProject {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// The freelancer who will deliver, by id; or give `seller_email`
    /// instead (exactly one of the two).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub seller_id: Option<Id>,
    /// The freelancer's sign-up email, instead of `seller_id`.
    #[schema(format = Email, max_length = 254)]
    pub seller_email: Option<String>,
    pub currency: Currency,
    /// 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    pub milestones: Vec<MilestoneInput>,
    /// Seconds the buyer has to review each delivery before it is approved
    /// and released (a milestone may set its own); omitted: the platform's
    /// `INSPECTION_PERIOD_SECONDS` (7 days unless configured).
    #[schema(minimum = 1, maximum = 7776000)]
    pub inspection_period_seconds: Option<i64>,
    /// When the project should be done (RFC 3339; informational).
    #[schema(format = DateTime)]
    pub due_date: Option<String>,
}

/// A client creates a draft project with a freelancer and its milestones.
#[utoipa::path(post, path = "/api/v1/projects", tag = TAG, security(("bearer" = [])), request_body = CreateProject,
    responses((status = 201, body = ProjectView), (status = 403, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(buyer): AuthUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let terms = NewProjectTerms {
        title: bounded_text("title", &body.title, 200)?,
        description: optional_text("description", body.description.as_deref(), 5000)?,
        seller: match (&body.seller_id, &body.seller_email) {
            (Some(id), None) => SellerRef::Id(id.as_str().to_owned()),
            (None, Some(email)) => SellerRef::Email(Email::parse(email).map_err(|_| {
                ApiError::unprocessable("seller_email must be an email address such as ada@example.com")
            })?),
            _ => {
                return Err(ApiError::unprocessable(
                    "name the freelancer with exactly one of seller_id or seller_email",
                ));
            }
        },
        currency: body.currency,
        milestones: body
            .milestones
            .iter()
            .map(|m| m.checked(body.currency, &state.config.schedule))
            .collect::<Result<Vec<_>, _>>()?,
        inspection_period_seconds: inspection_period(&state.config.schedule, body.inspection_period_seconds)?,
        due_date: super::escrow::parse_time("due_date", body.due_date.as_deref())?,
    };
    let created = projects::create(&state.db, &buyer, terms).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilter {
    /// Only projects in this status.
    pub status: Option<String>,
    /// A cursor: the previous page's `next_cursor`. The page then starts
    /// right after that project, however deep (use it instead of `page`
    /// for long lists: it costs the same on every page).
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
}

/// The caller's projects (as buyer or seller; every project for admins),
/// newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = TAG, security(("bearer" = [])), params(ProjectFilter, PageParams),
    responses((status = 200, body = Page<ProjectView>)))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(filter): ApiQuery<ProjectFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    let status = filter.status.as_deref().map(str::parse::<ProjectStatus>).transpose()?;
    let (page, page_size, limit, offset) = page.resolve_with_cursor(filter.after.is_some())?;
    let window = crate::store::projects::Window {
        limit,
        offset,
        after: filter.after.as_deref(),
    };
    let (items, total) = projects::list(&state.db, &user, status, window).await?;
    Ok(Json(Page::from_rows(
        items,
        total,
        (page, page_size),
        |p| p.project.id.clone(),
        ProjectView::from,
    )))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(projects::get(&state.db, &user, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateProject {
    pub title: Option<String>,
    pub description: Option<String>,
}

/// The buyer edits a draft.
#[utoipa::path(put, path = "/api/v1/projects/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateProject, responses((status = 200, body = ProjectView), (status = 409, description = "not a draft", body = super::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<UpdateProject>,
) -> Result<Json<ProjectView>, ApiError> {
    let title = optional_text("title", body.title.as_deref(), 200)?;
    let description = optional_text("description", body.description.as_deref(), 5000)?;
    let updated = projects::update(&state.db, &user, &id, title.as_deref(), description.as_deref()).await?;
    Ok(Json(updated.into()))
}

/// The buyer deletes a draft.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 409, description = "not a draft", body = super::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    projects::delete(&state.db, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The buyer sends the draft to the seller for acceptance.
#[utoipa::path(post, path = "/api/v1/projects/{id}/send", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn send(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(
        projects::send(&state.db, &user, &id, state.config.schedule.funding_deadline)
            .await?
            .into(),
    ))
}

/// The seller accepts the terms; the buyer can then fund milestones.
#[utoipa::path(post, path = "/api/v1/projects/{id}/accept", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn accept(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(projects::accept(&state.db, &user, &id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct CancelResult {
    pub project: ProjectView,
    /// Refunds made because money was held.
    pub refunds: Vec<EscrowTransaction>,
}

/// Either party cancels: freely before acceptance; once active only while
/// no work has been delivered, and held money goes back to the buyer.
#[utoipa::path(post, path = "/api/v1/projects/{id}/cancel", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CancelResult), (status = 409, body = super::error::Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<CancelResult>, ApiError> {
    let (project, refunds) = projects::cancel(&state.db, &user, &id).await?;
    super::escrow::count(&state, &refunds);
    Ok(Json(CancelResult {
        project: project.into(),
        refunds,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct DisputeRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Either party opens a dispute on an active project; money stays held until
/// an admin resolves it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/dispute", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = DisputeRequest, responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn dispute(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<DisputeRequest>,
) -> Result<Json<ProjectView>, ApiError> {
    let reason = bounded_text("reason", &body.reason, 2000)?;
    Ok(Json(projects::dispute(&state.db, &user, &id, &reason).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionKind {
    /// Everything held goes to the seller.
    Release,
    /// Everything held goes back to the buyer.
    Refund,
    /// `seller_amount` to the seller, the rest to the buyer.
    Split,
}

#[derive(Deserialize, ToSchema)]
pub struct ResolveRequest {
    pub resolution: ResolutionKind,
    /// For `split`: minor units to the seller.
    pub seller_amount: Option<MinorUnits>,
    pub notes: Option<String>,
}

impl ResolveRequest {
    pub(super) fn resolution(&self) -> Result<Resolution, ApiError> {
        match (&self.resolution, &self.seller_amount) {
            (ResolutionKind::Release, _) => Ok(Resolution::ReleaseToSeller),
            (ResolutionKind::Refund, _) => Ok(Resolution::RefundToBuyer),
            (ResolutionKind::Split, Some(amount)) => Ok(Resolution::Split { to_seller: amount.0 }),
            (ResolutionKind::Split, None) => Err(ApiError::unprocessable("seller_amount is required for a split")),
        }
    }
}

/// Admin: settle a disputed project's held money; the project completes.
#[utoipa::path(post, path = "/api/v1/admin/projects/{id}/resolve", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ResolveRequest, responses((status = 200, body = CancelResult), (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn resolve(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<CancelResult>, ApiError> {
    let resolution = body.resolution()?;
    let notes = optional_text("notes", body.notes.as_deref(), 2000)?;
    let (project, moved) = projects::resolve(&state.db, &admin, &id, resolution, notes.as_deref()).await?;
    super::escrow::count(&state, &moved);
    Ok(Json(CancelResult {
        project: project.into(),
        refunds: moved,
    }))
}
