//! The wallet: balances, deposits through the gateway, withdrawals to a
//! registered payout destination, and those destinations.
//!
//! Deposits and withdrawals are the three-step operations of
//! [`crate::operations::payments`]: the answer is the record as it stands —
//! `completed`, or `pending` while the provider works (a webhook or
//! reconciliation settles it) — and a replay of the `Idempotency-Key` answers
//! with the record as it stands then.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, AuthUser, IdPath};
use super::idempotency;
use crate::domain::DomainError;
use crate::domain::money::{Currency, MinorUnits, Money};
use crate::domain::payout::{DestinationKind, NewDestination};
use crate::operations::OperationError;
use crate::operations::payments::{Keyed, PaymentAnswer, refusal};
use crate::state::AppState;
use crate::store::destinations::Destination;
use crate::store::escrow::EscrowTransaction;
use crate::store::ledger;
use crate::telemetry::metrics::EscrowLabels;

pub const TAG: &str = "wallet";

#[derive(Serialize, ToSchema)]
pub struct Balance {
    pub currency: String,
    /// Spendable now, minor units.
    pub available: i64,
    /// Set aside for withdrawals in flight, minor units.
    pub reserved: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Wallet {
    pub balances: Vec<Balance>,
}

#[utoipa::path(get, path = "/api/v1/wallet", tag = TAG, security(("bearer" = [])), responses((status = 200, body = Wallet)))]
pub async fn wallet(State(state): State<AppState>, AuthUser(user): AuthUser) -> Result<Json<Wallet>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let balances = ledger::user_balances(&mut conn, &user.id)
        .await?
        .into_iter()
        .map(|(currency, available, reserved)| Balance {
            currency,
            available,
            reserved,
        })
        .collect();
    Ok(Json(Wallet { balances }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct MoneyRequest {
    /// Minor units (integer, or a string of digits); never a decimal.
    pub amount: MinorUnits,
    pub currency: Currency,
}

#[derive(Serialize, ToSchema)]
pub struct DepositResponse {
    pub transaction: EscrowTransaction,
    /// Where to pay, for gateways with a hosted checkout.
    pub checkout_url: Option<String>,
}

/// Counts a refused request as a failed operation of `kind`; settled
/// operations are counted where they settle.
fn count_refused(state: &AppState, kind: &'static str) {
    state
        .metrics
        .escrow_transactions
        .get_or_create(&EscrowLabels {
            r#type: kind,
            status: "failed",
        })
        .inc();
}

/// Renders a deposit or withdrawal: 201 with the record (pending or
/// completed), or 422 when the provider refused it; replays say so.
fn render<T: Serialize>(answer: PaymentAnswer, body: impl FnOnce(EscrowTransaction) -> T) -> Response {
    let replayed = answer.replayed;
    let mut response = match refusal(&answer.transaction) {
        Some(reason) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment-refused",
            format!(
                "the payment provider refused {} {}: {reason}",
                answer.transaction.kind, answer.transaction.id
            ),
        )
        .into_response(),
        None => (StatusCode::CREATED, Json(body(answer.transaction))).into_response(),
    };
    if replayed {
        let (name, value) = idempotency::replayed_header();
        response.headers_mut().insert(name, value);
    }
    response
}

/// Starts a deposit. The balance is credited when the gateway confirms the
/// money arrived in full: at once with the sandbox gateway; with FinCra
/// when its webhook (verified against FinCra's own record) or reconciliation
/// says so. An underpaid or mispaid deposit is held for review, not credited.
#[utoipa::path(post, path = "/api/v1/wallet/deposit", tag = TAG, security(("bearer" = [])), request_body = MoneyRequest,
    params(("Idempotency-Key" = String, Header)),
    responses(
        (status = 201, description = "recorded: `completed`, or `pending` until the provider confirms", body = DepositResponse),
        (status = 422, description = "invalid, or refused by the payment provider", body = super::error::Problem),
    ))]
pub async fn deposit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MoneyRequest>,
) -> Result<Response, ApiError> {
    let money = Money::new(body.amount.0, body.currency)?;
    let (key, request_hash) = idempotency::fingerprint(&headers, "wallet.deposit", &body)?;
    let keyed = Keyed {
        key: &key,
        request_hash: &request_hash,
    };
    let answer = state.payments.deposit(&user, money, &keyed).await.inspect_err(|_| {
        count_refused(&state, "deposit");
    })?;
    Ok(render(answer, |transaction| DepositResponse {
        checkout_url: transaction.checkout_url.clone(),
        transaction,
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct WithdrawRequest {
    /// Minor units (integer, or a string of digits); never a decimal.
    pub amount: MinorUnits,
    pub currency: Currency,
    /// One of the caller's payout destinations (`GET /api/v1/wallet/destinations`).
    #[schema(format = Uuid)]
    pub destination_id: String,
}

/// Withdraws from the available balance to one of the caller's payout
/// destinations: reserved at once, paid out when the gateway confirms, or
/// returned if the gateway refuses or fails it. Requires approved KYC.
#[utoipa::path(post, path = "/api/v1/wallet/withdraw", tag = TAG, security(("bearer" = [])), request_body = WithdrawRequest,
    params(("Idempotency-Key" = String, Header)),
    responses(
        (status = 201, description = "recorded: `completed`, or `pending` until the provider confirms", body = EscrowTransaction),
        (status = 403, body = super::error::Problem),
        (status = 404, description = "no such payout destination", body = super::error::Problem),
        (status = 409, description = "insufficient balance", body = super::error::Problem),
        (status = 422, description = "invalid, or refused by the payment provider", body = super::error::Problem),
    ))]
pub async fn withdraw(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WithdrawRequest>,
) -> Result<Response, ApiError> {
    let money = Money::new(body.amount.0, body.currency)?;
    let destination_id = parse_id("destination_id", &body.destination_id)?;
    let (key, request_hash) = idempotency::fingerprint(&headers, "wallet.withdraw", &body)?;
    let keyed = Keyed {
        key: &key,
        request_hash: &request_hash,
    };
    let answer = state
        .payments
        .withdraw(&user, money, &destination_id, &keyed)
        .await
        .inspect_err(|_| count_refused(&state, "withdrawal"))?;
    Ok(render(answer, |transaction| transaction))
}

fn parse_id(field: &'static str, raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim()).map(|id| id.to_string()).map_err(|_| {
        DomainError::invalid(
            field,
            "must be the id (a UUID) of one of your payout destinations, from GET /api/v1/wallet/destinations",
        )
        .into()
    })
}

/// A payout destination to register.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DestinationRequest {
    pub kind: DestinationKind,
    /// Bank accounts: the bank's code (`GET /core/banks` at FinCra), 3–6 digits.
    pub bank_code: Option<String>,
    /// Mobile money: the operator's code (`MTN`, `AIRTEL`, `SAFARICOM`, …).
    pub mobile_money_code: Option<String>,
    /// A 10-digit NUBAN, or the mobile-money number in international format without `+`.
    #[schema(pattern = "^[0-9]{9,15}$")]
    pub account_number: String,
    /// Mobile money: `NG`, `GH` or `KE` (bank accounts are Nigerian).
    pub country: Option<String>,
    /// The account holder's name; the provider's name for the account must match your verified name.
    #[schema(min_length = 2, max_length = 100)]
    pub account_holder_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Destinations {
    pub items: Vec<Destination>,
}

fn required<'a>(field: &'static str, value: &'a Option<String>) -> Result<&'a str, DomainError> {
    value
        .as_deref()
        .ok_or_else(|| DomainError::invalid(field, "is required for this kind of destination"))
}

/// Registers a payout destination: the provider resolves the account's
/// name, which must match the caller's verified name. Requires approved KYC.
#[utoipa::path(post, path = "/api/v1/wallet/destinations", tag = TAG, security(("bearer" = [])), request_body = DestinationRequest,
    responses(
        (status = 201, body = Destination),
        (status = 403, description = "KYC not approved", body = super::error::Problem),
        (status = 409, description = "already registered", body = super::error::Problem),
        (status = 422, description = "invalid, unresolvable, or not the caller's account", body = super::error::Problem),
        (status = 503, description = "the payment provider did not answer", body = super::error::Problem),
    ))]
pub async fn add_destination(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<DestinationRequest>,
) -> Result<(StatusCode, Json<Destination>), ApiError> {
    let new = match body.kind {
        DestinationKind::BankAccount => NewDestination::bank_account(
            required("bank_code", &body.bank_code)?,
            &body.account_number,
            &body.account_holder_name,
        )?,
        DestinationKind::MobileMoney => NewDestination::mobile_money(
            required("mobile_money_code", &body.mobile_money_code)?,
            &body.account_number,
            required("country", &body.country)?,
            &body.account_holder_name,
        )?,
    };
    let destination = state.payments.add_destination(&user, new).await?;
    Ok((StatusCode::CREATED, Json(destination)))
}

#[utoipa::path(get, path = "/api/v1/wallet/destinations", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Destinations)))]
pub async fn list_destinations(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Destinations>, ApiError> {
    let items = state.payments.list_destinations(&user).await?;
    Ok(Json(Destinations { items }))
}

/// Removes a payout destination; withdrawals already sent to it are kept.
#[utoipa::path(delete, path = "/api/v1/wallet/destinations/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::Problem)))]
pub async fn remove_destination(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such payout destination"))?;
    state
        .payments
        .remove_destination(&user, &id.to_string())
        .await
        .map_err(|e| match e {
            OperationError::NotFound(_) => ApiError::not_found("no such payout destination"),
            other => other.into(),
        })?;
    Ok((StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "no-store")]).into_response())
}
