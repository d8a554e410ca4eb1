//! Payout destinations: a user's bank accounts and mobile-money wallets.

use sqlx::FromRow;
use uuid::Uuid;

use super::{DbHandle, StoreError, timestamp};
use crate::domain::payout::NewDestination;

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Destination {
    pub id: String,
    #[serde(skip)]
    pub user_id: String,
    /// `bank_account` or `mobile_money`.
    pub kind: String,
    pub currency: String,
    pub country: String,
    /// Bank code (bank accounts) or operator code (mobile money).
    pub institution_code: String,
    pub account_number: String,
    /// The name given when registering it.
    pub holder_name: String,
    /// The account's name as the payment provider resolved it.
    pub resolved_name: String,
    pub created_at: String,
}

const COLUMNS: &str = "id, user_id, kind, currency, country, institution_code, account_number, holder_name, \
    resolved_name, created_at";

pub async fn insert(
    db: &mut impl DbHandle,
    user_id: &str,
    new: &NewDestination,
    resolved_name: &str,
) -> Result<Destination, StoreError> {
    let destination = Destination {
        id: Uuid::now_v7().to_string(),
        user_id: user_id.to_owned(),
        kind: new.kind.as_str().to_owned(),
        currency: new.currency.code().to_owned(),
        country: new.country.clone(),
        institution_code: new.institution_code.clone(),
        account_number: new.account_number.clone(),
        holder_name: new.holder_name.clone(),
        resolved_name: resolved_name.to_owned(),
        created_at: timestamp::now(),
    };
    let (conn, obs) = db.parts();
    obs.run(
        "payout_destinations.insert",
        sqlx::query(
            "insert into payout_destinations (id, user_id, kind, currency, country, institution_code, account_number, \
             holder_name, resolved_name, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&destination.id)
        .bind(&destination.user_id)
        .bind(&destination.kind)
        .bind(&destination.currency)
        .bind(&destination.country)
        .bind(&destination.institution_code)
        .bind(&destination.account_number)
        .bind(&destination.holder_name)
        .bind(&destination.resolved_name)
        .bind(&destination.created_at)
        .execute(conn),
    )
    .await?;
    Ok(destination)
}

/// A user's destinations still in use, oldest first.
pub async fn list_for_user(db: &mut impl DbHandle, user_id: &str) -> Result<Vec<Destination>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "payout_destinations.list",
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from payout_destinations where user_id = $1 and removed_at is null order by created_at, id"
        )))
        .bind(user_id)
        .fetch_all(conn),
    )
    .await
}

/// One of the user's destinations still in use.
pub async fn find_for_user(db: &mut impl DbHandle, user_id: &str, id: &str) -> Result<Option<Destination>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "payout_destinations.find",
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from payout_destinations where id = $1 and user_id = $2 and removed_at is null"
        )))
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn),
    )
    .await
}

/// A destination by id, removed or not (a withdrawal in flight still pays
/// the destination it named).
pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<Destination>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "payout_destinations.find_any",
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from payout_destinations where id = $1"
        )))
        .bind(id)
        .fetch_optional(conn),
    )
    .await
}

/// Whether the user already has this account registered.
pub async fn exists(db: &mut impl DbHandle, user_id: &str, new: &NewDestination) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String,)> = obs
        .run(
            "payout_destinations.exists",
            sqlx::query_as(
                "select id from payout_destinations where user_id = $1 and kind = $2 and institution_code = $3 \
                 and account_number = $4 and removed_at is null",
            )
            .bind(user_id)
            .bind(new.kind.as_str())
            .bind(&new.institution_code)
            .bind(&new.account_number)
            .fetch_optional(conn),
        )
        .await?;
    Ok(row.is_some())
}

/// Marks a destination removed; false if it was not the user's or already gone.
pub async fn remove(db: &mut impl DbHandle, user_id: &str, id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "payout_destinations.remove",
            sqlx::query(
                "update payout_destinations set removed_at = $3 where id = $1 and user_id = $2 and removed_at is null",
            )
            .bind(id)
            .bind(user_id)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}
