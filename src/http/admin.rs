//! Admin actions on accounts (search, deactivate, reactivate, reset links),
//! and the audit trail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::UserView;
use super::error::ApiError;
use super::extract::{AdminUser, ApiQuery, Id, IdPath, Page, PageParams};
use crate::state::AppState;
use crate::store::audit::{self, AuditFilter, AuditRecord};
use crate::store::users;

pub const TAG: &str = "admin";

/// Deactivate an account: it can no longer log in, and its tokens stop
/// working at once.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/deactivate", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), responses(
        (status = 200, body = UserView),
        (status = 403, body = super::error::Problem),
        (status = 404, body = super::error::Problem),
        (status = 409, description = "admins cannot deactivate themselves", body = super::error::Problem),
    ))]
pub async fn deactivate_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        super::auth::accounts(&state).deactivate(&admin, &id).await?.into(),
    ))
}

/// Reactivate a deactivated account: it can log in again. Tokens issued
/// before stay void; the user logs in afresh.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reactivate", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), responses(
        (status = 200, body = UserView),
        (status = 403, body = super::error::Problem),
        (status = 404, body = super::error::Problem),
    ))]
pub async fn reactivate_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        super::auth::accounts(&state).reactivate(&admin, &id).await?.into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Who acted (a user id).
    #[param(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<Id>,
    /// What was acted on: user, project, milestone, kyc_submission,
    /// escrow_transaction, webhook_endpoint…
    pub target_type: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// At or before (RFC 3339).
    pub to: Option<String>,
    /// A previous page's `next_cursor`: the records after that one.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
}

/// The audit trail, newest first, filtered by actor, target and time; pages
/// by cursor (`after`), never counted (`total` is null): the trail only
/// grows.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = TAG, security(("bearer" = [])),
    params(AuditQuery, PageParams), responses(
        (status = 200, body = Page<AuditRecord>),
        (status = 403, body = super::error::Problem),
        (status = 422, body = super::error::Problem),
    ))]
pub async fn audit_trail(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<AuditRecord>>, ApiError> {
    Ok(Json(audit_page(&state, &query, page).await?))
}

/// One page of the audit trail (the API's and the console's).
pub async fn audit_page(state: &AppState, query: &AuditQuery, page: PageParams) -> Result<Page<AuditRecord>, ApiError> {
    if page.page.is_some_and(|p| p != 1) {
        return Err(ApiError::unprocessable(
            "the audit trail pages by cursor: pass a page's next_cursor as after, not page",
        ));
    }
    let (_, page_size, limit, _) = page.resolve_with_cursor(true)?;
    let from = super::escrow::parse_time("from", query.from.as_deref())?;
    let to = super::escrow::parse_time("to", query.to.as_deref())?;
    let filter = AuditFilter {
        actor_id: query.actor_id.as_deref(),
        target_type: query.target_type.as_deref(),
        target_id: query.target_id.as_deref(),
        from: from.as_deref(),
        to: to.as_deref(),
        after: query.after.as_deref(),
    };
    let mut conn = state.db.acquire().await?;
    let records = audit::list(&mut conn, &filter, limit).await?;
    if let Some(after) = filter.after
        && records.is_empty()
        && !audit::exists(&mut conn, after).await?
    {
        return Err(ApiError::unprocessable("after must be the id of an audit record"));
    }
    drop(conn);
    Ok(Page::from_rows(records, None, (1, page_size), |r| r.id.clone(), |r| r))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// An account id, or part of an email address (any letter case).
    pub q: String,
    /// A previous page's `next_cursor`: the accounts after that one.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
}

/// Longest search text: an email address's longest form.
pub const MAX_QUERY_CHARS: usize = 254;

/// Find accounts by id or by part of their email, in email order; pages by
/// cursor (`after`), never counted.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = TAG, security(("bearer" = [])),
    params(UserSearch, PageParams), responses(
        (status = 200, body = Page<UserView>),
        (status = 403, body = super::error::Problem),
        (status = 422, body = super::error::Problem),
    ))]
pub async fn search_users(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(search): ApiQuery<UserSearch>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let query = search.q.trim();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::unprocessable(format!(
            "q must be an account id or part of an email, 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    if page.page.is_some_and(|p| p != 1) {
        return Err(ApiError::unprocessable(
            "the search pages by cursor: pass a page's next_cursor as after, not page",
        ));
    }
    let (_, page_size, limit, _) = page.resolve_with_cursor(true)?;
    let mut conn = state.db.acquire().await?;
    let found = users::search(&mut conn, query, search.after.as_deref(), limit).await?;
    drop(conn);
    Ok(Json(Page::from_rows(
        found,
        None,
        (1, page_size),
        |u| u.id.clone(),
        UserView::from,
    )))
}

/// A one-time password-reset link, as issued.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetLink {
    pub user_id: String,
    /// The secret: shown this once, stored only as its digest. Hand it over
    /// out of band; it sets a password once.
    pub token: String,
    /// The console page where the account's owner picks a new password
    /// (relative to this service's address).
    pub reset_path: String,
    /// It stops working then (`PASSWORD_RESET_MINUTES` after issue).
    pub expires_at: String,
}

/// Issue a one-time password-reset link for an account (any earlier unused
/// link for it stops working). Its owner sets a new password with it once,
/// before it expires: on the console's page, or with
/// `POST /api/v1/auth/password-reset`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/password-reset", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), responses(
        (status = 201, body = PasswordResetLink),
        (status = 403, body = super::error::Problem),
        (status = 404, body = super::error::Problem),
        (status = 409, description = "the account is deactivated, or is the admin's own", body = super::error::Problem),
    ))]
pub async fn issue_password_reset(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<(StatusCode, Json<PasswordResetLink>), ApiError> {
    let issued = super::auth::accounts(&state)
        .issue_password_reset(&admin, &id, state.config.console.reset_link_ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasswordResetLink {
            user_id: issued.user.id,
            reset_path: super::console::reset_path(&issued.token),
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}
