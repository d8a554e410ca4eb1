//! Rows a transaction keeps for its commit and inserts in one round trip
//! just before `COMMIT`: its business records and ledger transfers, audit
//! records, events, scheduled jobs and an idempotency key. Nothing in the
//! transaction reads them back, and they are written if and only if it
//! commits, so sending them one by one would only add round trips (on
//! SQLite, each one inside the writer's turn).
//!
//! Each kind is a [`KeptRow`]; a [`Batch`] makes one multi-row insert per
//! kind and sends them as one: on PostgreSQL one statement (the first
//! inserts as data-modifying `WITH`s), on SQLite the inserts separated by
//! `;` (sqlx runs each, binding its own `$n` parameters).

use sqlx::any::AnyArguments;
use sqlx::error::BoxDynError;
use sqlx::query::Query;
use sqlx::{Any, Arguments, Encode, Type};

use super::{Engine, StoreError};

type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

/// A row of one table, inserted at commit with the other kept rows.
pub(super) trait KeptRow {
    /// `insert into <table> (<columns>)`: [`KeptRow::bind`] adds one value
    /// for each column named.
    const INSERT: &'static str;
    /// How many columns [`KeptRow::INSERT`] names (derived, at compile time).
    const COLUMNS: usize = columns_named(Self::INSERT);
    /// What follows the values (an `on conflict` clause), or nothing.
    const AFTER: &'static str = "";
    /// The statement's operation name when it inserts these rows alone.
    const OPERATION: &'static str;

    /// Adds this row's values, in column order.
    fn bind(&self, values: &mut Values);
}

/// The values of a statement being built, in parameter order.
#[derive(Default)]
pub(super) struct Values {
    arguments: AnyArguments,
    /// The first value that could not be encoded: the statement fails with it.
    failed: Option<BoxDynError>,
}

impl Values {
    pub(super) fn add<'t, T: Encode<'t, Any> + Type<Any>>(&mut self, value: T) {
        if let Err(err) = self.arguments.add(value)
            && self.failed.is_none()
        {
            self.failed = Some(err);
        }
    }

    /// The statement `sql` with these values bound.
    fn query<'q>(self, sql: String) -> Result<AnyQuery<'q>, StoreError> {
        match self.failed {
            Some(err) => Err(StoreError::Sqlx(sqlx::Error::Encode(err))),
            None => Ok(sqlx::query_with(sqlx::AssertSqlSafe(sql), self.arguments)),
        }
    }
}

/// Inserts of several kinds of rows, sent as one.
#[derive(Default)]
pub(super) struct Batch {
    /// (operation name if alone, SQL), in parameter order.
    inserts: Vec<(&'static str, String)>,
    values: Values,
}

impl Batch {
    /// Adds one insert of `rows` (none if there are none).
    pub(super) fn add<R: KeptRow>(&mut self, rows: &[R]) {
        if rows.is_empty() {
            return;
        }
        let first = self.values.arguments.len();
        self.inserts.push((R::OPERATION, insert_sql::<R>(first, rows.len())));
        for row in rows {
            row.bind(&mut self.values);
        }
        debug_assert_eq!(
            self.values.arguments.len() - first,
            rows.len() * R::COLUMNS,
            "{} binds one value a column",
            R::OPERATION
        );
    }

    /// The statement and its operation name: the one insert's own, or
    /// `transaction.commit_writes` for several. `None` if nothing was added.
    /// Only placeholders are generated; every value is bound.
    pub(super) fn query<'q>(self, engine: Engine) -> Result<Option<(&'static str, AnyQuery<'q>)>, StoreError> {
        let Batch { mut inserts, values } = self;
        let operation = match inserts.as_slice() {
            [] => return Ok(None),
            [(only, _)] => *only,
            _ => "transaction.commit_writes",
        };
        let sql = match engine {
            Engine::Postgres => {
                // The last insert is the statement; its `returning`, if
                // any, is the statement's answer.
                let (_, last) = inserts.pop().unwrap_or_default();
                let kept: Vec<String> = inserts
                    .iter()
                    .enumerate()
                    .map(|(i, (_, insert))| format!("kept_{i} as ({insert})"))
                    .collect();
                if kept.is_empty() {
                    last
                } else {
                    format!("with {} {last}", kept.join(", "))
                }
            }
            Engine::Sqlite => inserts.into_iter().map(|(_, sql)| sql).collect::<Vec<_>>().join("; "),
        };
        Ok(Some((operation, values.query(sql)?)))
    }
}

/// One row inserted now, on its own (not kept for a commit).
pub(super) fn insert_one<'q, R: KeptRow>(row: &R) -> Result<AnyQuery<'q>, StoreError> {
    let mut values = Values::default();
    row.bind(&mut values);
    values.query(insert_sql::<R>(0, 1))
}

/// The insert of `rows` rows of `R`, its parameters numbered from
/// `$first + 1`.
fn insert_sql<R: KeptRow>(first: usize, rows: usize) -> String {
    format!(
        "{} values {}{}",
        R::INSERT,
        value_rows(first, rows, R::COLUMNS),
        R::AFTER
    )
}

/// How many columns `insert into t (a, b, c)` names (its commas, plus one).
const fn columns_named(insert: &str) -> usize {
    let bytes = insert.as_bytes();
    let (mut i, mut columns) = (0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            columns += 1;
        }
        i += 1;
    }
    columns
}

/// `rows` parenthesised lists of `columns` parameters each, numbered from
/// `$first + 1`: the `values` of a multi-row insert.
fn value_rows(first: usize, rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let params: Vec<String> = (1..=columns).map(|c| format!("${}", first + r * columns + c)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_names_its_columns_between_commas() {
        assert_eq!(columns_named("insert into keys (k)"), 1);
        assert_eq!(columns_named("insert into pairs (name, n)"), 2);
    }

    #[test]
    fn value_rows_number_parameters_on_from_the_first() {
        assert_eq!(value_rows(0, 1, 2), "($1, $2)");
        assert_eq!(value_rows(16, 2, 3), "($17, $18, $19), ($20, $21, $22)");
        assert_eq!(value_rows(0, 0, 3), "");
    }

    struct Pair(&'static str, i64);

    impl KeptRow for Pair {
        const INSERT: &'static str = "insert into pairs (name, n)";
        const OPERATION: &'static str = "pairs.insert";
        fn bind(&self, values: &mut Values) {
            values.add(self.0);
            values.add(self.1);
        }
    }

    struct Key;

    impl KeptRow for Key {
        const INSERT: &'static str = "insert into keys (k)";
        const AFTER: &'static str = " on conflict do nothing returning 1";
        const OPERATION: &'static str = "keys.insert";
        fn bind(&self, values: &mut Values) {
            values.add("k");
        }
    }

    fn sql_of(batch: Batch, engine: Engine) -> (&'static str, String) {
        let (operation, query) = batch.query(engine).unwrap().expect("a statement");
        (operation, sqlx::Execute::sql(query).as_str().to_owned())
    }

    #[test]
    fn one_kind_keeps_its_name_and_several_are_one_statement_numbered_on() {
        assert!(Batch::default().query(Engine::Sqlite).unwrap().is_none());
        let mut one = Batch::default();
        one.add(&[Pair("a", 1), Pair("b", 2)]);
        one.add::<Key>(&[]);
        assert_eq!(
            sql_of(one, Engine::Postgres),
            (
                "pairs.insert",
                "insert into pairs (name, n) values ($1, $2), ($3, $4)".into()
            )
        );
        let several = || {
            let mut batch = Batch::default();
            batch.add(&[Pair("a", 1)]);
            batch.add(&[Key]);
            batch
        };
        assert_eq!(
            sql_of(several(), Engine::Postgres),
            (
                "transaction.commit_writes",
                "with kept_0 as (insert into pairs (name, n) values ($1, $2)) \
                 insert into keys (k) values ($3) on conflict do nothing returning 1"
                    .into()
            )
        );
        assert_eq!(
            sql_of(several(), Engine::Sqlite).1,
            "insert into pairs (name, n) values ($1, $2); \
             insert into keys (k) values ($3) on conflict do nothing returning 1"
        );
    }
}
