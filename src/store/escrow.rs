//! Escrow transactions: the business record of each money operation (what
//! clients list as "transactions"); its ledger transfers point back at it.

use sqlx::FromRow;

use super::{DbHandle, StoreError, timestamp};

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct EscrowTransaction {
    pub id: String,
    /// deposit, hold, release, refund or withdrawal.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// pending, completed, failed or reversed.
    pub status: String,
    pub user_id: String,
    pub counterparty_id: Option<String>,
    pub project_id: Option<String>,
    pub milestone_id: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// Platform fee in minor units (holds only).
    pub fee: i64,
    pub currency: String,
    pub provider: Option<String>,
    pub gateway_reference: Option<String>,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub struct NewTransaction<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub status: &'static str,
    pub user_id: &'a str,
    pub counterparty_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub milestone_id: Option<&'a str>,
    pub amount: i64,
    pub fee: i64,
    pub currency: &'a str,
    pub provider: Option<&'a str>,
    pub notes: Option<&'a str>,
}

pub async fn insert(db: &mut impl DbHandle, new: NewTransaction<'_>) -> Result<(), StoreError> {
    let now = timestamp::now();
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.insert",
        sqlx::query(
            "insert into escrow_transactions (id, type, status, user_id, counterparty_id, project_id, milestone_id, \
             amount, fee, currency, provider, gateway_reference, notes, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $1, $12, $13, $13)",
        )
        .bind(new.id)
        .bind(new.kind)
        .bind(new.status)
        .bind(new.user_id)
        .bind(new.counterparty_id)
        .bind(new.project_id)
        .bind(new.milestone_id)
        .bind(new.amount)
        .bind(new.fee)
        .bind(new.currency)
        .bind(new.provider)
        .bind(new.notes)
        .bind(&now)
        .execute(conn),
    )
    .await
    .map_err(super::map_duplicate("a transaction with this reference"))?;
    Ok(())
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<EscrowTransaction>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.find",
        sqlx::query_as("select * from escrow_transactions where id = $1")
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

/// Moves a transaction from `from` to `to` (compare-and-set).
pub async fn set_status(db: &mut impl DbHandle, id: &str, from: &str, to: &'static str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "escrow_transactions.set_status",
            sqlx::query("update escrow_transactions set status = $3, updated_at = $4 where id = $1 and status = $2")
                .bind(id)
                .bind(from)
                .bind(to)
                .bind(timestamp::now())
                .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Filters for listing; `None` means "any".
#[derive(Default)]
pub struct Filter<'a> {
    /// Only transactions this user is a party to (None: all, for admins).
    pub party: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Inclusive bounds on `created_at`, in the stored timestamp format.
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

pub async fn list(
    db: &mut impl DbHandle,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EscrowTransaction>, i64), StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<EscrowTransaction> = obs
        .run(
            "escrow_transactions.list",
            sqlx::query_as(
                "select * from escrow_transactions where ($1 is null or user_id = $1 or counterparty_id = $1) \
                 and ($2 is null or project_id = $2) and ($3 is null or type = $3) and ($4 is null or status = $4) \
                 and ($5 is null or created_at >= $5) and ($6 is null or created_at <= $6) \
                 order by created_at desc, id desc limit $7 offset $8",
            )
            .bind(filter.party)
            .bind(filter.project_id)
            .bind(filter.kind)
            .bind(filter.status)
            .bind(filter.from)
            .bind(filter.to)
            .bind(limit)
            .bind(offset)
            .fetch_all(conn),
        )
        .await?;
    let (conn, obs) = db.parts();
    let (total,): (i64,) = obs
        .run(
            "escrow_transactions.count",
            sqlx::query_as(
                "select count(*) from escrow_transactions where ($1 is null or user_id = $1 or counterparty_id = $1) \
                 and ($2 is null or project_id = $2) and ($3 is null or type = $3) and ($4 is null or status = $4) \
                 and ($5 is null or created_at >= $5) and ($6 is null or created_at <= $6)",
            )
            .bind(filter.party)
            .bind(filter.project_id)
            .bind(filter.kind)
            .bind(filter.status)
            .bind(filter.from)
            .bind(filter.to)
            .fetch_one(conn),
        )
        .await?;
    Ok((rows, total))
}
