//! Escrow transactions: the business record of each money operation (what
//! clients list as "transactions"); its ledger transfers point back at it.

use sqlx::FromRow;

use super::kept::{self, KeptRow, Values};
use super::{DbHandle, StoreError, Tx, timestamp};
use crate::domain::money::Currency;
use crate::domain::payment::{TransactionKind, TransactionStatus};

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct EscrowTransaction {
    pub id: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: TransactionKind,
    /// `review`: a deposit whose money did not match, held for a person.
    pub status: TransactionStatus,
    pub user_id: String,
    pub counterparty_id: Option<String>,
    pub project_id: Option<String>,
    pub milestone_id: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// Platform fee in minor units (holds only).
    pub fee: i64,
    pub currency: Currency,
    pub provider: Option<String>,
    pub gateway_reference: Option<String>,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Deposits: where the payer pays (a hosted checkout page).
    pub checkout_url: Option<String>,
    /// Withdrawals: the payout destination paid.
    pub destination_id: Option<String>,
    /// Why the gateway refused or failed it (failed, reversed or review).
    pub failure_reason: Option<String>,
    /// Deposits: what the gateway reported as received, minor units.
    pub amount_received: Option<i64>,
}

/// The columns of [`EscrowTransaction`], for `select` and `returning`
/// (a macro so that queries stay `&'static str`).
macro_rules! columns {
    () => {
        "id, type, status, user_id, counterparty_id, project_id, milestone_id, amount, fee, currency, provider, \
         gateway_reference, notes, created_at, updated_at, checkout_url, destination_id, failure_reason, amount_received"
    };
}

pub struct NewTransaction<'a> {
    pub id: &'a str,
    pub kind: TransactionKind,
    pub status: TransactionStatus,
    pub user_id: &'a str,
    pub counterparty_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub milestone_id: Option<&'a str>,
    pub amount: i64,
    pub fee: i64,
    pub currency: Currency,
    pub provider: Option<&'a str>,
    pub notes: Option<&'a str>,
    pub destination_id: Option<&'a str>,
}

impl Tx {
    /// Keeps a business record for the commit (written with the
    /// transaction's other kept rows, see [`super::kept`]) and returns it as
    /// it will be stored. For records nothing in the transaction reads back
    /// and whose id is new (escrow's holds and releases); a payment, whose
    /// reference may be a duplicate, is written at once by [`insert`].
    pub fn record(&mut self, new: NewTransaction<'_>) -> EscrowTransaction {
        let record = EscrowTransaction::new(new);
        self.records.push(record.clone());
        record
    }
}

impl EscrowTransaction {
    /// A new record as it is stored: its reference is its id, created and
    /// updated now, nothing yet from a gateway.
    fn new(new: NewTransaction<'_>) -> EscrowTransaction {
        let now = timestamp::now();
        EscrowTransaction {
            id: new.id.to_owned(),
            kind: new.kind,
            status: new.status,
            user_id: new.user_id.to_owned(),
            counterparty_id: new.counterparty_id.map(str::to_owned),
            project_id: new.project_id.map(str::to_owned),
            milestone_id: new.milestone_id.map(str::to_owned),
            amount: new.amount,
            fee: new.fee,
            currency: new.currency,
            provider: new.provider.map(str::to_owned),
            gateway_reference: Some(new.id.to_owned()),
            notes: new.notes.map(str::to_owned),
            created_at: now.clone(),
            updated_at: now,
            checkout_url: None,
            destination_id: new.destination_id.map(str::to_owned),
            failure_reason: None,
            amount_received: None,
        }
    }
}

impl KeptRow for EscrowTransaction {
    const INSERT: &'static str = concat!("insert into escrow_transactions (", columns!(), ")");
    const OPERATION: &'static str = "escrow_transactions.insert";

    fn bind(&self, values: &mut Values) {
        values.add(self.id.as_str());
        values.add(self.kind);
        values.add(self.status);
        values.add(self.user_id.as_str());
        values.add(self.counterparty_id.as_deref());
        values.add(self.project_id.as_deref());
        values.add(self.milestone_id.as_deref());
        values.add(self.amount);
        values.add(self.fee);
        values.add(self.currency);
        values.add(self.provider.as_deref());
        values.add(self.gateway_reference.as_deref());
        values.add(self.notes.as_deref());
        values.add(self.created_at.as_str());
        values.add(self.updated_at.as_str());
        values.add(self.checkout_url.as_deref());
        values.add(self.destination_id.as_deref());
        values.add(self.failure_reason.as_deref());
        values.add(self.amount_received);
    }
}

/// Writes a business record and returns it as stored.
pub async fn insert(db: &mut impl DbHandle, new: NewTransaction<'_>) -> Result<EscrowTransaction, StoreError> {
    let record = EscrowTransaction::new(new);
    let query = kept::insert_one(&record)?;
    let (conn, obs) = db.parts();
    obs.run(EscrowTransaction::OPERATION, query.execute(conn))
        .await
        .map_err(super::map_duplicate("a transaction with this reference"))?;
    Ok(record)
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<EscrowTransaction>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.find",
        sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from escrow_transactions where id = $1"
        ))
        .bind(id)
        .fetch_optional(conn),
    )
    .await
}

/// Filters for listing; `None` means "any".
#[derive(Default)]
pub struct Filter<'a> {
    /// Only transactions this user is a party to (None: all, for admins).
    pub party: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub kind: Option<TransactionKind>,
    pub status: Option<TransactionStatus>,
    /// Inclusive bounds on `created_at`, in the stored timestamp format.
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    /// Only transactions after this one in the list's order (a cursor).
    pub after: Option<&'a str>,
}

/// The list's filters other than the party (`$2` to `$6`) and the cursor
/// (`$9`), in the list's order: newest first.
macro_rules! list_filters {
    () => {
        "($2 is null or project_id = $2) and ($3 is null or type = $3) and ($4 is null or status = $4) \
         and ($5 is null or created_at >= $5) and ($6 is null or created_at <= $6)"
    };
}
macro_rules! after_cursor {
    () => {
        " and ($9 is null or (created_at, id) < (select created_at, id from escrow_transactions where id = $9))"
    };
}

/// A party's transactions: each side (`user_id`, `counterparty_id`) walked
/// on its own index in the list's order, at most `$10` rows each, merged.
/// (`user_id = $1 or counterparty_id = $1` would read and sort the whole
/// history of the user to give one page.)
pub const PARTY_PAGE: &str = concat!(
    "select ",
    columns!(),
    " from (select * from (select ",
    columns!(),
    " from escrow_transactions where user_id = $1 and ",
    list_filters!(),
    after_cursor!(),
    " order by created_at desc, id desc limit $10) mine union all select * from (select ",
    columns!(),
    " from escrow_transactions where counterparty_id = $1 and user_id <> $1 and ",
    list_filters!(),
    after_cursor!(),
    " order by created_at desc, id desc limit $10) theirs) both_sides \
     order by created_at desc, id desc limit $7 offset $8"
);

/// Every transaction (admins), on the `(created_at, id)` index.
pub const ALL_PAGE: &str = concat!(
    "select ",
    columns!(),
    " from escrow_transactions where ($1 is null) and ",
    list_filters!(),
    after_cursor!(),
    " order by created_at desc, id desc limit $7 offset $8"
);

const PARTY_COUNT: &str = concat!(
    "select (select count(*) from escrow_transactions where user_id = $1 and ",
    list_filters!(),
    ") + (select count(*) from escrow_transactions where counterparty_id = $1 and user_id <> $1 and ",
    list_filters!(),
    ")"
);

const ALL_COUNT: &str = concat!(
    "select count(*) from escrow_transactions where ($1 is null) and ",
    list_filters!()
);

/// Binds the party and the filters (`$1` to `$6`) of the list's queries.
fn with_filters<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    filter: &Filter<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    query
        .bind(filter.party)
        .bind(filter.project_id)
        .bind(filter.kind)
        .bind(filter.status)
        .bind(filter.from)
        .bind(filter.to)
}

/// A page of transactions, newest first, and how many match in all (not
/// counted when paging by cursor: None). A party's page reads about
/// `limit + offset` index entries a side, however long their history.
pub async fn list(
    db: &mut impl DbHandle,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EscrowTransaction>, Option<i64>), StoreError> {
    let (page, count) = match filter.party {
        Some(_) => (PARTY_PAGE, PARTY_COUNT),
        None => (ALL_PAGE, ALL_COUNT),
    };
    let (conn, obs) = db.parts();
    let rows: Vec<EscrowTransaction> = obs
        .run(
            "escrow_transactions.list",
            with_filters(sqlx::query_as(page), filter)
                .bind(limit)
                .bind(offset)
                .bind(filter.after)
                .bind(limit.saturating_add(offset))
                .fetch_all(conn),
        )
        .await?;
    if filter.after.is_some() {
        return Ok((rows, None));
    }
    let (conn, obs) = db.parts();
    let (total,): (i64,) = obs
        .run(
            "escrow_transactions.count",
            with_filters(sqlx::query_as(count), filter).fetch_one(conn),
        )
        .await?;
    Ok((rows, Some(total)))
}

/// Settles a pending gateway record (compare-and-set from `pending`): the
/// new status, why (for failures and reviews) and what the provider reported
/// received. False if it was no longer pending.
pub async fn settle(
    db: &mut impl DbHandle,
    id: &str,
    to: TransactionStatus,
    failure_reason: Option<&str>,
    amount_received: Option<i64>,
) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "escrow_transactions.settle",
            sqlx::query(
                "update escrow_transactions set status = $2, failure_reason = $3, amount_received = $4, \
                 updated_at = $5, lease_until = null where id = $1 and status = 'pending'",
            )
            .bind(id)
            .bind(to)
            .bind(failure_reason)
            .bind(amount_received)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Keeps the hosted checkout link of a pending deposit.
pub async fn set_checkout_url(db: &mut impl DbHandle, id: &str, url: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.set_checkout_url",
        sqlx::query("update escrow_transactions set checkout_url = $2 where id = $1")
            .bind(id)
            .bind(url)
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// Pending deposits and withdrawals created at or before `cutoff` whose
/// reconciliation lease is free at `now`, oldest first.
pub async fn pending_due(
    db: &mut impl DbHandle,
    cutoff: &str,
    now: &str,
    limit: i64,
) -> Result<Vec<EscrowTransaction>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.pending_due",
        sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from escrow_transactions where status = 'pending' and type in ('deposit', 'withdrawal') \
             and created_at <= $1 and (lease_until is null or lease_until < $2) order by created_at, id limit $3"
        ))
        .bind(cutoff)
        .bind(now)
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// The oldest pending deposits and withdrawals, leased or not (for the
/// console's operator view).
pub async fn oldest_pending(db: &mut impl DbHandle, limit: i64) -> Result<Vec<EscrowTransaction>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.oldest_pending",
        sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from escrow_transactions where status = 'pending' and type in ('deposit', 'withdrawal') \
             order by created_at, id limit $1"
        ))
        .bind(limit)
        .fetch_all(conn),
    )
    .await
}

/// Takes the reconciliation lease on a pending record until `until`; false
/// if another worker holds it or the record is settled. The lease is what
/// keeps replicas from asking the provider about the same record at once;
/// settling stays a compare-and-set, so even an expired lease cannot settle
/// twice.
pub async fn take_lease(db: &mut impl DbHandle, id: &str, now: &str, until: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "escrow_transactions.take_lease",
            sqlx::query(
                "update escrow_transactions set lease_until = $3, checked_at = $2 where id = $1 \
                 and status = 'pending' and (lease_until is null or lease_until < $2)",
            )
            .bind(id)
            .bind(now)
            .bind(until)
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Lets go of a lease early (the record stays pending).
pub async fn release_lease(db: &mut impl DbHandle, id: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "escrow_transactions.release_lease",
        sqlx::query("update escrow_transactions set lease_until = null where id = $1")
            .bind(id)
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// Pending gateway records by kind, counted into age buckets: created after
/// each of `bounds` (newest bound first) and before all of them.
pub async fn pending_by_age(db: &mut impl DbHandle, bounds: [&str; 3]) -> Result<Vec<(String, [i64; 4])>, StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<(String, i64, i64, i64, i64)> = obs
        .run(
            "escrow_transactions.pending_by_age",
            sqlx::query_as(
                "select type, \
                 coalesce(sum(case when created_at > $1 then 1 else 0 end), 0), \
                 coalesce(sum(case when created_at <= $1 and created_at > $2 then 1 else 0 end), 0), \
                 coalesce(sum(case when created_at <= $2 and created_at > $3 then 1 else 0 end), 0), \
                 coalesce(sum(case when created_at <= $3 then 1 else 0 end), 0) \
                 from escrow_transactions where status = 'pending' and type in ('deposit', 'withdrawal') group by type",
            )
            .bind(bounds[0])
            .bind(bounds[1])
            .bind(bounds[2])
            .fetch_all(conn),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, a, b, c, d)| (kind, [a, b, c, d]))
        .collect())
}

/// Pending deposits and withdrawals created before `cutoff`.
pub async fn count_pending_before(db: &mut impl DbHandle, cutoff: &str) -> Result<i64, StoreError> {
    let (conn, obs) = db.parts();
    let (count,): (i64,) = obs
        .run(
            "escrow_transactions.count_stuck",
            sqlx::query_as(
                "select count(*) from escrow_transactions where status = 'pending' \
                 and type in ('deposit', 'withdrawal') and created_at < $1",
            )
            .bind(cutoff)
            .fetch_one(conn),
        )
        .await?;
    Ok(count)
}
