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
mod codec;
pub mod console;
mod database;
pub mod deliveries;
pub mod destinations;
pub mod dispute_files;
mod error;
pub mod escrow;
pub mod events;
pub mod gauges;
mod handle;
pub mod idempotency;
pub mod jobs;
mod kept;
pub mod kyc;
pub mod ledger;
pub mod login_failures;
mod monitor;
pub mod projects;
mod sqlite;
pub mod users;
pub mod webhook_endpoints;
pub mod webhooks;

/// The stored timestamp format (kept at this path: every store module uses it).
pub use crate::timestamp;
pub use database::Database;
pub(crate) use error::is_connection_error;
pub use error::{StoreError, map_duplicate};
pub use handle::{Borrowed, Conn, DbHandle, QueryObserver, Tx};
pub use monitor::SchemaStatus;
pub use sqlite::lock_sqlite_exclusively;

use std::sync::Once;

use sqlx::migrate::Migrator;

/// Migrations are embedded in the binary. The files in `migrations/` run on
/// both engines; where the engines need different SQL for one step (a CHECK
/// constraint added to an existing table: PostgreSQL alters the table,
/// SQLite cannot and uses triggers), the step has one file per engine, with
/// the same version, in `migrations/postgres/` and `migrations/sqlite/`.
static SHARED_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The table where applied migrations are recorded.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

type MigrationsFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>> + Send + 'static>,
>;

/// The migrations of one engine, in version order.
#[derive(Debug, Clone, Copy)]
struct EngineMigrations(Engine);

impl sqlx::migrate::MigrationSource<'static> for EngineMigrations {
    fn resolve(self) -> MigrationsFuture {
        let own = match self.0 {
            Engine::Postgres => &POSTGRES_MIGRATIONS,
            Engine::Sqlite => &SQLITE_MIGRATIONS,
        };
        let mut all: Vec<_> = SHARED_MIGRATIONS.iter().chain(own.iter()).cloned().collect();
        all.sort_by_key(|m| m.version);
        Box::pin(std::future::ready(Ok(all)))
    }
}

/// The migrator for `engine`.
pub async fn migrator(engine: Engine) -> Result<Migrator, StoreError> {
    let migrator = Migrator::new(EngineMigrations(engine)).await?;
    debug_assert_eq!(migrator.table_name, MIGRATIONS_TABLE);
    Ok(migrator)
}

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
    "login_failures",
    "events",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "console_sessions",
    "password_resets",
    "project_counts",
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

static INSTALL_DRIVERS: Once = Once::new();

/// Installs sqlx's `Any` drivers (once per process); needed before any
/// `AnyConnection::connect` outside a [`Database`].
pub fn install_drivers() {
    INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
}
