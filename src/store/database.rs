//! The pool and the two ways to use it: a connection for reads
//! ([`Database::acquire`]) and a write transaction ([`Database::begin`]),
//! both refused at once while the database is known to be down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

use super::handle::{Conn, QueryObserver, Tx};
use super::monitor::SchemaStatus;
use super::sqlite::sqlite_url;
use super::{Engine, StoreError, install_drivers};
use crate::config::DatabaseConfig;
use crate::telemetry::metrics::Metrics;

pub struct Database {
    pub(super) pool: AnyPool,
    pub(super) engine: Engine,
    pub(super) auto_migrate: bool,
    pub(super) sqlite_path: Option<PathBuf>,
    /// Last known reachability; cleared when no connection can be had or
    /// the monitor's check fails, so the next requests fail fast; set
    /// again by the monitor.
    pub(super) reachable: Arc<AtomicBool>,
    /// Notified when a statement loses its connection (the monitor then
    /// checks at once).
    pub(super) recheck: Arc<tokio::sync::Notify>,
    pub(super) observer: QueryObserver,
    /// SQLite admits one writer at a time; its busy handler makes waiting
    /// writers sleep and retry, which is unfair (a writer can starve past the
    /// busy timeout under load). Writers queue here instead, first come
    /// first served, and reach `begin immediate` one at a time.
    pub(super) sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite file only: the one connection write transactions run on.
    /// A connection drops its page cache whenever another connection wrote
    /// since its last transaction; with writes spread over the pool every
    /// write transaction started by re-reading its pages, inside the
    /// writer's lock. One writer connection keeps its cache. It does not
    /// checkpoint the log when it commits: [`Database::run_checkpointer`]
    /// does, outside the writer's turn.
    pub(super) sqlite_write_pool: Option<AnyPool>,
    /// A serving process holds `<file>.lock` shared, so a restore (which
    /// needs it exclusively) refuses while a server runs on the file.
    pub(super) sqlite_lock: std::sync::Mutex<Option<std::fs::File>>,
    pub(super) schema: RwLock<SchemaStatus>,
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
        let pool = pool_options(engine, config, "")
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .connect_lazy_with(options.clone());
        let sqlite_write_pool = sqlite_path.is_some().then(|| {
            pool_options(engine, config, SQLITE_WRITER_SETTINGS)
                .max_connections(1)
                .connect_lazy_with(options)
        });
        metrics.db_connections_max.set(i64::from(config.max_connections));
        let reachable = Arc::new(AtomicBool::new(false));
        let recheck = Arc::new(tokio::sync::Notify::new());
        Ok(Arc::new(Database {
            pool,
            engine,
            auto_migrate: config.auto_migrate,
            sqlite_path,
            observer: QueryObserver::new(metrics, engine, Arc::clone(&reachable), Arc::clone(&recheck)),
            reachable,
            recheck,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            sqlite_write_pool,
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
        let mut started = std::time::Instant::now();
        let (tx, writer) = match self.engine {
            Engine::Sqlite => {
                let writer = Arc::clone(&self.sqlite_writer).lock_owned().await;
                started = std::time::Instant::now();
                let pool = self.sqlite_write_pool.as_ref().unwrap_or(&self.pool);
                let tx = self
                    .observer
                    .run("transaction.begin", pool.begin_with("begin immediate"))
                    .await?;
                (tx, Some(writer))
            }
            Engine::Postgres => {
                // `begin` opens (or takes) a connection and sends BEGIN; a
                // failure there that is not the server's answer is a
                // connection that could not be had (see QueryObserver::acquire).
                let begun = self.observer.run("transaction.begin", self.pool.begin()).await;
                (self.observer.unavailable_unless_answered(begun)?, None)
            }
        };
        Ok(Tx {
            tx,
            obs: self.observer.clone(),
            _writer: writer,
            records: Vec::new(),
            transfers: Vec::new(),
            audits: Vec::new(),
            events: Vec::new(),
            jobs: Vec::new(),
            timer: super::handle::TxTimer::start(&self.observer, started),
        })
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

    /// Called by the health check when the database did not answer in
    /// time, so that the following requests fail fast until the monitor
    /// sees it back.
    pub fn mark_unreachable(&self) {
        self.observer.mark_unreachable("check");
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    pub fn schema_status(&self) -> SchemaStatus {
        self.schema.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_write_pool {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// What both pools share: the acquire timeout and, on SQLite, each
/// connection's settings (and `sqlite_extra`, the writer's).
///
/// sqlx pings every connection when it comes back to the pool (a broken
/// one is closed there). A PostgreSQL connection that has then sat idle
/// for [`PING_IF_IDLE_FOR`] or more is pinged again before it is handed
/// out: the server, a proxy or the network may have closed it meanwhile.
/// One handed back within that time is used as it is (the ping would be a
/// third round trip for a one-statement request). A SQLite file's
/// connection cannot go stale, and its ping would be one more round trip
/// to its thread.
fn pool_options(engine: Engine, config: &DatabaseConfig, sqlite_extra: &'static str) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false);
    if engine != Engine::Sqlite {
        return options.before_acquire(|conn, meta| {
            Box::pin(async move {
                // `false` closes it and another is taken or opened, as
                // sqlx does when its own ping fails.
                Ok(meta.idle_for < PING_IF_IDLE_FOR || conn.ping().await.is_ok())
            })
        });
    }
    options.after_connect(move |conn, _meta| {
        Box::pin(async move {
            conn.execute(SQLITE_SETTINGS).await?;
            if !sqlite_extra.is_empty() {
                conn.execute(sqlite_extra).await?;
            }
            Ok(())
        })
    })
}

/// How long a PostgreSQL connection may sit in the pool and still be handed
/// out without a ping first (see [`pool_options`]).
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_millis(500);

/// Every SQLite connection's settings: WAL lets readers run beside the one
/// writer; the busy timeout turns a brief write lock into a wait rather
/// than an error; foreign keys are off by default in SQLite.
const SQLITE_SETTINGS: &str = "pragma journal_mode = wal; pragma foreign_keys = on; \
                               pragma busy_timeout = 5000; pragma synchronous = normal;";

/// The writer connection's, on top: no checkpoint of the log on commit
/// (SQLite's default, every 1,000 pages, inside the writer's turn: about a
/// third of a write transaction's time under load); the checkpointer does
/// it instead. The log's file is cut back to 64 MiB when it is reused.
const SQLITE_WRITER_SETTINGS: &str = "pragma wal_autocheckpoint = 0; pragma journal_size_limit = 67108864;";
