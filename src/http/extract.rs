//! Extractors: what a handler may ask for, already checked.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::domain::account::Role;
use crate::state::AppState;
use crate::store::users::{self, User};

/// JSON body whose rejections (bad syntax, wrong types, missing fields, wrong
/// content type, too large) are problem documents with a useful `detail`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(axum::extract::rejection::JsonRejection::from)?;
        refuse_nul(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")))
}

/// Refuses a JSON body with a NUL character in a string (`\u0000`): no
/// text we store may hold one (PostgreSQL cannot), so it is a client error
/// here, at the edge, on both engines — not a database error later.
pub fn refuse_nul(json: &[u8]) -> Result<(), ApiError> {
    if contains_escaped_nul(json) || json.contains(&0) {
        return Err(ApiError::unprocessable(
            "JSON strings must not contain the NUL character (\\u0000)",
        ));
    }
    Ok(())
}

/// Whether `json` holds the escape `\u0000` (an odd run of backslashes
/// before `u0000`, so `\\u0000`, an escaped backslash and the text
/// `u0000`, does not count).
fn contains_escaped_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, window)| {
        window[0] == b'\\'
            && window[1] == b'u'
            && window[2..].iter().all(|b| *b == b'0')
            && json[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// An id that a request names (in the path, the query or a JSON body): a
/// UUID, as every id Amani issues is, or a payment reference (`dep_` or
/// `wd_` and 24 hexadecimal digits) for deposits and withdrawals. Anything
/// else is refused at the edge — 404 in a path, 422 naming the field in a
/// query or body — so no malformed value (NUL, 64 KB of text, another
/// encoding) reaches a database query. UUIDs are kept in their canonical
/// lowercase form, so `0193…-ABCD` finds what `0193…-abcd` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(String);

impl Id {
    /// What an id looks like, for error details.
    pub const RULE: &'static str = "an id: a UUID such as 0193c1c8-6f1e-7c3a-9d2b-5f4e3a2b1c0d (or a deposit or \
         withdrawal reference such as dep_0123456789abcdef01234567)";

    pub fn parse(raw: &str) -> Option<Id> {
        if let Ok(uuid) = uuid::Uuid::try_parse(raw)
            && raw.len() == 36
        {
            return Some(Id(uuid.hyphenated().to_string()));
        }
        let digits = raw.strip_prefix("dep_").or_else(|| raw.strip_prefix("wd_"))?;
        (digits.len() == 24 && digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Id(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(Id::RULE)
            }
            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<Id, E> {
                Id::parse(raw).ok_or_else(|| {
                    let shown: String = raw.chars().take(40).collect();
                    E::invalid_value(serde::de::Unexpected::Str(&shown), &self)
                })
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

/// The `{id}` of a path, checked to be an [`Id`]; anything else is 404
/// (no resource can have that name) with a detail saying what an id is.
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state).await?;
        Id::parse(&raw)
            .map(|id| IdPath(id.into_string()))
            .ok_or_else(|| ApiError::not_found(format!("nothing has this id: the path must name {}", Id::RULE)))
    }
}

/// Two ids in a path (`/milestones/{id}/dispute/files/{file_id}`), each
/// checked like [`IdPath`]'s.
pub struct IdPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((first, second)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await?;
        match (Id::parse(&first), Id::parse(&second)) {
            (Some(first), Some(second)) => Ok(IdPair(first.into_string(), second.into_string())),
            _ => Err(ApiError::not_found(format!(
                "nothing has this id: the path must name {}",
                Id::RULE
            ))),
        }
    }
}

/// Query parameters whose rejection (a wrong type, a missing value) is a
/// 422 problem naming the parameter, not axum's plain "bad request".
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// An authenticated, active user whose token is still current.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl AuthUser {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthorized("an `Authorization: Bearer <access_token>` header is required"))?;
        let claims = state
            .tokens
            .verify(token.trim())
            .map_err(|_| ApiError::unauthorized("the access token is invalid or expired; log in again"))?;
        let mut conn = state.db.acquire().await?;
        let user = users::find_by_id(&mut conn, &claims.sub)
            .await?
            .filter(|user| user.active && user.token_version == claims.ver)
            .ok_or_else(|| ApiError::unauthorized("the access token is no longer valid; log in again"))?;
        tracing::Span::current().record("user_id", user.id.as_str());
        crate::telemetry::error_tracking::tag_user(&user.id, Some(&user.email), state.config.sentry.send_pii);
        Ok(AuthUser(user))
    }
}

/// `Option<AuthUser>`: no `Authorization` header is `None`; a header with a
/// bad token is still 401, never silently anonymous.
impl<S> axum::extract::OptionalFromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// An authenticated admin; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl<S> FromRequestParts<S> for AdminUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden("this action is for admins"));
        }
        Ok(AdminUser(user))
    }
}

/// The client's IP: the peer address, or the last `X-Forwarded-For` hop when
/// `TRUST_FORWARDED_FOR=true` (behind a proxy that appends it).
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        if state.config.rate_limit.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(ClientIp(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(peer))
    }
}

/// `page` (from 1) and `page_size` (1 to 100, default 20).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<i64>,
}

impl PageParams {
    pub const MAX_PAGE_SIZE: u32 = 100;
    /// Deep pages by offset get slow; past this, filter by time instead.
    pub const MAX_PAGE: u32 = 100_000;

    /// (page, page_size, limit, offset), or a 422 naming the bad parameter.
    pub fn resolve(self) -> Result<(u32, u32, i64, i64), ApiError> {
        // Parsed as i64 so that 0, -1 and 10^9 all get the same 422 naming
        // the rule, rather than some a 400 from the query parser.
        let page = u32::try_from(self.page.unwrap_or(1))
            .ok()
            .filter(|p| *p >= 1 && *p <= Self::MAX_PAGE)
            .ok_or_else(|| ApiError::unprocessable(format!("page must be from 1 to {}", Self::MAX_PAGE)))?;
        let page_size = u32::try_from(self.page_size.unwrap_or(20))
            .ok()
            .filter(|s| (1..=Self::MAX_PAGE_SIZE).contains(s))
            .ok_or_else(|| ApiError::unprocessable(format!("page_size must be from 1 to {}", Self::MAX_PAGE_SIZE)))?;
        let offset = i64::from(page - 1) * i64::from(page_size);
        Ok((page, page_size, i64::from(page_size), offset))
    }

    /// [`PageParams::resolve`] for a list that also pages by cursor
    /// (`after`): refuses `page` beside a cursor, and by cursor asks for one
    /// row more than the page (it says whether another page follows; see
    /// [`Page::from_rows`]).
    pub fn resolve_with_cursor(self, by_cursor: bool) -> Result<(u32, u32, i64, i64), ApiError> {
        if by_cursor && self.page.is_some_and(|p| p != 1) {
            return Err(ApiError::unprocessable("give page or after, not both"));
        }
        let (page, page_size, limit, offset) = self.resolve()?;
        Ok((page, page_size, limit + i64::from(by_cursor), offset))
    }
}

/// A page of a list, as every list endpoint returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many the whole list has; null on a page fetched by cursor
    /// (`after`), where counting a long history on every page would cost
    /// more than the page.
    pub total: Option<i64>,
    pub page: u32,
    pub page_size: u32,
    pub has_more: bool,
    /// Where a list that takes `after` continues: pass it as `after` for the
    /// next page (null when there is none, or the list has no cursor).
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, page: u32, page_size: u32) -> Page<T> {
        let seen = i64::from(page - 1) * i64::from(page_size) + items.len() as i64;
        Page {
            has_more: seen < total,
            items,
            total: Some(total),
            page,
            page_size,
            next_cursor: None,
        }
    }

    /// A page fetched by cursor (`after`): `page` is 1, counted from the
    /// cursor, and `total` is not counted.
    fn after_cursor(items: Vec<T>, page_size: u32, has_more: bool) -> Page<T> {
        Page {
            has_more,
            items,
            total: None,
            page: 1,
            page_size,
            next_cursor: None,
        }
    }

    /// The page answered by rows fetched with
    /// [`PageParams::resolve_with_cursor`]: counted when `total` is known
    /// (paging by number), else paged by cursor (a row past the page says
    /// another follows); `next_cursor` is the last item's `id` when one does.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        total: Option<i64>,
        (page, page_size): (u32, u32),
        id: impl Fn(&R) -> String,
        view: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more_after_cursor = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let last = rows.last().map(id);
        let items = rows.into_iter().map(view).collect();
        let page = match total {
            Some(total) => Page::new(items, total, page, page_size),
            None => Page::after_cursor(items, page_size, more_after_cursor),
        };
        Page {
            next_cursor: last.filter(|_| page.has_more),
            ..page
        }
    }
}
