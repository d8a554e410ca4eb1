//! Identity verification: submit, see one's own submissions, resubmit after
//! a rejection; admins review. ID numbers are shown only by their last four
//! characters; documents only to admins.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{AdminUser, ApiJson, ApiQuery, AuthUser, Id, IdPath, Page, PageParams};
use crate::domain::account::bounded_text;
use crate::domain::kyc::{Decision, IdNumber, KycKind, KycStatus};
use crate::operations::kyc::{Kyc, KycForm};
use crate::state::AppState;
use crate::store::kyc::{self, Submission};

pub const TAG: &str = "kyc";

#[derive(Serialize, ToSchema)]
pub struct SubmissionView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: KycKind,
    pub status: KycStatus,
    /// The last four characters of the ID number; the rest is never shown.
    pub id_number_last4: String,
    pub has_document: bool,
    pub rejection_reason: Option<String>,
    pub resubmission_of: Option<String>,
    pub created_at: String,
    pub reviewed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminSubmissionView {
    #[serde(flatten)]
    pub submission: SubmissionView,
    pub user_id: String,
    pub reviewed_by: Option<String>,
}

impl From<Submission> for SubmissionView {
    fn from(s: Submission) -> SubmissionView {
        SubmissionView {
            id: s.id,
            kind: s.kind,
            status: s.status,
            id_number_last4: s.id_number_last4,
            has_document: s.document_id.is_some(),
            rejection_reason: s.rejection_reason,
            resubmission_of: s.resubmission_of,
            created_at: s.created_at,
            reviewed_at: s.reviewed_at,
        }
    }
}

impl From<Submission> for AdminSubmissionView {
    fn from(s: Submission) -> AdminSubmissionView {
        AdminSubmissionView {
            user_id: s.user_id.clone(),
            reviewed_by: s.reviewed_by.clone(),
            submission: s.into(),
        }
    }
}

/// The multipart form of a submission (the OpenAPI description of it).
#[derive(ToSchema)]
#[schema(as = KycForm)]
#[allow(dead_code)]
pub struct KycFormSchema {
    /// `kyc` (a person) or `kyb` (a business).
    #[schema(rename = "type")]
    kind: KycKind,
    /// National ID or passport number.
    nin_or_passport: String,
    /// Optional PNG, JPEG or PDF up to 5 MiB, recognised by its content.
    #[schema(format = Binary, value_type = Option<String>)]
    document: Option<Vec<u8>>,
}

async fn read_form(mut multipart: Multipart) -> Result<KycForm, ApiError> {
    let (mut kind, mut id_number, mut document) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::from_status(e.status(), e.body_text()))?
    {
        match field.name() {
            Some("type") => kind = Some(field.text().await.map_err(|e| ApiError::bad_request(e.body_text()))?),
            Some("nin_or_passport") => {
                id_number = Some(field.text().await.map_err(|e| ApiError::bad_request(e.body_text()))?)
            }
            Some("document") => document = super::files::read(field, "document").await?,
            _ => {}
        }
    }
    let kind: KycKind = kind
        .ok_or_else(|| ApiError::unprocessable("type is required (kyc or kyb)"))?
        .parse()?;
    let id_number = IdNumber::parse(&id_number.ok_or_else(|| ApiError::unprocessable("nin_or_passport is required"))?)?;
    Ok(KycForm {
        kind,
        id_number,
        document,
    })
}

/// The KYC operations, over this state.
pub(super) fn kyc(state: &AppState) -> Kyc<'_> {
    Kyc {
        db: &state.db,
        sealer: &state.sealer,
        metrics: &state.metrics,
    }
}

/// Submit identity details (multipart/form-data).
#[utoipa::path(post, path = "/api/v1/kyc/submit", tag = TAG, security(("bearer" = [])),
    request_body(content = KycFormSchema, content_type = "multipart/form-data"), responses(
        (status = 201, body = SubmissionView),
        (status = 409, description = "a submission is already pending, or the identity is verified", body = super::error::Problem),
        (status = 413, description = "document over 5 MiB", body = super::error::Problem),
        (status = 415, description = "document is not a PNG, JPEG or PDF", body = super::error::Problem),
        (status = 422, body = super::error::Problem),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    multipart: Multipart,
) -> Result<(StatusCode, Json<SubmissionView>), ApiError> {
    let form = read_form(multipart).await?;
    let submission = kyc(&state).submit(&user, form, None).await?;
    Ok((StatusCode::CREATED, Json(submission.into())))
}

/// The caller's submissions, newest first.
#[utoipa::path(get, path = "/api/v1/kyc/status", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Vec<SubmissionView>)))]
pub async fn status(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Vec<SubmissionView>>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let submissions = kyc::list_for_user(&mut conn, &user.id).await?;
    Ok(Json(submissions.into_iter().map(Into::into).collect()))
}

/// Resubmit after a rejection (multipart/form-data, as for submit).
#[utoipa::path(post, path = "/api/v1/kyc/resubmit/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path, description = "the rejected submission")),
    request_body(content = KycFormSchema, content_type = "multipart/form-data"), responses(
        (status = 201, body = SubmissionView),
        (status = 404, description = "no such submission of yours", body = super::error::Problem),
        (status = 409, description = "the submission is not rejected, or another is pending", body = super::error::Problem),
    ))]
pub async fn resubmit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
    multipart: Multipart,
) -> Result<(StatusCode, Json<SubmissionView>), ApiError> {
    let form = read_form(multipart).await?;
    let submission = kyc(&state).resubmit(&user, &id, form).await?;
    Ok((StatusCode::CREATED, Json(submission.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    /// pending (default), approved or rejected.
    pub status: Option<String>,
    /// A previous page's `next_cursor`: the submissions after that one in
    /// the queue's order (oldest first), however deep, without a count
    /// (instead of `page`). It stays valid after that submission is decided.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
}

/// Admin: submissions in one status, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/kyc", tag = TAG, security(("bearer" = [])),
    params(StatusFilter, PageParams), responses(
        (status = 200, body = Page<AdminSubmissionView>),
        (status = 403, body = super::error::Problem),
    ))]
pub async fn admin_list(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(filter): ApiQuery<StatusFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<AdminSubmissionView>>, ApiError> {
    let status: KycStatus = filter.status.as_deref().unwrap_or("pending").parse()?;
    let (page, page_size, limit, offset) = page.resolve_with_cursor(filter.after.is_some())?;
    let mut conn = state.db.acquire().await?;
    let (items, total) = kyc::list_by_status(&mut conn, status, limit, offset, filter.after.as_deref()).await?;
    if let Some(after) = filter.after.as_deref()
        && items.is_empty()
        && kyc::find(&mut conn, after).await?.is_none()
    {
        return Err(ApiError::unprocessable("after must be the id of a KYC submission"));
    }
    drop(conn);
    Ok(Json(Page::from_rows(
        items,
        total,
        (page, page_size),
        |s| s.id.clone(),
        AdminSubmissionView::from,
    )))
}

/// Admin: approve a pending submission (final).
#[utoipa::path(post, path = "/api/v1/admin/kyc/{id}/approve", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), responses(
        (status = 200, body = AdminSubmissionView),
        (status = 404, body = super::error::Problem),
        (status = 409, description = "already decided", body = super::error::Problem),
    ))]
pub async fn approve(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Json<AdminSubmissionView>, ApiError> {
    Ok(Json(kyc(&state).decide(&admin, &id, Decision::Approve).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct RejectRequest {
    /// Shown to the user, so they can fix and resubmit.
    pub reason: String,
}

/// Admin: reject a pending submission with a reason (final for it; the user
/// may resubmit).
#[utoipa::path(post, path = "/api/v1/admin/kyc/{id}/reject", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RejectRequest, responses(
        (status = 200, body = AdminSubmissionView),
        (status = 404, body = super::error::Problem),
        (status = 409, description = "already decided", body = super::error::Problem),
    ))]
pub async fn reject(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<RejectRequest>,
) -> Result<Json<AdminSubmissionView>, ApiError> {
    let reason = bounded_text("reason", &body.reason, 500)?;
    Ok(Json(
        kyc(&state)
            .decide(&admin, &id, Decision::Reject { reason })
            .await?
            .into(),
    ))
}

/// Admin: the submission's document, as uploaded (each look is audited as
/// `kyc.document_viewed`).
#[utoipa::path(get, path = "/api/v1/admin/kyc/{id}/document", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), responses(
        (status = 200, description = "the document bytes", content_type = "application/octet-stream"),
        (status = 404, body = super::error::Problem),
    ))]
pub async fn document(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let (content_type, bytes) = kyc(&state).open_document(&admin, &id).await?;
    super::files::download(&content_type, bytes, &format!("kyc-{id}"))
}
