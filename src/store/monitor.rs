//! The database monitor: checks reachability and the schema in the
//! background, applies migrations when `AUTO_MIGRATE` is on, and records
//! what it saw for the probes, the request path and the watchdogs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::migrate::Migrate;

use super::{Database, Engine, MIGRATIONS_TABLE, REQUIRED_TABLES, StoreError, migrator};

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

impl Database {
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
        let mut conn = self.live_connection().await?;
        obs.run("health.ping", sqlx::query("select 1").execute(&mut *conn))
            .await?;
        let tables = self.list_tables(&mut conn).await?;
        let migrator = migrator(self.engine).await?;
        let applied = if tables.iter().any(|t| t.as_str() == MIGRATIONS_TABLE) {
            obs.run("health.migrations", async {
                conn.list_applied_migrations(MIGRATIONS_TABLE)
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
        let pending = migrator
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
            latest_version: migrator.iter().map(|m| m.version).max(),
            pending,
            missing_tables,
        })
    }

    /// A pooled connection that answers a ping. One the server or the
    /// network closed while it sat in the pool is dropped (sqlx closes it
    /// when its own ping on return fails) and the next one tried, so a dead
    /// connection is not mistaken for a dead database; the pool failing to
    /// give one at all is the answer.
    async fn live_connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, StoreError> {
        let tries = self.pool.options().get_max_connections() + 1;
        for _ in 1..tries {
            let mut conn = self.observer.acquire(self.pool.acquire()).await?;
            if sqlx::Connection::ping(&mut *conn).await.is_ok() {
                return Ok(conn);
            }
        }
        self.observer.acquire(self.pool.acquire()).await
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
        migrator(self.engine).await?.run(&self.pool).await?;
        self.check().await
    }

    /// Keeps the database status fresh for the life of the process: retries
    /// every second while down, rechecks every five seconds while up (and
    /// at once when a statement loses its connection), and applies
    /// migrations as soon as it can when `AUTO_MIGRATE` is on.
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
                _ = self.recheck.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}
