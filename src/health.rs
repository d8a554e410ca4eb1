//! Operational checks as code. Each check returns a [`Check`]; the probes
//! serve them, and the alert watchdogs and `check-config` reuse them, so
//! every consumer sees the same truth.

use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Database, SchemaStatus};

/// A check never waits longer than this; a database that slow is unhealthy.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Unhealthy,
}

/// The result of one check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    pub status: Status,
    /// Why it is unhealthy (absent when healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Check {
    pub fn healthy() -> Check {
        Check {
            status: Status::Healthy,
            message: None,
        }
    }

    pub fn unhealthy(message: impl Into<String>) -> Check {
        Check {
            status: Status::Unhealthy,
            message: Some(message.into()),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }
}

/// The database and its schema, checked live (not from the monitor's cache).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseCheck {
    #[serde(flatten)]
    pub check: Check,
    pub engine: &'static str,
    /// Round-trip time of the check, in milliseconds.
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MigrationsCheck {
    #[serde(flatten)]
    pub check: Check,
    pub current_version: Option<i64>,
    pub latest_version: Option<i64>,
    pub pending: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_tables: Vec<String>,
}

pub async fn check_database(db: &Database) -> (DatabaseCheck, Option<SchemaStatus>) {
    let started = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, db.check()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (check, schema) = match result {
        Ok(Ok(schema)) => (Check::healthy(), Some(schema)),
        Ok(Err(err)) => (Check::unhealthy(describe_store_error(&err)), None),
        Err(_) => {
            db.mark_unreachable();
            (
                Check::unhealthy(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
                None,
            )
        }
    };
    let check = DatabaseCheck {
        check,
        engine: db.engine().as_str(),
        latency_ms: (latency_ms * 100.0).round() / 100.0,
    };
    (check, schema)
}

pub fn check_migrations(schema: Option<&SchemaStatus>) -> MigrationsCheck {
    let Some(schema) = schema else {
        return MigrationsCheck {
            check: Check::unhealthy("unknown: the database cannot be reached"),
            current_version: None,
            latest_version: None,
            pending: 0,
            missing_tables: Vec::new(),
        };
    };
    let check = if schema.pending > 0 {
        Check::unhealthy(format!("{} migrations pending; run `amani migrate`", schema.pending))
    } else if !schema.missing_tables.is_empty() {
        Check::unhealthy(format!("required tables missing: {}", schema.missing_tables.join(", ")))
    } else {
        Check::healthy()
    };
    MigrationsCheck {
        check,
        current_version: schema.current_version,
        latest_version: schema.latest_version,
        pending: schema.pending,
        missing_tables: schema.missing_tables.clone(),
    }
}

/// A probe-safe description: the kind of failure, without connection strings.
fn describe_store_error(err: &crate::store::StoreError) -> String {
    use crate::store::StoreError;
    match err {
        StoreError::Unavailable(reason) => reason.clone(),
        StoreError::Sqlx(sqlx::Error::PoolTimedOut) => "no connection could be opened in time".into(),
        StoreError::Sqlx(sqlx::Error::Io(io)) => format!("connection failed: {}", io.kind()),
        StoreError::Sqlx(sqlx::Error::Tls(_)) => "TLS handshake failed".into(),
        StoreError::Sqlx(sqlx::Error::Database(db)) => format!("database error {}", db.code().unwrap_or_default()),
        StoreError::Sqlx(_) => "query failed".into(),
        StoreError::Migrate(_) => "migration failed".into(),
        StoreError::Duplicate(_) | StoreError::InsufficientFunds(_) => "unexpected write refusal".into(),
    }
}
