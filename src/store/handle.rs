//! Connections and transactions handed to store functions, each carrying a
//! [`QueryObserver`] so that every statement is timed into
//! `db_query_duration_seconds{operation}`, runs inside a `db.query` span, and
//! reports a lost connection — without each query repeating that code.
//!
//! Store functions take `&mut impl DbHandle` and write
//! `let (conn, obs) = db.parts(); obs.run("users.insert", query.execute(conn)).await?`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};
use tracing::Instrument;

use super::kept::Batch;
use super::{Engine, StoreError, is_connection_error};
use crate::telemetry::metrics::{Metrics, OperationLabels};

#[derive(Clone)]
pub struct QueryObserver {
    metrics: Arc<Metrics>,
    engine: Engine,
    reachable: Arc<AtomicBool>,
    /// Wakes the monitor when a statement loses its connection, so that
    /// it checks the database now (see `connection_lost`).
    recheck: Arc<tokio::sync::Notify>,
}

impl QueryObserver {
    /// The engine its statements run on (for the few that differ).
    pub(super) fn engine(&self) -> Engine {
        self.engine
    }

    pub(super) fn new(
        metrics: Arc<Metrics>,
        engine: Engine,
        reachable: Arc<AtomicBool>,
        recheck: Arc<tokio::sync::Notify>,
    ) -> QueryObserver {
        QueryObserver {
            metrics,
            engine,
            reachable,
            recheck,
        }
    }

    /// Runs one statement as `operation` (a fixed, low-cardinality name such
    /// as `users.insert`; never SQL text or parameter values).
    pub async fn run<T>(
        &self,
        operation: &'static str,
        statement: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        // A span only inside a request or business step: the monitor's
        // background checks would otherwise start a new trace every 5 s.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "db.query",
                otel.name = operation,
                otel.kind = "client",
                db.system = self.engine.otel_name(),
                db.operation = operation,
            )
        };
        let started = Instant::now();
        let result = statement.instrument(span).await;
        self.metrics
            .db_query_duration
            .observe(&OperationLabels { operation }, started.elapsed().as_secs_f64());
        if let Err(err) = &result
            && is_connection_error(err)
        {
            self.connection_lost(operation);
        }
        Ok(result?)
    }

    /// Waits for a pooled connection. Not a statement, so not timed into
    /// `db_query_duration_seconds` (pool waits would skew its quantiles).
    ///
    /// Any failure to get a connection means the database cannot be used
    /// now (503), whatever sqlx calls it: opening a connection can also fail
    /// with a protocol or server error (a proxy answering garbage, a failed
    /// authentication), and those are not a query's fault.
    pub async fn acquire<T>(&self, acquire: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, StoreError> {
        match acquire.await {
            Ok(conn) => Ok(conn),
            Err(err) if is_connection_error(&err) => {
                self.mark_unreachable("pool.acquire");
                Err(err.into())
            }
            Err(err) => {
                self.mark_unreachable("pool.acquire");
                Err(StoreError::Unavailable(format!("no connection could be opened: {err}")))
            }
        }
    }

    /// Turns a failure that is not the server's answer (no SQLSTATE: a
    /// protocol or I/O problem) into "unavailable" and has the database
    /// checked; the server's own refusals pass through.
    pub(super) fn unavailable_unless_answered<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match result {
            Err(StoreError::Sqlx(err)) if err.as_database_error().is_none() => {
                self.connection_lost("transaction.begin");
                Err(StoreError::Unavailable(format!(
                    "no transaction could be started: {err}"
                )))
            }
            other => other,
        }
    }

    /// A statement lost its connection. That one connection may have died
    /// alone (the server ended it, a proxy dropped it while it sat in the
    /// pool): the request fails (503) and the monitor checks the database
    /// at once, marking it down only if it cannot reach it either. Failing
    /// to get a connection at all ([`Self::acquire`]) marks it down at once.
    fn connection_lost(&self, operation: &'static str) {
        tracing::debug!(
            engine = self.engine.as_str(),
            operation,
            "a database connection was lost"
        );
        self.recheck.notify_one();
    }

    /// Records that the database was lost (logged once per outage), so the
    /// next requests fail fast until the monitor sees it again.
    pub(super) fn mark_unreachable(&self, context: &'static str) {
        if self.reachable.swap(false, Ordering::AcqRel) {
            tracing::warn!(engine = self.engine.as_str(), context, "database connection lost");
        }
    }
}

impl QueryObserver {
    /// Publishes the outcome of a database check as `amani_database_up`
    /// and `amani_database_migrations_pending`.
    pub(super) fn record_check(&self, result: &Result<super::SchemaStatus, StoreError>) {
        match result {
            Ok(status) => {
                self.metrics.database_up.set(1);
                let pending = i64::try_from(status.pending).unwrap_or(i64::MAX);
                self.metrics.database_migrations_pending.set(pending);
            }
            Err(err) if err.is_unavailable() => {
                self.metrics.database_up.set(0);
            }
            Err(_) => {}
        }
    }
}

/// Something store functions can run statements on.
pub trait DbHandle: Send {
    fn parts(&mut self) -> (&mut AnyConnection, &QueryObserver);
}

/// A pooled connection for reads and single statements.
pub struct Conn {
    pub(super) conn: PoolConnection<Any>,
    pub(super) obs: QueryObserver,
}

impl DbHandle for Conn {
    fn parts(&mut self) -> (&mut AnyConnection, &QueryObserver) {
        (&mut self.conn, &self.obs)
    }
}

/// A transaction: commit it, or it rolls back when dropped.
pub struct Tx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) obs: QueryObserver,
    /// SQLite only: this process's turn as the single writer, held until the
    /// transaction ends (see [`super::Database::begin`]).
    pub(super) _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// What this transaction keeps for its commit (see [`super::kept`]):
    /// business records ([`Tx::record`]), ledger transfers (a posting's),
    /// audit records ([`Tx::audit`]), events ([`Tx::emit`]) and scheduled
    /// jobs ([`Tx::schedule`]).
    pub(super) records: Vec<super::escrow::EscrowTransaction>,
    pub(super) transfers: Vec<super::ledger::PendingTransfer>,
    pub(super) audits: Vec<super::audit::Pending>,
    pub(super) events: Vec<super::events::Pending>,
    pub(super) jobs: Vec<super::jobs::Pending>,
    pub(super) timer: TxTimer,
}

/// Times a transaction from begin to its end into
/// `db_transaction_duration_seconds{outcome}`: `committed` when
/// [`Tx::commit`] succeeded, `rolled_back` otherwise (dropped, or a failed
/// commit). On SQLite that is how long this process held the writer's lock.
pub(super) struct TxTimer {
    started: Instant,
    metrics: Arc<Metrics>,
    committed: bool,
}

impl TxTimer {
    /// From `started`: on SQLite, when the writer's turn was taken.
    pub(super) fn start(obs: &QueryObserver, started: Instant) -> TxTimer {
        TxTimer {
            started,
            metrics: Arc::clone(&obs.metrics),
            committed: false,
        }
    }
}

impl Drop for TxTimer {
    fn drop(&mut self) {
        let outcome = if self.committed { "committed" } else { "rolled_back" };
        self.metrics.db_transaction_duration.observe(
            &crate::telemetry::metrics::OutcomeLabels { outcome },
            self.started.elapsed().as_secs_f64(),
        );
    }
}

impl Tx {
    /// Writes what the transaction kept for its commit (one statement),
    /// then commits.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.write_kept(None).await?;
        self.finish().await
    }

    /// Like [`Tx::commit`], storing an idempotency key with its response
    /// in the same statement as the rest. `false`: the
    /// key was stored by another request first, and this transaction was
    /// rolled back (see [`super::idempotency`]).
    pub async fn commit_with_key(mut self, key: &super::idempotency::Record<'_>) -> Result<bool, StoreError> {
        if !self.write_kept(Some(key)).await? {
            return Ok(false);
        }
        self.finish().await?;
        Ok(true)
    }

    async fn finish(mut self) -> Result<(), StoreError> {
        let events = std::mem::take(&mut self.events);
        let Tx { tx, obs, mut timer, .. } = self;
        obs.run("transaction.commit", tx.commit()).await?;
        timer.committed = true;
        drop(timer);
        if !events.is_empty() {
            super::events::WRITTEN.notify_one();
        }
        for event in &events {
            obs.metrics
                .events_written
                .get_or_create(&crate::telemetry::metrics::EventLabels {
                    r#type: event.event_type().as_str(),
                })
                .inc();
        }
        Ok(())
    }

    /// Inserts what the transaction kept for its commit in one round trip
    /// (see [`super::kept`]). `false`: the key was there.
    async fn write_kept(&mut self, key: Option<&super::idempotency::Record<'_>>) -> Result<bool, StoreError> {
        let mut batch = Batch::default();
        batch.add(&self.records);
        batch.add(&self.transfers);
        batch.add(&self.audits);
        batch.add(&self.events);
        batch.add(&self.jobs);
        // Last: its `returning` is the statement's answer.
        if let Some(key) = key {
            batch.add(std::slice::from_ref(key));
        }
        let Some((operation, query)) = batch.query(self.obs.engine())? else {
            return Ok(true);
        };
        let (conn, obs) = (&mut *self.tx, &self.obs);
        if key.is_none() {
            obs.run(operation, query.execute(conn)).await?;
            return Ok(true);
        }
        // One row from the key's `returning` if it was stored.
        let rows = obs.run(operation, query.fetch_all(conn)).await?;
        Ok(!rows.is_empty())
    }
}

impl DbHandle for Tx {
    fn parts(&mut self) -> (&mut AnyConnection, &QueryObserver) {
        (&mut self.tx, &self.obs)
    }
}

/// A connection borrowed from elsewhere (a raw sqlx transaction), so store
/// functions can run on it with the same observer.
pub struct Borrowed<'a> {
    pub conn: &'a mut AnyConnection,
    pub obs: QueryObserver,
}

impl DbHandle for Borrowed<'_> {
    fn parts(&mut self) -> (&mut AnyConnection, &QueryObserver) {
        (self.conn, &self.obs)
    }
}
