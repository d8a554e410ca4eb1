//! Admin actions on accounts.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::auth::UserView;
use super::error::ApiError;
use super::extract::AdminUser;
use super::request_id;
use crate::state::AppState;
use crate::store::audit::{self, AuditEvent};
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
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    if id == admin.id {
        return Err(ApiError::conflict("an admin cannot deactivate their own account"));
    }
    let mut tx = state.db.begin().await?;
    if !users::set_active(&mut tx, &id, false).await? {
        return Err(ApiError::not_found("no such user"));
    }
    let request_id = request_id::current().map(|id| id.to_string());
    audit::record(
        &mut tx,
        AuditEvent {
            actor_id: Some(&admin.id),
            action: "user.deactivated",
            target_type: "user",
            target_id: Some(&id),
            request_id: request_id.as_deref(),
            details: json!({}),
        },
    )
    .await?;
    let user = users::find_by_id(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    tx.commit().await?;
    Ok(Json(user.into()))
}
