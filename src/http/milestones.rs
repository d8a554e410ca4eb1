//! Milestones: their terms and their delivery. Handlers extract, call one
//! operation in [`crate::operations::milestones`], and render.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{AdminUser, ApiJson, ApiQuery, AuthUser, IdPair, IdPath, Page, PageParams};
use super::projects::{MilestoneInput, MilestoneView, ResolveRequest, TAG, inspection_period, optional_text};
use crate::domain::account::bounded_text;
use crate::domain::escrow::MilestoneStatus;
use crate::operations::milestones;
use crate::operations::projects::MilestoneTerms;
use crate::state::AppState;
use crate::store::dispute_files::DisputeFile;
use crate::store::escrow::EscrowTransaction;

/// The buyer adds a milestone to a draft.
#[utoipa::path(post, path = "/api/v1/projects/{id}/milestones", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = MilestoneInput, responses((status = 201, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn create_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<MilestoneInput>,
) -> Result<(StatusCode, Json<MilestoneView>), ApiError> {
    // The amount's currency is the project's: checked by the operation.
    let terms = MilestoneTerms {
        title: bounded_text("milestone title", &body.title, 200)?,
        description: optional_text("description", body.description.as_deref(), 5000)?,
        amount: body.amount.0,
        inspection_period_seconds: inspection_period(&state.config.schedule, body.inspection_period_seconds)?,
        due_date: super::escrow::parse_time("due_date", body.due_date.as_deref())?,
    };
    let milestone = milestones::create(&state.db, &user, &id, terms).await?;
    Ok((StatusCode::CREATED, Json(milestone.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MilestoneFilter {
    pub status: Option<String>,
    /// true: only milestones past their due date and undelivered; false:
    /// only the others.
    pub overdue: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/milestones", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path), MilestoneFilter, PageParams), responses((status = 200, body = Page<MilestoneView>)))]
pub async fn list_milestones(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiQuery(filter): ApiQuery<MilestoneFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<MilestoneView>>, ApiError> {
    let status = filter
        .status
        .as_deref()
        .map(str::parse::<MilestoneStatus>)
        .transpose()?;
    let (page, page_size, limit, offset) = page.resolve()?;
    let all = milestones::list(&state.db, &user, &id, status, filter.overdue).await?;
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
    IdPath(id): IdPath,
) -> Result<Json<MilestoneView>, ApiError> {
    Ok(Json(milestones::get(&state.db, &user, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMilestone {
    pub title: Option<String>,
    pub description: Option<String>,
    pub amount: Option<crate::domain::money::MinorUnits>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub due_date: Option<String>,
}

/// The buyer edits a milestone of a draft.
#[utoipa::path(put, path = "/api/v1/milestones/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateMilestone, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn update_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<UpdateMilestone>,
) -> Result<Json<MilestoneView>, ApiError> {
    let title = optional_text("title", body.title.as_deref(), 200)?;
    let description = optional_text("description", body.description.as_deref(), 5000)?;
    let amount = body.amount.map(|a| a.0);
    let due_date = super::escrow::parse_time("due_date", body.due_date.as_deref())?;
    let milestone = milestones::update(
        &state.db,
        &user,
        &id,
        title.as_deref(),
        description.as_deref(),
        amount,
        due_date.as_deref(),
    )
    .await?;
    Ok(Json(milestone.into()))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct SubmitRequest {
    /// What was delivered, for the buyer.
    pub note: Option<String>,
}

/// The seller delivers a funded (or rejected) milestone.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/submit", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = SubmitRequest, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem)))]
pub async fn submit_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    body: axum::body::Bytes,
) -> Result<Json<MilestoneView>, ApiError> {
    // The body is optional: no body, or `{"note": "…"}`.
    let request: SubmitRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SubmitRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let note = request.note.map(|n| bounded_text("note", &n, 5000)).transpose()?;
    Ok(Json(
        milestones::submit(
            &state.db,
            &user,
            &id,
            note.as_deref(),
            state.config.schedule.inspection_period,
        )
        .await?
        .into(),
    ))
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
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> Result<Json<MilestoneView>, ApiError> {
    let reason = optional_text("reason", body.reason.as_deref(), 2000)?;
    let milestone = milestones::review(&state.db, &user, &id, body.approve, reason.as_deref()).await?;
    Ok(Json(milestone.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct MilestoneDisputeRequest {
    /// What is wrong, for the other party and the admin.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// Supporting text: what was agreed, what was delivered, links.
    #[schema(max_length = 10000)]
    pub evidence: Option<String>,
}

/// The buyer or the seller disputes one milestone holding money. Its money
/// stays held and its inspection clock stops; the project's other
/// milestones go on. The other party may answer until `dispute_respond_by`
/// (`DISPUTE_RESPONSE_SECONDS`, 3 days by default); unanswered, the dispute
/// is settled for the party who opened it (a buyer's: refunded; a seller's:
/// released). Answered, an admin resolves it.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/dispute", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = MilestoneDisputeRequest, responses((status = 200, body = MilestoneView), (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn dispute_milestone(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<MilestoneDisputeRequest>,
) -> Result<Json<MilestoneView>, ApiError> {
    let reason = bounded_text("reason", &body.reason, 2000)?;
    let evidence = optional_text("evidence", body.evidence.as_deref(), 10_000)?;
    let statement = milestones::DisputeStatement {
        reason: &reason,
        evidence: evidence.as_deref(),
    };
    let disputed =
        milestones::dispute(&state.db, &user, &id, statement, state.config.schedule.dispute_response).await?;
    Ok(Json(disputed.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct DisputeAnswer {
    /// The other party's side.
    #[schema(min_length = 1, max_length = 10000)]
    pub response: String,
}

/// The other party answers a milestone's dispute before `dispute_respond_by`;
/// an admin then resolves it.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/dispute/answer", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = DisputeAnswer, responses((status = 200, body = MilestoneView), (status = 403, body = super::error::Problem), (status = 409, body = super::error::Problem)))]
pub async fn answer_dispute(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<DisputeAnswer>,
) -> Result<Json<MilestoneView>, ApiError> {
    let response = bounded_text("response", &body.response, 10_000)?;
    Ok(Json(
        milestones::answer_dispute(&state.db, &user, &id, &response)
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct MilestoneResolution {
    pub milestone: MilestoneView,
    /// The money moved: the seller's part, then the buyer's.
    pub transactions: Vec<EscrowTransaction>,
}

/// Admin: settle one disputed milestone. `release`: everything it holds to
/// the seller; `refund`: back to the buyer; `split`: `seller_amount` to the
/// seller and the rest to the buyer. Its status says what happened
/// (`released`, `refunded` or `split`).
#[utoipa::path(post, path = "/api/v1/admin/milestones/{id}/resolve", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ResolveRequest, responses((status = 200, body = MilestoneResolution), (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn resolve_milestone(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<MilestoneResolution>, ApiError> {
    let resolution = body.resolution()?;
    let notes = optional_text("notes", body.notes.as_deref(), 2000)?;
    let (milestone, moved) = milestones::resolve_dispute(&state.db, &admin, &id, resolution, notes.as_deref()).await?;
    super::escrow::count(&state, &moved);
    Ok(Json(MilestoneResolution {
        milestone: milestone.into(),
        transactions: moved,
    }))
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EvidenceForm {
    /// A PNG, JPEG or PDF up to 5 MiB, recognised by its content.
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
}

/// A party (or an admin) attaches a file to a milestone's open dispute
/// (multipart field `file`; at most 10 per dispute). Stored sealed; the
/// parties and admins download it.
#[utoipa::path(post, path = "/api/v1/milestones/{id}/dispute/files", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    request_body(content = EvidenceForm, content_type = "multipart/form-data"), responses(
        (status = 201, body = DisputeFile),
        (status = 409, description = "not disputed, or 10 files already", body = super::error::Problem),
        (status = 413, description = "file over 5 MiB", body = super::error::Problem),
        (status = 415, description = "file is not a PNG, JPEG or PDF", body = super::error::Problem),
        (status = 422, body = super::error::Problem),
    ))]
pub async fn add_evidence(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<DisputeFile>), ApiError> {
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::from_status(e.status(), e.body_text()))?
    {
        if field.name() == Some("file") {
            file = super::files::read(field, "file").await?;
        }
    }
    let (kind, bytes) =
        file.ok_or_else(|| ApiError::unprocessable("file is required (a multipart field named file)"))?;
    let sealed = state.sealer.seal(&bytes).map_err(ApiError::internal)?;
    let size = i64::try_from(bytes.len()).map_err(ApiError::internal)?;
    let stored = milestones::attach_evidence(&state.db, &user, &id, kind.content_type(), size, &sealed).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[derive(Serialize, ToSchema)]
pub struct EvidenceList {
    pub items: Vec<DisputeFile>,
}

/// The files attached to a milestone's dispute (descriptions, not bytes).
#[utoipa::path(get, path = "/api/v1/milestones/{id}/dispute/files", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EvidenceList), (status = 404, body = super::error::Problem)))]
pub async fn list_evidence(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<EvidenceList>, ApiError> {
    Ok(Json(EvidenceList {
        items: milestones::evidence(&state.db, &user, &id).await?,
    }))
}

/// One evidence file, as uploaded (a download, never rendered).
#[utoipa::path(get, path = "/api/v1/milestones/{id}/dispute/files/{file_id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path), ("file_id" = String, Path)), responses(
        (status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 404, body = super::error::Problem),
    ))]
pub async fn evidence_file(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPair(id, file_id): IdPair,
) -> Result<Response, ApiError> {
    let (content_type, sealed) = milestones::evidence_file(&state.db, &user, &id, &file_id).await?;
    let bytes = state.sealer.open(&sealed).map_err(ApiError::internal)?;
    super::files::download(&content_type, bytes, &format!("evidence-{file_id}"))
}
