//! Accounts: sign-up, login, the caller's profile, password change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, AuthUser, ClientIp};
use crate::domain::account::{Email, Role, bounded_text, parse_phone};
use crate::operations::accounts::{Accounts, Issued, NewAccount};
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::store::users::{ProfileChange, User};

pub const TAG: &str = "auth";

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// At least 10 characters, not the email.
    #[schema(example = "correct horse battery", min_length = 10, max_length = 1024)]
    pub password: String,
    #[schema(example = "Ada Obi", min_length = 1, max_length = 120)]
    pub full_name: String,
    /// `client` (buyer) or `freelancer` (seller). Admins are created from the CLI.
    #[schema(value_type = SignupRole)]
    pub role: Role,
    #[schema(example = "+2348012345678", max_length = 20)]
    pub phone_number: Option<String>,
    #[schema(max_length = 2000)]
    pub bio: Option<String>,
}

/// The roles a sign-up may ask for (the document's view of `role`: `admin`
/// is refused).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SignupRole {
    Client,
    Freelancer,
}

/// The caller's account, as every account endpoint returns it.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub phone_number: Option<String>,
    pub bio: Option<String>,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            id: user.id,
            email: user.email,
            full_name: user.full_name,
            role: user.role,
            phone_number: user.phone_number,
            bio: user.bio,
            is_active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// Counts one attempt against the caller's IP and, when given, the email.
pub(super) async fn rate_limit(
    state: &AppState,
    action: &str,
    ip: &ClientIp,
    email: Option<&Email>,
) -> Result<(), ApiError> {
    let mut keys = vec![format!("{action}:ip:{}", ip.0)];
    if let Some(email) = email {
        keys.push(format!("{action}:email:{email}"));
    }
    for key in keys {
        if let Verdict::Limited { retry_after } = state.limiter.check(&key).await {
            return Err(ApiError::too_many_requests(retry_after));
        }
    }
    Ok(())
}

/// Create an account.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = TAG, request_body = SignupRequest, responses(
    (status = 201, body = UserView),
    (status = 409, description = "the email is taken (in any letter case)", body = super::error::Problem),
    (status = 422, description = "a field breaks a rule; `detail` names it", body = super::error::Problem),
    (status = 429, description = "too many attempts; see Retry-After", body = super::error::Problem),
))]
pub async fn signup(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let email = Email::parse(&body.email)?;
    rate_limit(&state, "signup", &ip, Some(&email)).await?;
    let new = NewAccount {
        full_name: bounded_text("full_name", &body.full_name, 120)?,
        phone_number: body.phone_number.as_deref().map(parse_phone).transpose()?,
        bio: body.bio.as_deref().map(|b| bounded_text("bio", b, 2000)).transpose()?,
        role: body.role,
        password: body.password,
        email,
    };
    let user = accounts(&state).signup(new).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The account operations, over this state.
pub(super) fn accounts(state: &AppState) -> Accounts<'_> {
    Accounts {
        db: &state.db,
        tokens: &state.tokens,
        metrics: &state.metrics,
    }
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> TokenResponse {
        TokenResponse {
            access_token: issued.access_token,
            token_type: "bearer",
            expires_in: issued.expires_in,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Exchange email and password for an access token.
///
/// A wrong password, an unknown email and a deactivated account get the same
/// status and body, after the same work, so accounts cannot be discovered.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = TAG, request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "email or password incorrect", body = super::error::Problem),
    (status = 429, description = "too many attempts; see Retry-After", body = super::error::Problem),
))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let email = Email::parse(&body.email).ok();
    rate_limit(&state, "login", &ip, email.as_ref()).await?;
    let issued = accounts(&state)
        .login(email.as_ref(), body.password, &ip.0.to_string())
        .await?;
    Ok(Json(issued.into()))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = TAG, security(("bearer" = [])), responses(
    (status = 200, body = UserView),
    (status = 401, body = super::error::Problem),
))]
pub async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(user.into())
}

#[derive(Deserialize, ToSchema)]
pub struct ProfileUpdate {
    pub full_name: Option<String>,
    pub phone_number: Option<String>,
    pub bio: Option<String>,
}

/// Change the caller's name, phone number or bio (omitted fields stay).
#[utoipa::path(put, path = "/api/v1/auth/me", tag = TAG, security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 422, body = super::error::Problem)))]
pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let full_name = body
        .full_name
        .as_deref()
        .map(|n| bounded_text("full_name", n, 120))
        .transpose()?;
    let phone = body.phone_number.as_deref().map(parse_phone).transpose()?;
    let bio = body.bio.as_deref().map(|b| bounded_text("bio", b, 2000)).transpose()?;
    let change = ProfileChange {
        full_name: full_name.as_deref(),
        phone_number: phone.as_deref(),
        bio: bio.as_deref(),
    };
    Ok(Json(accounts(&state).update_profile(&user, change).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password. Every token issued before stops working; the
/// response carries a fresh one.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = TAG, security(("bearer" = [])),
    request_body = ChangePasswordRequest, responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "the current password is wrong", body = super::error::Problem),
        (status = 422, description = "the new password breaks the policy", body = super::error::Problem),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued = accounts(&state)
        .change_password(&user, body.current_password, body.new_password)
        .await?;
    Ok(Json(issued.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    /// The token of a link an admin issued.
    pub token: String,
    pub new_password: String,
}

/// Set a new password with a one-time reset link an admin issued. The link
/// is spent; every token and console session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = TAG, request_body = PasswordResetRequest, responses(
    (status = 204, description = "the password is set; log in with it"),
    (status = 400, description = "the link is unknown, used or expired", body = super::error::Problem),
    (status = 422, description = "the password breaks a rule", body = super::error::Problem),
    (status = 429, description = "too many attempts; see Retry-After", body = super::error::Problem),
))]
pub async fn reset_password(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<StatusCode, ApiError> {
    rate_limit(&state, "password-reset", &ip, None).await?;
    accounts(&state).reset_password(&body.token, body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
