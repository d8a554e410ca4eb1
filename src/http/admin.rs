//! Admin actions on accounts.

use axum::Json;
use axum::extract::State;

use super::auth::UserView;
use super::error::ApiError;
use super::extract::{AdminUser, IdPath};
use crate::state::AppState;

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
