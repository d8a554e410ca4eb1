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
    /// Serving, with a dependency failing that does not stop it (the
    /// payment gateway): `/health` answers 200 with this status.
    Degraded,
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

/// The payment gateway: which one, whether it is configured, and how its
/// last call went. A provider giving no definite answers degrades health;
/// it never fails readiness (money simply waits in `pending`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayCheck {
    #[serde(flatten)]
    pub check: Check,
    /// `sandbox` or `fincra`.
    pub provider: &'static str,
    pub configured: bool,
    /// The last call this process made (absent before the first).
    pub last_call: Option<crate::telemetry::metrics::GatewayCall>,
}

pub fn check_gateway(
    provider: &'static str,
    payments: &crate::config::PaymentConfig,
    last_call: Option<crate::telemetry::metrics::GatewayCall>,
) -> GatewayCheck {
    let configured = match payments.gateway {
        crate::config::GatewayKind::Sandbox => true,
        crate::config::GatewayKind::Fincra => {
            payments.fincra_api_key.is_some()
                && payments.fincra_public_key.is_some()
                && payments.fincra_business_id.is_some()
                && payments.fincra_webhook_secret.is_some()
        }
    };
    let check = match (&last_call, configured) {
        (_, false) => Check {
            status: Status::Degraded,
            message: Some(
                "the gateway is missing FINCRA_PUBLIC_KEY, FINCRA_BUSINESS_ID or FINCRA_WEBHOOK_SECRET: some payment \
                 operations will fail"
                    .into(),
            ),
        },
        (Some(call), true) if call.outcome == "timeout" => Check {
            status: Status::Degraded,
            message: Some(format!(
                "the last gateway call ({}) got no definite answer; payments wait in pending for reconciliation",
                call.operation
            )),
        },
        _ => Check::healthy(),
    };
    GatewayCheck {
        check,
        provider,
        configured,
        last_call,
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
        StoreError::Duplicate(_) | StoreError::InsufficientFunds(_) | StoreError::BalanceLimit(_) => {
            "unexpected write refusal".into()
        }
        StoreError::Missing(_) => "a row is missing".into(),
    }
}
