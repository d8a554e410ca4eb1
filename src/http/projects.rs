//! Projects and milestones: the agreement, its terms and its delivery.
//! Only the parties (and admins) see a project; anyone else gets 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{AdminUser, ApiJson, AuthUser, Page, PageParams};
use crate::domain::account::{Role, bounded_text};
use crate::domain::escrow::{MilestoneStatus, Party, ProjectStatus};
use crate::domain::money::{Currency, MinorUnits, Money};
use crate::escrow::{self, Resolution, locked_milestone, locked_project, party};
use crate::state::AppState;
use crate::store::DbHandle;
use crate::store::escrow::EscrowTransaction;
use crate::store::projects::{self, Milestone, NewMilestone, NewProject, Project};
use crate::store::users::{self, User};

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
    pub created_at: String,
    pub updated_at: String,
}

impl From<Milestone> for MilestoneView {
    fn from(m: Milestone) -> MilestoneView {
        MilestoneView {
            id: m.id,
            project_id: m.project_id,
            position: m.position,
            title: m.title,
            description: m.description,
            amount: m.amount,
            status: m.status,
            rejection_reason: m.rejection_reason,
            submission_note: m.submission_note,
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
    pub created_at: String,
    pub updated_at: String,
}

async fn view(db: &mut impl DbHandle, project: Project) -> Result<ProjectView, ApiError> {
    let milestones = projects::milestones(db, &project.id).await?;
    Ok(ProjectView {
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
        created_at: project.created_at,
        updated_at: project.updated_at,
    })
}

/// Loads a project the caller may see (404 otherwise), unlocked: for reads.
async fn visible_project(db: &mut impl DbHandle, user: &User, id: &str) -> Result<(Project, Party), ApiError> {
    let project = projects::find(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let party = party(&project, user)?;
    Ok((project, party))
}

#[derive(Deserialize, ToSchema)]
pub struct MilestoneInput {
    pub title: String,
    pub description: Option<String>,
    /// Minor units (integer, or a string of digits).
    pub amount: MinorUnits,
}

impl MilestoneInput {
    fn checked(&self, currency: Currency) -> Result<(String, Option<String>, i64), ApiError> {
        let title = bounded_text("milestone title", &self.title, 200)?;
        let description = self
            .description
            .as_deref()
            .map(|d| bounded_text("description", d, 5000))
            .transpose()?;
        let money = Money::new(self.amount.0, currency)?;
        Ok((title, description, money.minor))
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CreateProject {
    pub title: String,
    pub description: Option<String>,
    /// The freelancer who will deliver.
    pub seller_id: String,
    pub currency: Currency,
    /// At least one.
    pub milestones: Vec<MilestoneInput>,
}

/// A client creates a draft project with a freelancer and its milestones.
#[utoipa::path(post, path = "/api/v1/projects", tag = TAG, security(("bearer" = [])), request_body = CreateProject,
    responses((status = 201, body = ProjectView), (status = 403, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(buyer): AuthUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    if buyer.role != Role::Client {
        return Err(ApiError::forbidden("only clients create projects"));
    }
    let title = bounded_text("title", &body.title, 200)?;
    let description = body
        .description
        .as_deref()
        .map(|d| bounded_text("description", d, 5000))
        .transpose()?;
    if body.milestones.is_empty() || body.milestones.len() > 100 {
        return Err(ApiError::unprocessable("milestones must list 1 to 100 milestones"));
    }
    let milestones = body
        .milestones
        .iter()
        .map(|m| m.checked(body.currency))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = state.db.begin().await?;
    let seller = users::find_by_id(&mut tx, &body.seller_id)
        .await?
        .filter(|s| s.active && s.role == Role::Freelancer)
        .ok_or_else(|| ApiError::unprocessable("seller_id must be an active freelancer's id"))?;
    if seller.id == buyer.id {
        return Err(ApiError::unprocessable("the seller cannot be the buyer"));
    }
    let id = projects::insert(
        &mut tx,
        NewProject {
            title: &title,
            description: description.as_deref(),
            buyer_id: &buyer.id,
            seller_id: &seller.id,
            currency: body.currency,
        },
    )
    .await?;
    for (title, description, amount) in &milestones {
        projects::insert_milestone(
            &mut tx,
            &id,
            &NewMilestone {
                title,
                description: description.as_deref(),
                amount: *amount,
            },
        )
        .await?;
    }
    escrow::record_audit(
        &mut tx,
        &buyer,
        "project.created",
        "project",
        &id,
        json!({ "seller_id": seller.id }),
    )
    .await?;
    let project = projects::find(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("project vanished"))?;
    let view = view(&mut tx, project).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilter {
    /// Only projects in this status.
    pub status: Option<String>,
}

/// The caller's projects (as buyer or seller; every project for admins),
/// newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = TAG, security(("bearer" = [])), params(ProjectFilter, PageParams),
    responses((status = 200, body = Page<ProjectView>)))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(filter): Query<ProjectFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    let status = filter.status.as_deref().map(str::parse::<ProjectStatus>).transpose()?;
    let (page, page_size, limit, offset) = page.resolve()?;
    let scope = (user.role != Role::Admin).then_some(user.id.as_str());
    let mut conn = state.db.acquire().await?;
    let (items, total) = projects::list(&mut conn, scope, status, limit, offset).await?;
    let mut views = Vec::with_capacity(items.len());
    for project in items {
        views.push(view(&mut conn, project).await?);
    }
    Ok(Json(Page::new(views, total, page, page_size)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let (project, _) = visible_project(&mut conn, &user, &id).await?;
    Ok(Json(view(&mut conn, project).await?))
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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> Result<Json<ProjectView>, ApiError> {
    let title = body
        .title
        .as_deref()
        .map(|t| bounded_text("title", t, 200))
        .transpose()?;
    let description = body
        .description
        .as_deref()
        .map(|d| bounded_text("description", d, 5000))
        .transpose()?;
    let mut tx = state.db.begin().await?;
    let (project, party) = locked_project(&mut tx, &user, &id).await?;
    if party != Party::Buyer {
        return Err(ApiError::forbidden("only the buyer edits the project"));
    }
    project.status.check_editable()?;
    projects::update_terms(&mut tx, &id, title.as_deref(), description.as_deref()).await?;
    let project = projects::find(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let view = view(&mut tx, project).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// The buyer deletes a draft.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 409, description = "not a draft", body = super::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let (project, party) = locked_project(&mut tx, &user, &id).await?;
    if party != Party::Buyer {
        return Err(ApiError::forbidden("only the buyer deletes the project"));
    }
    project.status.check_editable()?;
    projects::delete_draft(&mut tx, &id).await?;
    escrow::record_audit(&mut tx, &user, "project.deleted", "project", &id, json!({})).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a status transition computed from the current state.
async fn transition(
    state: &AppState,
    user: &User,
    id: &str,
    action: &str,
    reason: Option<&str>,
    next: impl Fn(&Project, Party) -> Result<ProjectStatus, crate::domain::DomainError>,
) -> Result<Json<ProjectView>, ApiError> {
    let mut tx = state.db.begin().await?;
    let (project, party) = locked_project(&mut tx, user, id).await?;
    let to = next(&project, party)?;
    if !projects::set_status(&mut tx, id, project.status, to, reason).await? {
        return Err(ApiError::conflict("the project changed meanwhile; reload it"));
    }
    escrow::record_audit(
        &mut tx,
        user,
        action,
        "project",
        id,
        json!({ "from": project.status.as_str(), "to": to.as_str() }),
    )
    .await?;
    let project = projects::find(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let view = view(&mut tx, project).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// The buyer sends the draft to the seller for acceptance.
#[utoipa::path(post, path = "/api/v1/projects/{id}/send", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn send(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    transition(&state, &user, &id, "project.sent", None, |p, party| {
        p.status.send(party)
    })
    .await
}

/// The seller accepts the terms; the buyer can then fund milestones.
#[utoipa::path(post, path = "/api/v1/projects/{id}/accept", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn accept(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    transition(&state, &user, &id, "project.accepted", None, |p, party| {
        p.status.accept(party)
    })
    .await
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
    Path(id): Path<String>,
) -> Result<Json<CancelResult>, ApiError> {
    let mut tx = state.db.begin().await?;
    let refunds = escrow::cancel(&mut tx, &user, &id).await?;
    let project = projects::find(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let project = view(&mut tx, project).await?;
    tx.commit().await?;
    super::escrow::count(&state, &refunds);
    Ok(Json(CancelResult { project, refunds }))
}

#[derive(Deserialize, ToSchema)]
pub struct DisputeRequest {
    pub reason: String,
}

/// Either party opens a dispute on an active project; money stays held until
/// an admin resolves it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/dispute", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = DisputeRequest, responses((status = 200, body = ProjectView), (status = 409, body = super::error::Problem)))]
pub async fn dispute(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DisputeRequest>,
) -> Result<Json<ProjectView>, ApiError> {
    let reason = bounded_text("reason", &body.reason, 2000)?;
    transition(&state, &user, &id, "project.disputed", Some(&reason), |p, party| {
        if party == Party::Admin {
            return Err(crate::domain::DomainError::conflict(
                "a dispute is opened by the buyer or the seller",
            ));
        }
        p.status.open_dispute()
    })
    .await
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

/// Admin: settle a disputed project's held money; the project completes.
#[utoipa::path(post, path = "/api/v1/admin/projects/{id}/resolve", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ResolveRequest, responses((status = 200, body = CancelResult), (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn resolve(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<CancelResult>, ApiError> {
    let resolution = match (body.resolution, body.seller_amount) {
        (ResolutionKind::Release, _) => Resolution::ReleaseToSeller,
        (ResolutionKind::Refund, _) => Resolution::RefundToBuyer,
        (ResolutionKind::Split, Some(amount)) => Resolution::Split { to_seller: amount.0 },
        (ResolutionKind::Split, None) => return Err(ApiError::unprocessable("seller_amount is required for a split")),
    };
    let notes = body
        .notes
        .as_deref()
        .map(|n| bounded_text("notes", n, 2000))
        .transpose()?;
    let mut tx = state.db.begin().await?;
    let moved = escrow::resolve_dispute(&mut tx, &admin, &id, resolution, notes.as_deref()).await?;
    let project = projects::find(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let project = view(&mut tx, project).await?;
    tx.commit().await?;
    super::escrow::count(&state, &moved);
    Ok(Json(CancelResult {
        project,
        refunds: moved,
    }))
}

/// The buyer adds a milestone to a draft.
#[utoipa::path(post, path = "/api/v1/projects/{id}/milestones", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = MilestoneInput, responses((status = 201, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn create_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MilestoneInput>,
) -> Result<(StatusCode, Json<MilestoneView>), ApiError> {
    let mut tx = state.db.begin().await?;
    let (project, party) = locked_project(&mut tx, &user, &id).await?;
    if party != Party::Buyer {
        return Err(ApiError::forbidden("only the buyer adds milestones"));
    }
    project.status.check_editable()?;
    let (title, description, amount) = body.checked(project.currency)?;
    let milestone_id = projects::insert_milestone(
        &mut tx,
        &id,
        &NewMilestone {
            title: &title,
            description: description.as_deref(),
            amount,
        },
    )
    .await?;
    let milestone = projects::find_milestone(&mut tx, &milestone_id)
        .await?
        .ok_or_else(|| ApiError::internal("milestone vanished"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(milestone.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MilestoneFilter {
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/milestones", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path), MilestoneFilter, PageParams), responses((status = 200, body = Page<MilestoneView>)))]
pub async fn list_milestones(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(filter): Query<MilestoneFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<MilestoneView>>, ApiError> {
    let status = filter
        .status
        .as_deref()
        .map(str::parse::<MilestoneStatus>)
        .transpose()?;
    let (page, page_size, limit, offset) = page.resolve()?;
    let mut conn = state.db.acquire().await?;
    visible_project(&mut conn, &user, &id).await?;
    let all: Vec<Milestone> = projects::milestones(&mut conn, &id)
        .await?
        .into_iter()
        .filter(|m| status.is_none_or(|s| m.status == s))
        .collect();
    let total = all.len() as i64;
    let items = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(Into::into)
        .collect();
    Ok(Json(Page::new(items, total, page, page_size)))
}

#[utoipa::path(get, path = "/api/v1/milestones/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MilestoneView), (status = 404, body = super::error::Problem)))]
pub async fn get_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MilestoneView>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let milestone = projects::find_milestone(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such milestone"))?;
    visible_project(&mut conn, &user, &milestone.project_id)
        .await
        .map_err(|_| ApiError::not_found("no such milestone"))?;
    Ok(Json(milestone.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMilestone {
    pub title: Option<String>,
    pub description: Option<String>,
    pub amount: Option<MinorUnits>,
}

/// The buyer edits a milestone of a draft.
#[utoipa::path(put, path = "/api/v1/milestones/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateMilestone, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn update_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateMilestone>,
) -> Result<Json<MilestoneView>, ApiError> {
    let mut tx = state.db.begin().await?;
    let (project, party, _) = locked_milestone(&mut tx, &user, &id).await?;
    if party != Party::Buyer {
        return Err(ApiError::forbidden("only the buyer edits milestones"));
    }
    project.status.check_editable()?;
    let title = body
        .title
        .as_deref()
        .map(|t| bounded_text("title", t, 200))
        .transpose()?;
    let description = body
        .description
        .as_deref()
        .map(|d| bounded_text("description", d, 5000))
        .transpose()?;
    let amount = body
        .amount
        .map(|a| Money::new(a.0, project.currency))
        .transpose()?
        .map(|m| m.minor);
    projects::update_milestone(&mut tx, &id, title.as_deref(), description.as_deref(), amount).await?;
    let milestone = projects::find_milestone(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such milestone"))?;
    tx.commit().await?;
    Ok(Json(milestone.into()))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct SubmitRequest {
    /// What was delivered, for the buyer.
    pub note: Option<String>,
}

async fn milestone_transition(
    state: &AppState,
    user: &User,
    id: &str,
    action: &str,
    note: Option<&str>,
    reason: Option<&str>,
    next: impl Fn(MilestoneStatus, Party) -> Result<MilestoneStatus, crate::domain::DomainError>,
) -> Result<Json<MilestoneView>, ApiError> {
    let mut tx = state.db.begin().await?;
    let (project, party, milestone) = locked_milestone(&mut tx, user, id).await?;
    project.status.check_active(action)?;
    let to = next(milestone.status, party)?;
    if !projects::set_milestone_status(&mut tx, id, milestone.status, to, note, reason).await? {
        return Err(ApiError::conflict("the milestone changed meanwhile; reload it"));
    }
    escrow::record_audit(
        &mut tx,
        user,
        action,
        "milestone",
        id,
        json!({ "from": milestone.status.as_str(), "to": to.as_str() }),
    )
    .await?;
    let milestone = projects::find_milestone(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such milestone"))?;
    tx.commit().await?;
    Ok(Json(milestone.into()))
}

/// The seller delivers a funded (or rejected) milestone.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/submit", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = SubmitRequest, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn submit_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<MilestoneView>, ApiError> {
    // The body is optional: no body, or `{"note": "…"}`.
    let request: SubmitRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SubmitRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let note = request.note.map(|n| bounded_text("note", &n, 5000)).transpose()?;
    milestone_transition(
        &state,
        &user,
        &id,
        "milestone.submitted",
        note.as_deref(),
        None,
        |status, party| status.submit(party),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct ReviewRequest {
    /// true approves; false rejects (back to the seller) and needs a reason.
    pub approve: bool,
    pub reason: Option<String>,
}

/// The buyer approves a submitted milestone (ready for release) or rejects
/// it with a reason.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/approve", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ReviewRequest, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn review_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> Result<Json<MilestoneView>, ApiError> {
    let reason = match (body.approve, body.reason.as_deref()) {
        (false, Some(reason)) => Some(bounded_text("reason", reason, 2000)?),
        (false, None) => return Err(ApiError::unprocessable("reason is required to reject a milestone")),
        (true, _) => None,
    };
    let action = if body.approve {
        "milestone.approved"
    } else {
        "milestone.rejected"
    };
    milestone_transition(&state, &user, &id, action, None, reason.as_deref(), |status, party| {
        status.review(party, body.approve)
    })
    .await
}
