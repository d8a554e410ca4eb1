//! Accounts: sign-up, login, the caller's profile, password change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, AuthUser, ClientIp};
use super::request_id;
use crate::auth::passwords;
use crate::domain::account::{Email, Role, bounded_text, check_password_policy, parse_phone};
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::store::audit::{self, AuditEvent};
use crate::store::users::{self, NewUser, ProfileChange, User};

pub const TAG: &str = "auth";

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters, not the email.
    #[schema(example = "correct horse battery")]
    pub password: String,
    #[schema(example = "Ada Obi")]
    pub full_name: String,
    /// `client` (buyer) or `freelancer` (seller). Admins are created from the CLI.
    pub role: Role,
    #[schema(example = "+2348012345678")]
    pub phone_number: Option<String>,
    pub bio: Option<String>,
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
async fn rate_limit(state: &AppState, action: &str, ip: &ClientIp, email: Option<&Email>) -> Result<(), ApiError> {
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
    if body.role == Role::Admin {
        return Err(ApiError::unprocessable("role must be client or freelancer"));
    }
    check_password_policy(&body.password, &email)?;
    let full_name = bounded_text("full_name", &body.full_name, 120)?;
    let phone = body.phone_number.as_deref().map(parse_phone).transpose()?;
    let bio = body.bio.as_deref().map(|b| bounded_text("bio", b, 2000)).transpose()?;
    let hash = passwords::hash(SecretString::from(body.password))
        .await
        .map_err(ApiError::internal)?;

    let mut tx = state.db.begin().await?;
    let user = users::insert(
        &mut tx,
        NewUser {
            email: &email,
            password_hash: &hash,
            full_name: &full_name,
            role: body.role,
            phone_number: phone.as_deref(),
            bio: bio.as_deref(),
        },
    )
    .await?;
    let request_id = request_id::current().map(|id| id.to_string());
    audit::record(
        &mut tx,
        AuditEvent {
            actor_id: Some(&user.id),
            action: "user.signup",
            target_type: "user",
            target_id: Some(&user.id),
            request_id: request_id.as_deref(),
            details: json!({ "role": user.role.as_str() }),
        },
    )
    .await?;
    tx.commit().await?;
    state.metrics.user_registrations.inc();
    tracing::info!(user_id = %user.id, role = user.role.as_str(), "user signed up");
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
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
    let mut conn = state.db.acquire().await?;
    let user = match &email {
        Some(email) => users::find_by_email(&mut conn, email).await?,
        None => None,
    };
    let password = SecretString::from(body.password);
    let matches = passwords::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(user) if matches && user.active => user,
        other => {
            let request_id = request_id::current().map(|id| id.to_string());
            let reason = match &other {
                Some(user) if !user.active => "deactivated",
                Some(_) => "wrong_password",
                None => "unknown_email",
            };
            audit::record(
                &mut conn,
                AuditEvent {
                    actor_id: None,
                    action: "user.login_failed",
                    target_type: "user",
                    target_id: other.as_ref().map(|u| u.id.as_str()),
                    request_id: request_id.as_deref(),
                    details: json!({ "reason": reason, "ip": ip.0.to_string() }),
                },
            )
            .await?;
            tracing::info!(reason, "login failed");
            return Err(ApiError::unauthorized("email or password is incorrect"));
        }
    };
    let access_token = state
        .tokens
        .issue(&user.id, user.role.as_str(), user.token_version)
        .map_err(ApiError::internal)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: state.tokens.ttl_seconds(),
    }))
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
    let mut conn = state.db.acquire().await?;
    users::update_profile(
        &mut conn,
        &user.id,
        ProfileChange {
            full_name: full_name.as_deref(),
            phone_number: phone.as_deref(),
            bio: bio.as_deref(),
        },
    )
    .await?;
    let user = users::find_by_id(&mut conn, &user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the account no longer exists"))?;
    Ok(Json(user.into()))
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
    let current = SecretString::from(body.current_password);
    if !passwords::verify(current, Some(user.password_hash.clone())).await {
        return Err(ApiError::bad_request("current_password is incorrect"));
    }
    let email = Email::parse(&user.email)?;
    check_password_policy(&body.new_password, &email)?;
    let new_password = SecretString::from(body.new_password);
    if passwords::verify(
        SecretString::from(new_password.expose_secret().to_owned()),
        Some(user.password_hash.clone()),
    )
    .await
    {
        return Err(ApiError::unprocessable(
            "new_password must differ from the current password",
        ));
    }
    let hash = passwords::hash(new_password).await.map_err(ApiError::internal)?;
    let mut tx = state.db.begin().await?;
    users::set_password(&mut tx, &user.id, &hash).await?;
    let request_id = request_id::current().map(|id| id.to_string());
    audit::record(
        &mut tx,
        AuditEvent {
            actor_id: Some(&user.id),
            action: "user.password_changed",
            target_type: "user",
            target_id: Some(&user.id),
            request_id: request_id.as_deref(),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    let access_token = state
        .tokens
        .issue(&user.id, user.role.as_str(), user.token_version + 1)
        .map_err(ApiError::internal)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: state.tokens.ttl_seconds(),
    }))
}
