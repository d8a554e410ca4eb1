//! The wallet: balances, deposits through the gateway, withdrawals to it.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::escrow::count_outcome;
use super::extract::{ApiJson, AuthUser};
use super::idempotency;
use crate::domain::money::{Currency, MinorUnits, Money};
use crate::escrow;
use crate::state::AppState;
use crate::store::escrow::EscrowTransaction;
use crate::store::ledger;

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

/// Starts a deposit. The balance is credited when the gateway confirms: at
/// once with the sandbox gateway, by webhook with FinCra.
#[utoipa::path(post, path = "/api/v1/wallet/deposit", tag = TAG, security(("bearer" = [])), request_body = MoneyRequest,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = DepositResponse), (status = 422, body = super::error::Problem), (status = 503, description = "gateway unavailable; retry with the same key", body = super::error::Problem)))]
pub async fn deposit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MoneyRequest>,
) -> Result<Response, ApiError> {
    let money = Money::new(body.amount.0, body.currency)?;
    let reference = escrow::reference_for("dep", &user.id, &idempotency::key_from(&headers)?);
    let mut done = Vec::new();
    let result = idempotency::run(&state, &user.id, &headers, "wallet.deposit", &body, async |tx| {
        let (transaction, checkout_url) = escrow::deposit(&state, tx, &user, money, &reference).await?;
        done = vec![transaction.clone()];
        Ok((
            StatusCode::CREATED,
            DepositResponse {
                transaction,
                checkout_url,
            },
        ))
    })
    .await;
    count_outcome(&state, "deposit", &result, &done);
    result
}

/// Withdraws from the available balance to the gateway: reserved at once,
/// completed (or returned) when the gateway confirms. Requires approved KYC.
#[utoipa::path(post, path = "/api/v1/wallet/withdraw", tag = TAG, security(("bearer" = [])), request_body = MoneyRequest,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = EscrowTransaction), (status = 403, body = super::error::Problem), (status = 409, description = "insufficient balance", body = super::error::Problem)))]
pub async fn withdraw(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MoneyRequest>,
) -> Result<Response, ApiError> {
    let money = Money::new(body.amount.0, body.currency)?;
    let reference = escrow::reference_for("wd", &user.id, &idempotency::key_from(&headers)?);
    let mut done = Vec::new();
    let result = idempotency::run(&state, &user.id, &headers, "wallet.withdraw", &body, async |tx| {
        let transaction = escrow::withdraw(&state, tx, &user, money, &reference).await?;
        done = vec![transaction.clone()];
        Ok((StatusCode::CREATED, transaction))
    })
    .await;
    count_outcome(&state, "withdrawal", &result, &done);
    result
}
