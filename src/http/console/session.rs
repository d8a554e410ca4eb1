//! Logging in and out of the console, and the page where an account's owner
//! uses a password-reset link.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{COOKIE, Console, ConsoleError, document};
use crate::auth::secret;
use crate::domain::account::{Email, Role};
use crate::http::extract::ClientIp;
use crate::state::AppState;
use crate::store::console as sessions;

/// Where the owner of a reset link sets a new password.
pub fn reset_path(token: &str) -> String {
    format!("/console/password-reset?token={token}")
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to `path`,
/// Secure behind TLS. (Values are base64url tokens or empty: always valid
/// in a header.)
fn cookie(state: &AppState, name: &str, value: &str, path: &str, max_age_seconds: u64) -> HeaderValue {
    let secure = if state.config.console.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn session_cookie(state: &AppState, token: &str, max_age_seconds: u64) -> HeaderValue {
    cookie(state, COOKIE, token, "/console", max_age_seconds)
}

/// Tells the browser to forget the session cookie.
pub fn clear_cookie(state: &AppState) -> [(header::HeaderName, HeaderValue); 1] {
    [(header::SET_COOKIE, session_cookie(state, "", 0))]
}

/// The login form's own CSRF cookie (before there is a session): the form
/// carries the same random value, which another site can neither read nor
/// set, so nobody can log a browser into an account of their choosing.
const LOGIN_COOKIE: &str = "amani_console_login";

fn login_cookie(state: &AppState, token: &str, max_age_seconds: u64) -> HeaderValue {
    cookie(state, LOGIN_COOKIE, token, "/console/login", max_age_seconds)
}

/// The login page with a fresh login token in its cookie and its form.
fn login_response(state: &AppState, status: StatusCode, email: &str, error: Option<&str>) -> Response {
    let Some(token) = secret::new_token() else {
        return ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    (
        status,
        [(header::SET_COOKIE, login_cookie(state, &token, 3600))],
        login_form(&token, email, error),
    )
        .into_response()
}

fn login_form(login_token: &str, email: &str, error: Option<&str>) -> Markup {
    document(
        "Log in",
        None,
        html! {
            h1 { "Amani console" }
            @if let Some(error) = error {
                p class="error" role="alert" id="login-error" { (error) }
            }
            form method="post" action="/console/login" class="card narrow" {
                input type="hidden" name="login_token" value=(login_token);
                label for="email" { "Email" }
                input id="email" name="email" type="email" autocomplete="username" required value=(email)
                    aria-describedby=[error.map(|_| "login-error")];
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    )
}

pub async fn login_page(State(state): State<AppState>) -> Response {
    login_response(&state, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Checks the credentials as `POST /api/v1/auth/login` does (rate limit,
/// lockout, audit); an admin gets a session, anyone else a 403. The form
/// must carry the token its page set in the login cookie.
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = super::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !secret::same(&form.login_token, expected) {
        let detail = "The login form had expired or did not come from this page; log in again.";
        return login_response(&state, StatusCode::FORBIDDEN, &form.email, Some(detail));
    }
    match start_session(&state, &ip, form.email.clone(), form.password).await {
        Ok(cookie) => (
            // Two cookies: `AppendHeaders`, as an array of pairs replaces.
            AppendHeaders([
                (header::SET_COOKIE, cookie),
                (header::SET_COOKIE, login_cookie(&state, "", 0)),
            ]),
            Redirect::to("/console"),
        )
            .into_response(),
        Err(err) if err.status == StatusCode::UNAUTHORIZED || err.status == StatusCode::TOO_MANY_REQUESTS => {
            login_response(&state, err.status, &form.email, Some(&err.detail))
        }
        Err(err) => err.into_response(),
    }
}

async fn start_session(
    state: &AppState,
    ip: &ClientIp,
    email: String,
    password: String,
) -> Result<HeaderValue, ConsoleError> {
    let email = Email::parse(&email).ok();
    crate::http::auth::rate_limit(state, "login", ip, email.as_ref()).await?;
    let user = crate::http::auth::accounts(state)
        .authenticate(email.as_ref(), password, &ip.0.to_string())
        .await?;
    if user.role != Role::Admin {
        return Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            "The console is for admins; this account is not one.",
        ));
    }
    let no_randomness = || ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    let token = secret::new_token().ok_or_else(no_randomness)?;
    let csrf_token = secret::new_token().ok_or_else(no_randomness)?;
    let lifetime = state.config.console.session_lifetime;
    let expires_at =
        time::OffsetDateTime::now_utc() + time::Duration::try_from(lifetime).map_err(|_| no_randomness())?;
    let mut conn = state.db.acquire().await?;
    sessions::open_session(
        &mut conn,
        sessions::NewSession {
            token_hash: &secret::digest(&token),
            user: &user,
            csrf_token: &csrf_token,
            expires_at: &crate::timestamp::format(expires_at),
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, "console session started");
    Ok(session_cookie(state, &token, lifetime.as_secs()))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    console: Console,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    if let Some(token) = super::cookie(&headers, COOKIE) {
        let mut conn = state.db.acquire().await?;
        sessions::close_session(&mut conn, &secret::digest(token)).await?;
    }
    Ok((clear_cookie(&state), Redirect::to("/console/login")).into_response())
}

#[derive(Deserialize)]
pub struct ResetQuery {
    #[serde(default)]
    token: String,
}

fn reset_form(token: &str, email: &str, error: Option<&str>) -> Markup {
    document(
        "Choose a new password",
        None,
        html! {
            h1 { "Choose a new password" }
            p { "For " strong { (email) } ". This link works once." }
            @if let Some(error) = error {
                p class="error" role="alert" id="reset-error" { (error) }
            }
            form method="post" action="/console/password-reset" class="card narrow" {
                input type="hidden" name="token" value=(token);
                input type="hidden" name="email" value=(email) autocomplete="username";
                label for="new_password" { "New password" }
                input id="new_password" name="new_password" type="password" autocomplete="new-password" required
                    minlength="8" aria-describedby=[error.map(|_| "reset-error")];
                button type="submit" { "Set the password" }
            }
        },
    )
}

/// The reset link's page: a form for the new password, while the link is
/// unused and unexpired. (The link is the credential: no session needed.)
pub async fn reset_page(State(state): State<AppState>, Query(query): Query<ResetQuery>) -> Response {
    match crate::http::auth::accounts(&state).reset_link_user(&query.token).await {
        Ok(user) => reset_form(&query.token, &user.email, None).into_response(),
        Err(err) => ConsoleError::from(err).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    new_password: String,
}

pub async fn reset(State(state): State<AppState>, ip: ClientIp, Form(form): Form<ResetForm>) -> Response {
    if let Err(err) = crate::http::auth::rate_limit(&state, "password-reset", &ip, None).await {
        return ConsoleError::from(err).into_response();
    }
    match crate::http::auth::accounts(&state)
        .reset_password(&form.token, form.new_password)
        .await
    {
        Ok(user) => document(
            "Password set",
            None,
            html! {
                h1 { "Password set" }
                p role="status" { "The password for " strong { (user.email) } " is set. Log in with it." }
                @if user.role == Role::Admin {
                    p { a href="/console/login" { "Log in to the console" } }
                }
            },
        )
        .into_response(),
        Err(err) => {
            let err = ConsoleError::from(err);
            if err.status == StatusCode::UNPROCESSABLE_ENTITY {
                // A password that breaks a rule: the same form, with why.
                (err.status, reset_form(&form.token, &form.email, Some(&err.detail))).into_response()
            } else {
                err.into_response()
            }
        }
    }
}
