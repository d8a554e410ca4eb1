//! The database: one pool, two engines, one body of SQL.
//!
//! ## Why sqlx's `Any` driver and a portable schema
//! Amani runs on a SQLite file with no configuration and on PostgreSQL in
//! production. We chose sqlx's `Any` driver over two typed backends behind a
//! trait because one query body for both engines means every query is tested
//! on both by the same test, and a newcomer reads one `store/` module, not two.
//! The price is the `Any` type set (bool, integers, floats, text, bytes), so
//! the schema is portable by construction:
//! - ids are text (UUIDv7, time-ordered so indexes stay append-mostly);
//! - money is `bigint` minor units, never floating point or `numeric`;
//! - timestamps are text in one fixed UTC format ([`timestamp`]), which sorts
//!   and compares correctly as text on both engines.
//!
//! Where the engines must differ (catalog queries, pragmas), the difference is
//! a `match` on [`Engine`] next to the query, nowhere else.
//!
//! ## Availability
//! The pool is created lazily, so the service starts and answers probes while
//! the database is down. A background [`monitor`](Database::run_monitor) keeps
//! trying, applies migrations when `AUTO_MIGRATE` is on, and records what it
//! sees. Requests ask for a connection through [`Database::pool`], which fails
//! at once with [`StoreError::Unavailable`] (→ 503) while the database is known
//! to be down, instead of making every request wait for a timeout.

pub mod audit;
pub mod destinations;
pub mod escrow;
pub mod gauges;
mod handle;
pub mod idempotency;
pub mod kyc;
pub mod ledger;
pub mod projects;
pub mod users;
pub mod webhooks;

pub use handle::{Borrowed, Conn, DbHandle, QueryObserver, Tx};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseConfig;
use crate::telemetry::metrics::Metrics;

/// Migrations are embedded in the binary; the same files run on both engines.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Tables the service cannot serve without; readiness checks they exist.
/// Each feature adds its tables here together with its migration.
pub const REQUIRED_TABLES: &[&str] = &[
    "audit_events",
    "users",
    "kyc_submissions",
    "kyc_documents",
    "projects",
    "milestones",
    "ledger_accounts",
    "ledger_transfers",
    "escrow_transactions",
    "idempotency_keys",
    "webhook_events",
    "payout_destinations",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn from_url(url: &str) -> Engine {
        if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            Engine::Postgres
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgresql",
        }
    }

    /// The OpenTelemetry `db.system` value.
    pub fn otel_name(self) -> &'static str {
        self.as_str()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or its schema is not ready to serve.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A debit the account cannot cover (the account id).
    #[error("insufficient funds in {0}")]
    InsufficientFunds(String),
    /// A unique constraint refused the write: `what` already exists.
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True for failures that mean "the database is not there", as opposed to
    /// a bad query or a constraint: those become 503, the rest 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Sqlx(err) => is_connection_error(err),
            StoreError::Duplicate(_) | StoreError::InsufficientFunds(_) | StoreError::Migrate(_) => false,
        }
    }
}

/// Turns a unique-constraint violation into [`StoreError::Duplicate`], at
/// the query that can cause it.
pub fn map_duplicate(what: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |err| match &err {
        StoreError::Sqlx(sqlx::Error::Database(db)) if db.is_unique_violation() => StoreError::Duplicate(what),
        _ => err,
    }
}

pub(crate) fn is_connection_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}

/// What the probes report about migrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest applied migration, if any.
    pub current_version: Option<i64>,
    /// The newest migration this binary knows.
    pub latest_version: Option<i64>,
    /// Embedded migrations not yet applied.
    pub pending: usize,
    /// Required tables that are missing.
    pub missing_tables: Vec<String>,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.pending == 0 && self.missing_tables.is_empty()
    }
}

pub struct Database {
    pool: AnyPool,
    engine: Engine,
    auto_migrate: bool,
    sqlite_path: Option<PathBuf>,
    /// Last known reachability; cleared by a statement that hits a connection
    /// error so the next requests fail fast, set again by the monitor.
    reachable: Arc<AtomicBool>,
    observer: QueryObserver,
    /// SQLite admits one writer at a time; its busy handler makes waiting
    /// writers sleep and retry, which is unfair (a writer can starve past the
    /// busy timeout under load). Writers queue here instead, first come
    /// first served, and reach `begin immediate` one at a time.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// A serving process holds `<file>.lock` shared, so a restore (which
    /// needs it exclusively) refuses while a server runs on the file.
    sqlite_lock: std::sync::Mutex<Option<std::fs::File>>,
    schema: RwLock<SchemaStatus>,
}

static INSTALL_DRIVERS: Once = Once::new();

/// Installs sqlx's `Any` drivers (once per process); needed before any
/// `AnyConnection::connect` outside a [`Database`].
pub fn install_drivers() {
    INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
}

fn lock_file_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn flock(path: &Path, operation: libc::c_int) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let lock = lock_file_for(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| format!("cannot open {}: {e}", lock.display()))?;
    // SAFETY: flock on a file descriptor we own; released when it closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "{} is in use by a running Amani server; stop it before restoring",
            path.display()
        ));
    }
    Ok(file)
}

/// Takes the SQLite file's lock exclusively (restore), or fails at once if a
/// running server holds it.
pub fn lock_sqlite_exclusively(path: &Path) -> Result<std::fs::File, String> {
    flock(path, libc::LOCK_EX)
}

impl Database {
    /// Creates the (lazy) pool; connects nothing yet.
    pub fn new(config: &DatabaseConfig, metrics: Arc<Metrics>) -> Result<Arc<Database>, StoreError> {
        install_drivers();
        let raw_url = config.url.expose_secret();
        let engine = Engine::from_url(raw_url);
        let (url, sqlite_path) = match engine {
            Engine::Sqlite => {
                let (url, path) = sqlite_url(raw_url);
                (url, path)
            }
            Engine::Postgres => (raw_url.to_owned(), None),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL lets readers run beside the one writer; the busy
                        // timeout turns a brief write lock into a wait rather
                        // than an error; foreign keys are off by default in SQLite.
                        conn.execute(
                            "pragma journal_mode = wal; pragma foreign_keys = on; \
                             pragma busy_timeout = 5000; pragma synchronous = normal;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        metrics.db_connections_max.set(i64::from(config.max_connections));
        let reachable = Arc::new(AtomicBool::new(false));
        Ok(Arc::new(Database {
            pool,
            engine,
            auto_migrate: config.auto_migrate,
            sqlite_path,
            observer: QueryObserver::new(metrics, engine, Arc::clone(&reachable)),
            reachable,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            sqlite_lock: std::sync::Mutex::new(None),
            schema: RwLock::new(SchemaStatus::default()),
        }))
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Refuses at once while the database is known to be down or its schema
    /// is not current, so requests fail fast with 503 instead of waiting.
    pub fn ensure_usable(&self) -> Result<(), StoreError> {
        if !self.reachable.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the database cannot be reached".into()));
        }
        if !self.schema_status().is_current() {
            return Err(StoreError::Unavailable("the database schema is not current".into()));
        }
        Ok(())
    }

    /// A pooled connection for requests.
    pub async fn acquire(&self) -> Result<Conn, StoreError> {
        self.ensure_usable()?;
        let conn = self.observer.acquire(self.pool.acquire()).await?;
        Ok(Conn {
            conn,
            obs: self.observer.clone(),
        })
    }

    /// A write transaction. On SQLite it takes the write lock up front
    /// (`begin immediate`), after waiting its turn in this process's writer
    /// queue, so writers neither fail at their first write with "database is
    /// locked" nor starve in SQLite's busy handler.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        self.ensure_usable()?;
        let (tx, writer) = match self.engine {
            Engine::Sqlite => {
                let writer = Arc::clone(&self.sqlite_writer).lock_owned().await;
                let tx = self
                    .observer
                    .run("transaction.begin", self.pool.begin_with("begin immediate"))
                    .await?;
                (tx, Some(writer))
            }
            Engine::Postgres => (self.observer.run("transaction.begin", self.pool.begin()).await?, None),
        };
        Ok(Tx {
            tx,
            obs: self.observer.clone(),
            _writer: writer,
        })
    }

    /// Marks the SQLite file as served by this process (a shared lock that
    /// a restore cannot take exclusively). Best effort: the folder may not
    /// exist yet, in which case no restore can target it either.
    pub fn hold_serving_lock(&self) {
        let Some(path) = &self.sqlite_path else { return };
        if self.prepare_sqlite_file().is_err() {
            return;
        }
        if let Ok(file) = flock(path, libc::LOCK_SH)
            && let Ok(mut slot) = self.sqlite_lock.lock()
        {
            *slot = Some(file);
        }
    }

    /// A connection for operations code (backup, verify), without the
    /// "schema current" gate requests have.
    pub async fn acquire_for_ops(&self) -> Result<Conn, StoreError> {
        let conn = self.observer.acquire(self.pool.acquire()).await?;
        Ok(Conn {
            conn,
            obs: self.observer.clone(),
        })
    }

    /// The observer, for store functions run on a borrowed connection.
    pub fn observer(&self) -> QueryObserver {
        self.observer.clone()
    }

    /// Pool use right now, for the `db_connections_*` gauges.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// The raw pool, for the probes and operations code that must reach the
    /// database whatever its last known state.
    pub fn raw_pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Called by the error path when a request met a connection error, so
    /// that the following requests fail fast until the monitor sees it back.
    pub fn mark_unreachable(&self) {
        self.observer.mark_unreachable("check");
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    pub fn schema_status(&self) -> SchemaStatus {
        self.schema.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Pings the database and refreshes the schema status. Used by the
    /// monitor and by the health probes, so both see the same truth.
    pub async fn check(&self) -> Result<SchemaStatus, StoreError> {
        let result = self.check_inner().await;
        self.observer.record_check(&result);
        match &result {
            Ok(status) => {
                if !self.reachable.swap(true, Ordering::AcqRel) {
                    tracing::info!(engine = self.engine.as_str(), "database reachable");
                }
                if let Ok(mut schema) = self.schema.write() {
                    *schema = status.clone();
                }
            }
            Err(err) if err.is_unavailable() => self.mark_unreachable(),
            Err(_) => {}
        }
        result
    }

    async fn check_inner(&self) -> Result<SchemaStatus, StoreError> {
        self.prepare_sqlite_file()?;
        let obs = &self.observer;
        let mut conn = obs.acquire(self.pool.acquire()).await?;
        obs.run("health.ping", sqlx::query("select 1").execute(&mut *conn))
            .await?;
        let tables = self.list_tables(&mut conn).await?;
        let applied = if tables.iter().any(|t| t.as_str() == MIGRATOR.table_name) {
            obs.run("health.migrations", async {
                conn.list_applied_migrations(&MIGRATOR.table_name)
                    .await
                    .map_err(|e| match e {
                        sqlx::migrate::MigrateError::Execute(e) => e,
                        other => sqlx::Error::Protocol(other.to_string()),
                    })
            })
            .await?
        } else {
            Vec::new()
        };
        let pending = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .filter(|m| !applied.iter().any(|a| a.version == m.version))
            .count();
        let missing_tables = REQUIRED_TABLES
            .iter()
            .filter(|t| !tables.iter().any(|have| have == *t))
            .map(|t| (*t).to_owned())
            .collect();
        Ok(SchemaStatus {
            current_version: applied.iter().map(|a| a.version).max(),
            latest_version: MIGRATOR.iter().map(|m| m.version).max(),
            pending,
            missing_tables,
        })
    }

    async fn list_tables(&self, conn: &mut sqlx::AnyConnection) -> Result<Vec<String>, StoreError> {
        let sql = match self.engine {
            Engine::Sqlite => "select name from sqlite_master where type = 'table'",
            Engine::Postgres => {
                "select table_name::text from information_schema.tables where table_schema = current_schema()"
            }
        };
        let names: Vec<(String,)> = self
            .observer
            .run("health.tables", sqlx::query_as(sql).fetch_all(conn))
            .await?;
        Ok(names.into_iter().map(|(n,)| n).collect())
    }

    /// Applies pending migrations, then refreshes the status.
    pub async fn migrate(&self) -> Result<SchemaStatus, StoreError> {
        self.prepare_sqlite_file()?;
        MIGRATOR.run(&self.pool).await?;
        self.check().await
    }

    /// Keeps the database status fresh for the life of the process: retries
    /// every second while down, rechecks every five seconds while up, and
    /// applies migrations as soon as it can when `AUTO_MIGRATE` is on.
    pub async fn run_monitor(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_error: Option<String> = None;
        loop {
            let mut status = self.check().await;
            if self.auto_migrate
                && let Ok(s) = &status
                && s.pending > 0
            {
                tracing::info!(pending = s.pending, "applying database migrations");
                status = self.migrate().await;
            }
            let delay = match &status {
                Ok(s) if s.is_current() => {
                    last_error = None;
                    Duration::from_secs(5)
                }
                Ok(s) => {
                    let message = format!("schema not current: {} pending migrations", s.pending);
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(pending = s.pending, missing_tables = ?s.missing_tables, "{message}");
                        last_error = Some(message);
                    }
                    Duration::from_secs(1)
                }
                Err(err) => {
                    // Log a failure once per distinct cause, not once a second.
                    let message = err.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, "database check failed; retrying");
                        last_error = Some(message);
                    }
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The SQLite file and its folder are created on first use, so a fresh
    /// clone runs with no set-up. Failure here is "database unavailable".
    fn prepare_sqlite_file(&self) -> Result<(), StoreError> {
        let Some(path) = &self.sqlite_path else { return Ok(()) };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Returns the URL sqlx should open (creating the file if missing) and the
/// file's path, or `None` for an in-memory database.
fn sqlite_url(raw: &str) -> (String, Option<PathBuf>) {
    let rest = raw.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return (raw.to_owned(), None);
    }
    let url = if query.contains("mode=") {
        raw.to_owned()
    } else if query.is_empty() {
        format!("{raw}?mode=rwc")
    } else {
        format!("{raw}&mode=rwc")
    };
    (url, Some(Path::new(path).to_path_buf()))
}

/// The one timestamp format stored in the database: UTC, microseconds, `Z`.
/// Fixed width, so text order is time order on both engines.
pub mod timestamp {
    use time::OffsetDateTime;
    use time::format_description::FormatItem;
    use time::macros::format_description;

    const FORMAT: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

    pub fn format(at: OffsetDateTime) -> String {
        at.to_offset(time::UtcOffset::UTC)
            .format(FORMAT)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
    }

    pub fn now() -> String {
        format(OffsetDateTime::now_utc())
    }

    /// A stored timestamp back as a time (`None` if it is not one of ours).
    pub fn parse(text: &str) -> Option<OffsetDateTime> {
        time::PrimitiveDateTime::parse(text, FORMAT)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_given() {
        assert_eq!(
            sqlite_url("sqlite://data/amani.db"),
            (
                "sqlite://data/amani.db?mode=rwc".to_owned(),
                Some(PathBuf::from("data/amani.db"))
            )
        );
        assert_eq!(sqlite_url("sqlite:///tmp/a.db?mode=ro").0, "sqlite:///tmp/a.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:").1, None);
    }

    #[test]
    fn timestamps_have_one_fixed_width_utc_format() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.000006 +01:00);
        assert_eq!(timestamp::format(at), "2026-01-02T02:04:05.000006Z");
        assert_eq!(timestamp::parse("2026-01-02T02:04:05.000006Z"), Some(at));
        assert_eq!(timestamp::parse("yesterday"), None);
    }
}
