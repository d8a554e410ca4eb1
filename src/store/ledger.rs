//! The double-entry ledger (TigerBeetle's vocabulary: accounts and
//! transfers). A transfer moves an amount from a debit account to a credit
//! account of the same currency, so every transfer is balanced by
//! construction and the balances of all accounts of a currency sum to zero.
//!
//! Balances are stored on the accounts and changed in the same transaction
//! as the transfer row. The debit is a compare-and-set
//! (`… where balance >= $amount`): two concurrent debits cannot both pass,
//! on either engine, without `select … for update`. Only the external
//! gateway account (money outside the platform) may go negative.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::{DbHandle, StoreError, timestamp};
use crate::domain::money::{Currency, MAX_BALANCE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    UserAvailable,
    UserReserved,
    ProjectEscrow,
    PlatformFees,
    ExternalGateway,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::UserAvailable => "user_available",
            AccountKind::UserReserved => "user_reserved",
            AccountKind::ProjectEscrow => "project_escrow",
            AccountKind::PlatformFees => "platform_fees",
            AccountKind::ExternalGateway => "external_gateway",
        }
    }

    fn may_go_negative(self) -> bool {
        self == AccountKind::ExternalGateway
    }
}

/// An account, named by what it is for. Its id is derived from these, so
/// it can be created on first use without a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub kind: AccountKind,
    pub owner_id: String,
    pub currency: Currency,
}

impl Account {
    pub fn available(user_id: &str, currency: Currency) -> Account {
        Account {
            kind: AccountKind::UserAvailable,
            owner_id: user_id.to_owned(),
            currency,
        }
    }

    pub fn reserved(user_id: &str, currency: Currency) -> Account {
        Account {
            kind: AccountKind::UserReserved,
            owner_id: user_id.to_owned(),
            currency,
        }
    }

    pub fn escrow(project_id: &str, currency: Currency) -> Account {
        Account {
            kind: AccountKind::ProjectEscrow,
            owner_id: project_id.to_owned(),
            currency,
        }
    }

    pub fn fees(currency: Currency) -> Account {
        Account {
            kind: AccountKind::PlatformFees,
            owner_id: String::new(),
            currency,
        }
    }

    pub fn external(currency: Currency) -> Account {
        Account {
            kind: AccountKind::ExternalGateway,
            owner_id: String::new(),
            currency,
        }
    }

    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.kind.as_str(), self.owner_id, self.currency.code())
    }
}

/// One movement of money.
pub struct Transfer<'a> {
    pub kind: &'static str,
    pub debit: &'a Account,
    pub credit: &'a Account,
    pub amount: i64,
    pub escrow_transaction_id: Option<&'a str>,
}

/// Creates the account if it does not exist. `on conflict do nothing` with
/// no target: the row is unique both by id and by (kind, owner, currency),
/// and PostgreSQL raises a unique violation on any index that is not the
/// named arbiter when two transactions create the same account at once.
async fn ensure_account(db: &mut impl DbHandle, account: &Account) -> Result<String, StoreError> {
    let id = account.id();
    let (conn, obs) = db.parts();
    obs.run(
        "ledger_accounts.ensure",
        sqlx::query(
            "insert into ledger_accounts (id, kind, owner_id, currency, balance, created_at) \
             values ($1, $2, $3, $4, 0, $5) on conflict do nothing",
        )
        .bind(&id)
        .bind(account.kind.as_str())
        .bind(&account.owner_id)
        .bind(account.currency.code())
        .bind(timestamp::now())
        .execute(conn),
    )
    .await?;
    Ok(id)
}

/// Posts a transfer: debit, credit, record. Fails with
/// [`StoreError::InsufficientFunds`] (and changes nothing the caller's
/// transaction will keep) when the debit account cannot cover it.
pub async fn transfer(db: &mut impl DbHandle, transfer: Transfer<'_>) -> Result<(), StoreError> {
    if transfer.debit.currency != transfer.credit.currency {
        return Err(StoreError::Sqlx(sqlx::Error::Protocol(
            "a transfer must stay in one currency".into(),
        )));
    }
    // Both sides are compare-and-set against their bounds: a debit never
    // takes an account below zero (the gateway's below -MAX_BALANCE), a
    // credit never takes it above MAX_BALANCE. A refused side changes
    // nothing the caller's transaction will keep. An account that cannot go
    // negative and does not exist yet holds 0, so its debit is refused by
    // the same compare-and-set (no row to update): only the gateway's
    // account, which a debit may create, is made sure of first.
    let floor = if transfer.debit.kind.may_go_negative() {
        -MAX_BALANCE
    } else {
        0
    };
    let debit_id = if floor == 0 {
        transfer.debit.id()
    } else {
        ensure_account(db, transfer.debit).await?
    };
    let credit_id = ensure_account(db, transfer.credit).await?;
    let (conn, obs) = db.parts();
    let debited = obs
        .run(
            "ledger_accounts.debit",
            sqlx::query("update ledger_accounts set balance = balance - $2 where id = $1 and balance - $2 >= $3")
                .bind(&debit_id)
                .bind(transfer.amount)
                .bind(floor)
                .execute(conn),
        )
        .await?;
    if debited.rows_affected() != 1 {
        return Err(if floor == 0 {
            StoreError::InsufficientFunds(debit_id)
        } else {
            StoreError::BalanceLimit(debit_id)
        });
    }
    let (conn, obs) = db.parts();
    let credited = obs
        .run(
            "ledger_accounts.credit",
            sqlx::query("update ledger_accounts set balance = balance + $2 where id = $1 and balance <= $3 - $2")
                .bind(&credit_id)
                .bind(transfer.amount)
                .bind(MAX_BALANCE)
                .execute(conn),
        )
        .await?;
    if credited.rows_affected() != 1 {
        return Err(StoreError::BalanceLimit(credit_id));
    }
    let (conn, obs) = db.parts();
    obs.run(
        "ledger_transfers.insert",
        sqlx::query(
            "insert into ledger_transfers (id, kind, debit_account_id, credit_account_id, amount, currency, \
             escrow_transaction_id, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(transfer.kind)
        .bind(&debit_id)
        .bind(&credit_id)
        .bind(transfer.amount)
        .bind(transfer.debit.currency.code())
        .bind(transfer.escrow_transaction_id)
        .bind(timestamp::now())
        .execute(conn),
    )
    .await?;
    Ok(())
}

pub async fn balance(db: &mut impl DbHandle, account: &Account) -> Result<i64, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(i64,)> = obs
        .run(
            "ledger_accounts.balance",
            sqlx::query_as("select balance from ledger_accounts where id = $1")
                .bind(account.id())
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.map_or(0, |(b,)| b))
}

/// A user's balances: (currency, available, reserved).
pub async fn user_balances(db: &mut impl DbHandle, user_id: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<(String, String, i64)> = obs
        .run(
            "ledger_accounts.user_balances",
            sqlx::query_as(
                "select kind, currency, balance from ledger_accounts \
                 where owner_id = $1 and kind in ('user_available', 'user_reserved') order by currency",
            )
            .bind(user_id)
            .fetch_all(conn),
        )
        .await?;
    let mut by_currency: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (kind, currency, balance) in rows {
        let entry = by_currency.entry(currency).or_default();
        if kind == "user_available" {
            entry.0 = balance;
        } else {
            entry.1 = balance;
        }
    }
    Ok(by_currency.into_iter().map(|(c, (a, r))| (c, a, r)).collect())
}

/// Money held in escrow now, per currency (for the scrape-time gauge).
pub async fn escrow_totals(db: &mut impl DbHandle) -> Result<Vec<(String, i64)>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "ledger_accounts.escrow_totals",
        sqlx::query_as(
            "select currency, cast(coalesce(sum(balance), 0) as bigint) from ledger_accounts \
             where kind = 'project_escrow' group by currency",
        )
        .fetch_all(conn),
    )
    .await
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct LedgerReport {
    pub balanced: bool,
    /// Each problem found, in words an operator can act on.
    pub problems: Vec<String>,
    /// Per currency: the sum of all balances (always 0 when balanced).
    pub totals: BTreeMap<String, i64>,
    /// Per currency: money held in escrow.
    pub held_in_escrow: BTreeMap<String, i64>,
    pub accounts: i64,
    pub transfers: i64,
}

/// Proves the books: per currency the balances sum to zero; no account but
/// the external one is negative; every stored balance equals its transfers;
/// every transfer's currency is its accounts'; every project's escrow equals
/// what its milestones still hold.
pub async fn check(db: &mut impl DbHandle) -> Result<LedgerReport, StoreError> {
    let mut report = LedgerReport::default();
    let (conn, obs) = db.parts();
    let totals: Vec<(String, i64, i64)> = obs
        .run(
            "ledger.check_totals",
            sqlx::query_as("select currency, cast(coalesce(sum(balance), 0) as bigint), count(*) from ledger_accounts group by currency")
                .fetch_all(conn),
        )
        .await?;
    for (currency, total, count) in totals {
        if total != 0 {
            report
                .problems
                .push(format!("{currency}: balances sum to {total}, not 0"));
        }
        report.totals.insert(currency, total);
        report.accounts += count;
    }
    let (conn, obs) = db.parts();
    let negative: Vec<(String, i64)> = obs
        .run(
            "ledger.check_negative",
            sqlx::query_as("select id, balance from ledger_accounts where balance < 0 and kind <> 'external_gateway'")
                .fetch_all(conn),
        )
        .await?;
    for (id, balance) in negative {
        report.problems.push(format!("{id} is negative ({balance})"));
    }
    let (conn, obs) = db.parts();
    let out_of_bounds: Vec<(String, i64)> = obs
        .run(
            "ledger.check_bounds",
            sqlx::query_as("select id, balance from ledger_accounts where balance > $1 or balance < $2")
                .bind(MAX_BALANCE)
                .bind(-MAX_BALANCE)
                .fetch_all(conn),
        )
        .await?;
    for (id, balance) in out_of_bounds {
        report
            .problems
            .push(format!("{id} is past the balance limit of ±{MAX_BALANCE} ({balance})"));
    }
    let (conn, obs) = db.parts();
    let drift: Vec<(String, i64, i64)> = obs
        .run(
            "ledger.check_balances",
            sqlx::query_as(
                "select a.id, a.balance, cast( \
                   coalesce((select sum(t.amount) from ledger_transfers t where t.credit_account_id = a.id), 0) \
                 - coalesce((select sum(t.amount) from ledger_transfers t where t.debit_account_id = a.id), 0) \
                 as bigint) from ledger_accounts a",
            )
            .fetch_all(conn),
        )
        .await?;
    for (id, stored, computed) in drift {
        if stored != computed {
            report.problems.push(format!(
                "{id}: stored balance {stored} but its transfers add up to {computed}"
            ));
        }
    }
    let (conn, obs) = db.parts();
    let (mixed,): (i64,) = obs
        .run(
            "ledger.check_currencies",
            sqlx::query_as(
                "select count(*) from ledger_transfers t join ledger_accounts d on d.id = t.debit_account_id \
                 join ledger_accounts c on c.id = t.credit_account_id \
                 where d.currency <> t.currency or c.currency <> t.currency",
            )
            .fetch_one(conn),
        )
        .await?;
    if mixed > 0 {
        report.problems.push(format!("{mixed} transfers cross currencies"));
    }
    let (conn, obs) = db.parts();
    let escrow: Vec<(String, String, i64, i64)> = obs
        .run(
            "ledger.check_escrow",
            sqlx::query_as(
                "select p.id, p.currency, coalesce(a.balance, 0), \
                   cast(coalesce((select sum(m.amount - m.released_amount - m.refunded_amount) from milestones m \
                     where m.project_id = p.id \
                     and m.status in ('funded', 'submitted', 'approved', 'rejected', 'disputed')), 0) as bigint) \
                 from projects p left join ledger_accounts a \
                   on a.kind = 'project_escrow' and a.owner_id = p.id and a.currency = p.currency",
            )
            .fetch_all(conn),
        )
        .await?;
    for (project, currency, held, owed) in escrow {
        if held != owed {
            report.problems.push(format!(
                "project {project}: escrow holds {held} {currency} but its milestones hold {owed}"
            ));
        }
        if held != 0 {
            *report.held_in_escrow.entry(currency).or_default() += held;
        }
    }
    let (conn, obs) = db.parts();
    let (transfers,): (i64,) = obs
        .run(
            "ledger.check_count",
            sqlx::query_as("select count(*) from ledger_transfers").fetch_one(conn),
        )
        .await?;
    report.transfers = transfers;
    report.balanced = report.problems.is_empty();
    Ok(report)
}
