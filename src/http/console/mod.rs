//! The operator console: server-rendered pages under `/console` for the
//! admin work (KYC, disputes, users, the audit trail) and the operator view
//! of the service's health.
//!
//! - Every page is plain HTML that works without JavaScript; every action is
//!   a form post. The one script (a few hundred bytes) only refreshes the
//!   operator view in place. Assets are compiled in: nothing is fetched
//!   from elsewhere.
//! - An admin logs in with email and password (the same check, lockout and
//!   audit as the API) and gets a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` behind TLS) whose secret is stored only as
//!   a digest; it ends after `CONSOLE_IDLE_MINUTES` unused, after
//!   `CONSOLE_SESSION_HOURS` in any case, at logout, and when the admin's
//!   password changes or the account is deactivated.
//! - Every form carries the session's CSRF token; a post without it is
//!   refused (403) before anything is done.
//! - Every action goes through the same operations as the API: the same
//!   rules, audit records and events.
//! - Pages are never cached (`Cache-Control: no-store`) and may not be
//!   framed; a strict Content-Security-Policy allows only this origin's
//!   own script and style.

mod audit;
mod disputes;
mod kyc;
mod operator;
mod session;
mod users;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use tower_http::set_header::SetResponseHeaderLayer;

use super::error::ApiError;
use crate::auth::secret;
use crate::domain::account::Role;
use crate::operations::OperationError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::console as sessions;
use crate::store::users::User;

pub use session::reset_path;

/// The operator view's live panel, which its script fetches.
const LIVE_PATH: &str = "/console/live";
/// The session cookie's name.
const COOKIE: &str = "amani_console";
/// Activity is written to the session at most this often (seconds), so a
/// page view is not a write each time.
const TOUCH_AFTER_SECONDS: i64 = 60;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// The console's routes (not in the OpenAPI document: they answer HTML).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(operator::view))
        .route(LIVE_PATH, get(operator::live))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/password-reset", get(session::reset_page).post(session::reset))
        .route("/console/kyc", get(kyc::queue))
        .route("/console/kyc/{id}", get(kyc::submission))
        .route("/console/kyc/{id}/document", get(kyc::document))
        .route("/console/kyc/{id}/approve", post(kyc::approve))
        .route("/console/kyc/{id}/reject", post(kyc::reject))
        .route("/console/disputes", get(disputes::list))
        .route("/console/disputes/{kind}/{id}", get(disputes::detail))
        .route("/console/disputes/{kind}/{id}/preview", post(disputes::preview))
        .route("/console/disputes/{kind}/{id}/resolve", post(disputes::resolve))
        .route("/console/disputes/milestone/{id}/files/{file_id}", get(disputes::file))
        .route("/console/users", get(users::search))
        .route("/console/users/{id}", get(users::detail))
        .route("/console/users/{id}/deactivate", post(users::deactivate))
        .route("/console/users/{id}/reactivate", post(users::reactivate))
        .route("/console/users/{id}/password-reset", post(users::password_reset))
        .route("/console/audit", get(audit::trail))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/assets/favicon.svg", get(favicon))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        ))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

/// Assets change only with the binary; an hour of caching is safe.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// An admin's console session, checked on every request.
pub struct Console {
    pub admin: User,
    csrf_token: String,
}

impl Console {
    /// Refuses a form whose CSRF token is missing or not this session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), ConsoleError> {
        if given.is_empty() || !secret::same(given, &self.csrf_token) {
            return Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "This form is missing its security token, or the token is stale. \
                 Reload the page and try again.",
            ));
        }
        Ok(())
    }

    /// The hidden field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf_token); }
    }
}

/// The value of cookie `name`, if the request sent it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        let token_hash = secret::digest(token);
        let now = time::OffsetDateTime::now_utc();
        let idle = time::Duration::try_from(state.config.console.idle_timeout).unwrap_or(time::Duration::MINUTE);
        let idle_since = crate::timestamp::format(now - idle);
        // The operator view's own refresh is not activity: a view left open
        // still ends after the idle timeout.
        let activity = parts.uri.path() != LIVE_PATH;
        let found = async {
            let mut conn = state.db.acquire().await?;
            let session = sessions::find_session(&mut conn, &token_hash, &idle_since).await?;
            if let Some(session) = session.as_ref().filter(|_| activity) {
                let seen = crate::timestamp::parse(&session.last_seen_at).unwrap_or(now);
                if (now - seen).whole_seconds() >= TOUCH_AFTER_SECONDS {
                    sessions::touch_session(&mut conn, &token_hash).await?;
                }
            }
            Ok::<_, StoreError>(session)
        };
        let session = found.await.map_err(|err| ConsoleError::from(err).into_response())?;
        let Some(session) = session else {
            // Expired, logged out, or never ours: log in again.
            return Err((session::clear_cookie(state), Redirect::to("/console/login")).into_response());
        };
        tracing::Span::current().record("user_id", session.user.id.as_str());
        if session.user.role != Role::Admin {
            return Err(ConsoleError::new(StatusCode::FORBIDDEN, "The console is for admins.").into_response());
        }
        Ok(Console {
            admin: session.user,
            csrf_token: session.csrf_token,
        })
    }
}

/// A failed console request: an HTML page with the status and what to do.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    detail: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            detail: detail.into(),
        }
    }

    fn bad_input(detail: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl From<ApiError> for ConsoleError {
    fn from(err: ApiError) -> ConsoleError {
        // A 500's detail is already generic; the cause went to the logs.
        ConsoleError::new(err.status(), err.detail())
    }
}

impl From<OperationError> for ConsoleError {
    fn from(err: OperationError) -> ConsoleError {
        ApiError::from(err).into()
    }
}

impl From<StoreError> for ConsoleError {
    fn from(err: StoreError) -> ConsoleError {
        ApiError::from(err).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = document(
            title,
            None,
            html! {
                h1 { (title) }
                p role="alert" { (self.detail) }
                p { a href="/console" { "Back to the console" } }
            },
        );
        (self.status, body).into_response()
    }
}

/// A console page for a logged-in admin: navigation, then `body`.
pub fn page(title: &str, console: &Console, body: Markup) -> Markup {
    document(title, Some(console), body)
}

fn document(title: &str, console: Option<&Console>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Amani console" }
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                @if let Some(console) = console {
                    header {
                        nav aria-label="Console" {
                            a href="/console" { "Operator view" }
                            a href="/console/kyc" { "KYC queue" }
                            a href="/console/disputes" { "Disputes" }
                            a href="/console/users" { "Users" }
                            a href="/console/audit" { "Audit trail" }
                        }
                        form method="post" action="/console/logout" class="logout" {
                            (console.csrf_field())
                            span { (console.admin.email) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A fixed notice after an action (`?notice=…`): only known codes are shown,
/// never text from the URL.
pub fn notice(code: Option<&str>) -> Markup {
    let text = match code {
        Some("approved") => "The submission is approved.",
        Some("rejected") => "The submission is rejected.",
        Some("resolved") => "The dispute is resolved; the money has moved.",
        Some("deactivated") => "The account is deactivated; its tokens and sessions have ended.",
        Some("reactivated") => "The account is reactivated; its owner logs in afresh.",
        _ => return html! {},
    };
    html! { p class="notice" role="status" { (text) } }
}

/// An amount in minor units, grouped for reading, with its currency.
pub fn money(minor: i64, currency: &str) -> String {
    let digits = minor.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{grouped} {currency}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; amani_console_x=2; amani_console=abc"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn amounts_are_grouped_in_thousands() {
        assert_eq!(money(0, "NGN"), "0 NGN");
        assert_eq!(money(1234567, "USD"), "1,234,567 USD");
        assert_eq!(money(-1000, "USD"), "-1,000 USD");
    }
}
