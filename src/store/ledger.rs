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

use super::kept::{KeptRow, Values};
use super::{DbHandle, Engine, StoreError, Tx, timestamp};
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

    /// The fee account a project's holds credit: one of [`FEE_SHARDS`]
    /// per currency, chosen by the project (see [`Account::fee_shard`]).
    pub fn fees(project_id: &str, currency: Currency) -> Account {
        Account::fee_shard(fee_shard_of(project_id), currency)
    }

    /// The platform's fee income in a currency is split over
    /// [`FEE_SHARDS`] accounts, so that holds of different projects do not
    /// wait for each other's commit on one row (every hold credits a fee
    /// account, and its row stays locked until the hold commits). Fees are
    /// only ever credited, so any shard will do; the platform's fees are
    /// their sum ([`LedgerReport::platform_fees`]). Shard 0 is the account
    /// from before the split (`platform_fees::NGN`), shard n is
    /// `platform_fees:n:NGN`.
    pub fn fee_shard(shard: u32, currency: Currency) -> Account {
        Account {
            kind: AccountKind::PlatformFees,
            owner_id: if shard == 0 { String::new() } else { shard.to_string() },
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

/// How many fee accounts a currency has (opened by migration
/// `20261208000001_fee_shards.sql`; a shard missing is opened by its first
/// credit, like any account).
pub const FEE_SHARDS: u32 = 16;

/// A project's fee shard: FNV-1a of its id, so a project always credits the
/// same account and projects spread evenly over the shards.
fn fee_shard_of(project_id: &str) -> u32 {
    let hash = project_id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % FEE_SHARDS
}

/// One movement of money.
pub struct Transfer<'a> {
    pub kind: &'static str,
    pub debit: &'a Account,
    pub credit: &'a Account,
    pub amount: i64,
    pub escrow_transaction_id: Option<&'a str>,
}

/// Opens an account with `balance` if it does not exist; false if it did.
/// `on conflict do nothing` with no target: the row is unique both by id and
/// by (kind, owner, currency), and PostgreSQL raises a unique violation on
/// any index that is not the named arbiter when two transactions create the
/// same account at once.
async fn open_account(db: &mut impl DbHandle, account: &Account, id: &str, balance: i64) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let opened = obs
        .run(
            "ledger_accounts.open",
            sqlx::query(
                "insert into ledger_accounts (id, kind, owner_id, currency, balance, created_at) \
                 values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
            )
            .bind(id)
            .bind(account.kind.as_str())
            .bind(&account.owner_id)
            .bind(account.currency.code())
            .bind(balance)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(opened.rows_affected() == 1)
}

/// Opens an account at 0 with its owner (a project's escrow account when
/// the project is created), so that the money operations find it.
pub async fn open(db: &mut impl DbHandle, account: &Account) -> Result<(), StoreError> {
    open_account(db, account, &account.id(), 0).await?;
    Ok(())
}

/// Posts a transfer: see [`post`].
pub async fn transfer(tx: &mut Tx, transfer: Transfer<'_>) -> Result<(), StoreError> {
    post(tx, &[transfer]).await
}

/// An account's change in one posting, and the bounds its balance must end
/// within: never below zero (the gateway's account, money outside the
/// platform, not below -MAX_BALANCE), never above MAX_BALANCE.
struct Change<'a> {
    account: &'a Account,
    delta: i64,
}

impl Change<'_> {
    fn floor(&self) -> i64 {
        if self.account.kind.may_go_negative() {
            -MAX_BALANCE
        } else {
            0
        }
    }

    /// The error for a change its account's bounds refuse.
    fn refused(&self, id: String) -> StoreError {
        if self.delta < 0 && self.floor() == 0 {
            StoreError::InsufficientFunds(id)
        } else {
            StoreError::BalanceLimit(id)
        }
    }

    /// The balances (before) from which this change stays within bounds.
    fn allowed_before(&self) -> (i64, i64) {
        // (Saturating: every stored balance is far inside i64's range.)
        (
            self.floor().saturating_sub(self.delta),
            MAX_BALANCE.saturating_sub(self.delta),
        )
    }
}

/// Posts transfers together: every account's balance changes by its net
/// amount in one compare-and-set statement (each balance must end within
/// its bounds), and the transfers' rows are kept for the commit (written
/// with the transaction's other kept rows, see [`super::kept`]). Fails
/// with [`StoreError::InsufficientFunds`] or [`StoreError::BalanceLimit`]
/// when an account's bounds refuse its change, and the caller's transaction
/// must then be dropped (the other accounts' changes are in it).
///
/// An account is created by its first credit: an account that cannot go
/// negative and does not exist holds 0, so a debit from it is refused like
/// any other debit the balance cannot cover.
pub async fn post(tx: &mut Tx, transfers: &[Transfer<'_>]) -> Result<(), StoreError> {
    // A hold posts two a milestone (eight parameters each in the commit's
    // insert).
    const MAX_TRANSFERS: usize = 2 * crate::domain::escrow::MAX_MILESTONES;
    if transfers.is_empty() {
        return Ok(());
    }
    if transfers.len() > MAX_TRANSFERS {
        return Err(StoreError::Sqlx(sqlx::Error::Protocol(format!(
            "at most {MAX_TRANSFERS} transfers are posted together"
        ))));
    }
    let mut changes: BTreeMap<String, Change<'_>> = BTreeMap::new();
    for transfer in transfers {
        if transfer.debit.currency != transfer.credit.currency {
            return Err(StoreError::Sqlx(sqlx::Error::Protocol(
                "a transfer must stay in one currency".into(),
            )));
        }
        if !(1..=MAX_BALANCE).contains(&transfer.amount) {
            return Err(StoreError::Sqlx(sqlx::Error::Protocol(format!(
                "a transfer's amount must be from 1 to {MAX_BALANCE}"
            ))));
        }
        for (account, delta) in [(transfer.debit, -transfer.amount), (transfer.credit, transfer.amount)] {
            let change = changes.entry(account.id()).or_insert(Change { account, delta: 0 });
            change.delta = change
                .delta
                .checked_add(delta)
                .ok_or_else(|| StoreError::BalanceLimit(account.id()))?;
        }
    }
    changes.retain(|_, change| change.delta != 0);
    if changes.is_empty() {
        // (Transfers that cancel out change no balance.)
        record_transfers(tx, transfers);
        return Ok(());
    }

    // One statement changes every account that exists and whose bounds
    // allow its change; it names the ones it changed. On PostgreSQL it
    // first locks the accounts in the order of their ids, as every posting
    // does: two postings that share accounts then never hold one each and
    // wait for the other (one UPDATE alone locks rows in whatever order it
    // finds them). SQLite's write transaction already excludes the others.
    let (_, obs) = tx.parts();
    let postgres = obs.engine() == Engine::Postgres;
    let mut sql = String::new();
    if postgres {
        sql.push_str("with locked as materialized (select id from ledger_accounts where id in (");
        for i in 0..changes.len() {
            let comma = if i == 0 { "" } else { ", " };
            sql.push_str(&format!("{comma}${}", 4 * i + 1));
        }
        sql.push_str(") order by id for update) ");
    }
    sql.push_str("update ledger_accounts set balance = balance + case ledger_accounts.id");
    for i in 0..changes.len() {
        sql.push_str(&format!(" when ${} then ${}", 4 * i + 1, 4 * i + 2));
    }
    sql.push_str(" end");
    if postgres {
        sql.push_str(" from locked where ledger_accounts.id = locked.id and (");
    } else {
        sql.push_str(" where (");
    }
    for i in 0..changes.len() {
        let or = if i == 0 { "" } else { " or " };
        sql.push_str(&format!(
            "{or}(ledger_accounts.id = ${} and balance between ${} and ${})",
            4 * i + 1,
            4 * i + 3,
            4 * i + 4
        ));
    }
    sql.push_str(") returning ledger_accounts.id");
    // Only placeholders are generated; every value is bound.
    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
    for (id, change) in &changes {
        let (low, high) = change.allowed_before();
        query = query.bind(id.clone()).bind(change.delta).bind(low).bind(high);
    }
    let (conn, obs) = tx.parts();
    let changed: Vec<(String,)> = obs.run("ledger_accounts.post", query.fetch_all(conn)).await?;
    if changed.len() != changes.len() {
        // Not changed: refused by its bounds, or not created yet.
        for (id, change) in &changes {
            if changed.iter().any(|(c,)| c == id) {
                continue;
            }
            let (low, high) = change.allowed_before();
            if !(low..=high).contains(&0) {
                return Err(change.refused(id.clone()));
            }
            if open_account(tx, change.account, id, change.delta).await? {
                continue;
            }
            // Another transaction created it meanwhile (or it existed and
            // its bounds refused the change): change it on its own.
            let (conn, obs) = tx.parts();
            let changed = obs
                .run(
                    "ledger_accounts.post_one",
                    sqlx::query(
                        "update ledger_accounts set balance = balance + $2 where id = $1 and balance between $3 and $4",
                    )
                    .bind(id)
                    .bind(change.delta)
                    .bind(low)
                    .bind(high)
                    .execute(conn),
                )
                .await?;
            if changed.rows_affected() != 1 {
                return Err(change.refused(id.clone()));
            }
        }
    }

    record_transfers(tx, transfers);
    Ok(())
}

/// A posted transfer's row, kept by its transaction and written at commit
/// (nothing reads a transfer back in the transaction that posts it).
#[derive(Debug)]
pub(super) struct PendingTransfer {
    id: String,
    kind: &'static str,
    debit_account_id: String,
    credit_account_id: String,
    amount: i64,
    currency: Currency,
    escrow_transaction_id: Option<String>,
    created_at: String,
}

impl KeptRow for PendingTransfer {
    const INSERT: &'static str = "insert into ledger_transfers (id, kind, debit_account_id, credit_account_id, amount, \
                                  currency, escrow_transaction_id, created_at)";
    const OPERATION: &'static str = "ledger_transfers.insert";

    fn bind(&self, values: &mut Values) {
        values.add(self.id.as_str());
        values.add(self.kind);
        values.add(self.debit_account_id.as_str());
        values.add(self.credit_account_id.as_str());
        values.add(self.amount);
        values.add(self.currency.code());
        values.add(self.escrow_transaction_id.as_deref());
        values.add(self.created_at.as_str());
    }
}

/// Keeps posted transfers' rows for the commit.
fn record_transfers(tx: &mut Tx, transfers: &[Transfer<'_>]) {
    let now = timestamp::now();
    tx.transfers.extend(transfers.iter().map(|transfer| PendingTransfer {
        id: Uuid::now_v7().to_string(),
        kind: transfer.kind,
        debit_account_id: transfer.debit.id(),
        credit_account_id: transfer.credit.id(),
        amount: transfer.amount,
        currency: transfer.debit.currency,
        escrow_transaction_id: transfer.escrow_transaction_id.map(str::to_owned),
        created_at: now.clone(),
    }));
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
    /// Per currency: the platform's fees, the sum of its fee accounts.
    pub platform_fees: BTreeMap<String, i64>,
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
    let totals: Vec<(String, i64, i64, i64)> = obs
        .run(
            "ledger.check_totals",
            sqlx::query_as(
                "select currency, cast(coalesce(sum(balance), 0) as bigint), count(*), \
                 cast(coalesce(sum(case when kind = 'platform_fees' then balance else 0 end), 0) as bigint) \
                 from ledger_accounts group by currency",
            )
            .fetch_all(conn),
        )
        .await?;
    for (currency, total, count, fees) in totals {
        if total != 0 {
            report
                .problems
                .push(format!("{currency}: balances sum to {total}, not 0"));
        }
        if fees != 0 {
            report.platform_fees.insert(currency.clone(), fees);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration that opens the platform's accounts names them by the
    /// ids the code derives, for every currency.
    #[test]
    fn the_platform_accounts_opened_by_migration_are_the_codes() {
        let migration = include_str!("../../migrations/20261207000009_platform_accounts.sql");
        for currency in Currency::ALL {
            for account in [Account::fee_shard(0, currency), Account::external(currency)] {
                let row = format!(
                    "('{}', '{}', '', '{}', 0,",
                    account.id(),
                    account.kind.as_str(),
                    currency.code()
                );
                assert!(migration.contains(&row), "{row} missing");
            }
        }
    }

    #[test]
    fn a_project_always_credits_the_same_fee_shard_and_projects_spread_over_all() {
        let project = Uuid::now_v7().to_string();
        assert_eq!(
            Account::fees(&project, Currency::Ngn),
            Account::fees(&project, Currency::Ngn)
        );
        let mut per_shard = [0_u32; FEE_SHARDS as usize];
        for _ in 0..1600 {
            per_shard[fee_shard_of(&Uuid::now_v7().to_string()) as usize] += 1;
        }
        // 100 expected a shard; no shard left empty or taking a fifth.
        assert!(per_shard.iter().all(|&n| (40..=320).contains(&n)), "{per_shard:?}");
    }

    #[test]
    fn the_first_fee_shard_is_the_account_from_before_the_split() {
        assert_eq!(Account::fee_shard(0, Currency::Usd).id(), "platform_fees::USD");
        assert_eq!(Account::fee_shard(15, Currency::Usd).id(), "platform_fees:15:USD");
    }
}
