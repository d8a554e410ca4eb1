//! Escrow: fund (hold), release, refund, and the transaction history.
//! Every POST here requires an `Idempotency-Key`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, AuthUser, Id, IdPath, Page, PageParams};
use super::idempotency;
use crate::domain::account::{Role, bounded_text};
use crate::domain::money::MinorUnits;
use crate::domain::payment::{TransactionKind, TransactionStatus};
use crate::operations::escrow;
use crate::state::AppState;
use crate::store::escrow::{self as records, EscrowTransaction, Filter};
use crate::telemetry::metrics::EscrowLabels;

pub const TAG: &str = "escrow";

/// Counts settled money operations (`escrow_transactions_total`): completed
/// as succeeded, failed or reversed as failed. Pending ones are counted when
/// the gateway settles them.
pub fn count(state: &AppState, transactions: &[EscrowTransaction]) {
    for transaction in transactions {
        let status = match transaction.status {
            TransactionStatus::Completed => "succeeded",
            TransactionStatus::Pending => continue,
            TransactionStatus::Failed | TransactionStatus::Reversed | TransactionStatus::Review => "failed",
        };
        state
            .metrics
            .escrow_transactions
            .get_or_create(&EscrowLabels {
                r#type: transaction.kind.as_str(),
                status,
            })
            .inc();
    }
}

/// Counts what one money-moving request did: its transactions when it
/// succeeded, one failure of `r#type` when it was refused, nothing when it
/// replayed a used key (what it did was rolled back: `done` is not money).
pub fn count_outcome(
    state: &AppState,
    r#type: &'static str,
    result: &Result<Response, ApiError>,
    done: &[EscrowTransaction],
) {
    match result {
        Ok(response) if idempotency::is_replay(response) => {}
        Ok(_) => count(state, done),
        Err(_) => {
            state
                .metrics
                .escrow_transactions
                .get_or_create(&EscrowLabels {
                    r#type,
                    status: "failed",
                })
                .inc();
        }
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct HoldRequest {
    #[schema(value_type = String, format = Uuid)]
    pub project_id: Id,
    /// One milestone; omit to fund every pending milestone of the project.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub milestone_id: Option<Id>,
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Transactions {
    pub transactions: Vec<EscrowTransaction>,
}

fn notes(raw: &Option<String>) -> Result<Option<String>, ApiError> {
    raw.as_deref()
        .map(|n| bounded_text("notes", n, 1000))
        .transpose()
        .map_err(Into::into)
}

/// The buyer funds a milestone (or all pending ones) from their available
/// balance; the platform fee (`PLATFORM_FEE_BPS`, rounded half up to the
/// minor unit) is taken at the same time. Requires approved KYC.
#[utoipa::path(post, path = "/api/v1/escrow/hold", tag = TAG, security(("bearer" = [])), request_body = HoldRequest,
    params(("Idempotency-Key" = String, Header, description = "required; the same key and body replay the first response")),
    responses(
        (status = 201, body = Transactions),
        (status = 400, description = "Idempotency-Key missing", body = super::error::Problem),
        (status = 403, description = "not the buyer, or KYC not approved", body = super::error::Problem),
        (status = 404, body = super::error::Problem),
        (status = 409, description = "not fundable now, or insufficient balance", body = super::error::Problem),
        (status = 422, description = "the key was used with another body", body = super::error::Problem),
    ))]
pub async fn hold(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<Response, ApiError> {
    let notes = notes(&body.notes)?;
    let mut done = Vec::new();
    let result = idempotency::run(&state, &user.id, &headers, "escrow.hold", &body, async |tx| {
        done = escrow::hold(
            tx,
            state.config.payments.platform_fee_bps,
            &user,
            &body.project_id,
            body.milestone_id.as_deref(),
            notes.as_deref(),
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            Transactions {
                transactions: done.clone(),
            },
        ))
    })
    .await;
    count_outcome(&state, "hold", &result, &done);
    result
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ReleaseRequest {
    /// Optional; checked against the milestone's project when given.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<Id>,
    #[schema(value_type = String, format = Uuid)]
    pub milestone_id: Id,
    /// Minor units: release this part of what the milestone holds (any time
    /// before it settles, not while disputed). Omitted: the whole
    /// remainder, once the buyer approved.
    pub amount: Option<MinorUnits>,
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// The buyer (or an admin) releases a milestone's escrow to the seller's
/// available balance: the whole remainder of an approved milestone, or a
/// part (`amount`). A milestone settles when nothing is left held.
#[utoipa::path(post, path = "/api/v1/escrow/release", tag = TAG, security(("bearer" = [])), request_body = ReleaseRequest,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = Transactions), (status = 409, description = "not approved, or already released", body = super::error::Problem)))]
pub async fn release(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReleaseRequest>,
) -> Result<Response, ApiError> {
    let notes = notes(&body.notes)?;
    let mut done = Vec::new();
    let result = idempotency::run(&state, &user.id, &headers, "escrow.release", &body, async |tx| {
        let released = escrow::release(
            tx,
            &user,
            &body.milestone_id,
            body.amount.map(|a| a.0),
            notes.as_deref(),
        )
        .await?;
        if body
            .project_id
            .as_deref()
            .is_some_and(|p| Some(p) != released.project_id.as_deref())
        {
            return Err(ApiError::unprocessable("milestone_id does not belong to project_id"));
        }
        done = vec![released];
        Ok((
            StatusCode::CREATED,
            Transactions {
                transactions: done.clone(),
            },
        ))
    })
    .await;
    count_outcome(&state, "release", &result, &done);
    result
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct RefundRequest {
    #[schema(value_type = String, format = Uuid)]
    pub project_id: Id,
    /// One milestone; omit to refund every milestone holding funds.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub milestone_id: Option<Id>,
    /// Minor units: refund this part of what `milestone_id` holds. Omitted:
    /// all of it.
    pub amount: Option<MinorUnits>,
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// The seller (or an admin) returns unreleased escrow to the buyer. The
/// platform fee is not refunded.
#[utoipa::path(post, path = "/api/v1/escrow/refund", tag = TAG, security(("bearer" = [])), request_body = RefundRequest,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = Transactions), (status = 409, body = super::error::Problem)))]
pub async fn refund(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefundRequest>,
) -> Result<Response, ApiError> {
    let notes = notes(&body.notes)?;
    let mut done = Vec::new();
    let result = idempotency::run(&state, &user.id, &headers, "escrow.refund", &body, async |tx| {
        done = escrow::refund(
            tx,
            &user,
            &body.project_id,
            body.milestone_id.as_deref(),
            body.amount.map(|a| a.0),
            notes.as_deref(),
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            Transactions {
                transactions: done.clone(),
            },
        ))
    })
    .await;
    count_outcome(&state, "refund", &result, &done);
    result
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionFilter {
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<Id>,
    /// deposit, hold, release, refund or withdrawal.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// pending, completed, failed, reversed or review.
    pub status: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created at or before (RFC 3339).
    pub to: Option<String>,
    /// A previous page's `next_cursor`: the page right after that
    /// transaction, however deep (instead of `page`; costs the same on every
    /// page).
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<Id>,
}

pub(super) fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(crate::store::timestamp::format)
            .map_err(|_| {
                ApiError::unprocessable(format!("{field} must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z"))
            })
    })
    .transpose()
}

/// The caller's transactions (every transaction for admins), newest first.
#[utoipa::path(get, path = "/api/v1/escrow/transactions", tag = TAG, security(("bearer" = [])), params(TransactionFilter, PageParams),
    responses((status = 200, body = Page<EscrowTransaction>)))]
pub async fn transactions(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(filter): ApiQuery<TransactionFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<EscrowTransaction>>, ApiError> {
    let kind = filter
        .kind
        .as_deref()
        .map(|k| {
            k.parse::<TransactionKind>()
                .map_err(|_| ApiError::unprocessable("type must be one of deposit, hold, release, refund, withdrawal"))
        })
        .transpose()?;
    let status = filter
        .status
        .as_deref()
        .map(|s| {
            s.parse::<TransactionStatus>().map_err(|_| {
                ApiError::unprocessable("status must be one of pending, completed, failed, reversed, review")
            })
        })
        .transpose()?;
    let from = parse_time("from", filter.from.as_deref())?;
    let to = parse_time("to", filter.to.as_deref())?;
    let (page, page_size, limit, offset) = page.resolve_with_cursor(filter.after.is_some())?;
    let party = (user.role != Role::Admin).then_some(user.id.as_str());
    let mut conn = state.db.acquire().await?;
    let (items, total) = records::list(
        &mut conn,
        &Filter {
            party,
            project_id: filter.project_id.as_deref(),
            kind,
            status,
            from: from.as_deref(),
            to: to.as_deref(),
            after: filter.after.as_deref(),
        },
        limit,
        offset,
    )
    .await?;
    drop(conn);
    Ok(Json(Page::from_rows(
        items,
        total,
        (page, page_size),
        |t| t.id.clone(),
        |t| t,
    )))
}

#[utoipa::path(get, path = "/api/v1/escrow/transactions/{id}", tag = TAG, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EscrowTransaction), (status = 404, body = super::error::Problem)))]
pub async fn transaction(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<EscrowTransaction>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let record = records::find(&mut conn, &id)
        .await?
        .filter(|t| {
            user.role == Role::Admin || t.user_id == user.id || t.counterparty_id.as_deref() == Some(user.id.as_str())
        })
        .ok_or_else(|| ApiError::not_found("no such transaction"))?;
    Ok(Json(record))
}
