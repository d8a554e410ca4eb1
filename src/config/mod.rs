//! Configuration, read once at start and passed down through `AppState`.
//!
//! Every setting comes from an environment variable (a `.env` file in the
//! working directory is loaded first if present, without overriding variables
//! already set). The names are the Python original's wherever it had one, so
//! existing deployments keep their environment. Nothing else in the crate reads
//! the environment: code that needs a setting takes it from [`Config`].
//!
//! A bad value fails start-up with a [`ConfigError`] that names the variable,
//! the value given and what was expected.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

mod alerts;
mod payments;
mod schedule;
mod webhooks;

pub use alerts::{AlertChannelsConfig, AlertConfig, Severity};
use payments::parse_payments;
pub use payments::{
    FINCRA_LIVE_URL, FINCRA_SANDBOX_URL, GatewayKind, PaymentConfig, ReconcileConfig, SandboxConfig, SandboxOutcome,
};
use schedule::parse_schedule;
pub use schedule::{MAX_INSPECTION_SECONDS, ScheduleConfig};
pub use webhooks::WebhookConfig;
use webhooks::parse_webhooks;

/// The development `SECRET_KEY`: fine on a laptop, refused in production.
pub const DEFAULT_SECRET_KEY: &str = "amani-development-secret-key-change-me-in-production";

/// Below this length a `SECRET_KEY` is refused in production (HS256 wants at
/// least 256 bits of key material).
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {name}={value:?}: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("invalid configuration: {name}: {reason}")]
    Refused { name: &'static str, reason: String },
}

impl ConfigError {
    /// The environment variable at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Invalid { name, .. } | ConfigError::Refused { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Ok(Environment::Development),
            "test" | "testing" => Ok(Environment::Test),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AllowedOrigins {
    /// No cross-origin access (the default: an API behind its own front end).
    None,
    /// `*`: any origin, never with credentials.
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracingExporter {
    Otlp,
    Console,
    /// A name we do not know: refused in production, a warning elsewhere.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// Export spans (`TRACING_ENABLED`). Trace ids exist either way.
    pub enabled: bool,
    /// Export log records over OTLP too, to the same collector
    /// (`OTLP_LOGS_ENABLED`); stdout keeps its JSON lines either way.
    pub logs_enabled: bool,
    pub exporter: TracingExporter,
    pub protocol: OtlpProtocol,
    pub endpoint: String,
    /// `OTLP_HEADERS`: `key=value,key2=value2` (e.g. an API key for a vendor).
    pub headers: Vec<(String, String)>,
    /// Fraction of new traces sampled; a caller's sampling decision wins.
    pub sample_ratio: f64,
}

#[derive(Debug, Clone)]
pub struct SentryConfig {
    /// Empty: no client, no network, no cost.
    pub dsn: Option<SecretString>,
    pub traces_sample_rate: f32,
    pub profiles_sample_rate: f32,
    /// Send the user's email with events (`SENTRY_SEND_PII`); the id is always sent.
    pub send_pii: bool,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained requests per minute per key (client IP, email).
    pub per_minute: u32,
    /// Requests allowed at once before the sustained rate applies.
    pub burst: u32,
    /// `REDIS_URL`: share the limits across replicas; in-process without it.
    pub redis_url: Option<SecretString>,
    /// Take the client IP from the last `X-Forwarded-For` hop (set only
    /// behind a proxy that writes it; otherwise clients could pick their IP).
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a request waits for a pooled connection before it gives up
    /// with 503. Short on purpose: a lost database must fail requests fast.
    pub acquire_timeout: Duration,
    /// Apply pending migrations at start (`AUTO_MIGRATE`).
    pub auto_migrate: bool,
}

/// The operator console's sessions and password-reset links.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session unused this long ends (`CONSOLE_IDLE_MINUTES`).
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not
    /// (`CONSOLE_SESSION_HOURS`).
    pub session_lifetime: Duration,
    /// A password-reset link works once, for this long
    /// (`PASSWORD_RESET_MINUTES`).
    pub reset_link_ttl: Duration,
    /// The session cookie is `Secure` (https only): in production or with
    /// `FORCE_HTTPS`.
    pub secure_cookie: bool,
    /// How often the charts' in-process samples are taken
    /// (`CONSOLE_CHART_SECONDS`); an hour of them is kept.
    pub chart_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub app_name: String,
    pub app_version: String,
    pub environment: Environment,
    pub host: IpAddr,
    pub port: u16,
    pub secret_key: SecretString,
    pub access_token_expire_minutes: u32,
    pub database: DatabaseConfig,
    pub allowed_origins: AllowedOrigins,
    /// The log filter: `RUST_LOG` when set, else `LOG_LEVEL`.
    pub log_filter: String,
    pub log_format: LogFormat,
    pub force_https: bool,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long to keep accepting requests (readiness already
    /// 503) so load balancers notice before the listener closes.
    pub shutdown_drain_delay: Duration,
    pub max_body_bytes: usize,
    /// A request's head must arrive within this; an idle keep-alive
    /// connection is closed after it (`HEADER_READ_TIMEOUT_SECONDS`).
    pub header_read_timeout: Duration,
    /// Connections open at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Record and serve Prometheus metrics (`METRICS_ENABLED`).
    pub metrics_enabled: bool,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// When set, `/metrics` is served only on this address (a listener of
    /// its own, e.g. on an internal interface), not on HOST:PORT.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub tracing: TracingConfig,
    pub sentry: SentryConfig,
    pub rate_limit: RateLimitConfig,
    pub payments: PaymentConfig,
    pub webhooks: WebhookConfig,
    pub schedule: ScheduleConfig,
    pub alerts: AlertConfig,
    pub alerts_channels: AlertChannelsConfig,
    /// Where `amani backup` writes and `/metrics` looks for the newest backup.
    pub backup_dir: std::path::PathBuf,
    pub backup_retention_days: u32,
    /// 32-byte key sealing KYC data at rest (`KYC_ENCRYPTION_KEY`); derived
    /// from `SECRET_KEY` when unset.
    pub kyc_encryption_key: Option<[u8; 32]>,
    /// Diagnostic routes that fail on purpose (`/api/v1/debug/*`), to check
    /// error tracking end to end in staging. Refused in production.
    pub debug_routes: bool,
    pub console: ConsoleConfig,
    /// Every variable read, as `check-config` shows it ([`Config::masked`]).
    described: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is worth failing on, but
        // dotenvy cannot tell us which variable, so say which file instead.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            return Err(ConfigError::Refused {
                name: ".env",
                reason: err.to_string(),
            });
        }
        Config::from_vars(std::env::vars())
    }

    /// Builds the configuration from explicit variables (tests use this).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let vars = Vars::new(vars.into_iter().collect());
        let environment = vars.parse_with("ENVIRONMENT", Environment::Development, |v| {
            v.parse()
                .map_err(|()| "one of development, test, staging, production".to_owned())
        })?;
        let secret_key = vars.text("SECRET_KEY", DEFAULT_SECRET_KEY).to_owned();
        if environment == Environment::Production {
            check_production_secret(&secret_key)?;
        }
        let database = DatabaseConfig {
            url: SecretString::from(vars.text("DATABASE_URL", "sqlite://data/amani.db").to_owned()),
            max_connections: vars.parse_range("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?,
            min_connections: vars.parse_range("DATABASE_MIN_CONNECTIONS", 0, 0..=1000)?,
            acquire_timeout: Duration::from_secs(vars.parse_range("DATABASE_ACQUIRE_TIMEOUT_SECONDS", 2, 1..=300)?),
            auto_migrate: vars.parse_bool("AUTO_MIGRATE", true)?,
        };
        check_database_url(database.url.expose_secret())?;
        let tracing = parse_tracing(&vars, environment)?;
        let sentry = SentryConfig {
            dsn: vars.secret("SENTRY_DSN"),
            traces_sample_rate: vars.parse_fraction("SENTRY_TRACES_SAMPLE_RATE", 0.1)? as f32,
            profiles_sample_rate: vars.parse_fraction("SENTRY_PROFILES_SAMPLE_RATE", 0.1)? as f32,
            send_pii: vars.parse_bool("SENTRY_SEND_PII", false)?,
        };
        if let Some(dsn) = &sentry.dsn
            && !dsn.expose_secret().starts_with("http")
        {
            return Err(ConfigError::Invalid {
                name: "SENTRY_DSN",
                value: "<hidden>".into(),
                expected: "a DSN such as https://KEY@o0.ingest.sentry.io/PROJECT, or empty".into(),
            });
        }
        let rate_limit = RateLimitConfig {
            enabled: vars.parse_bool("RATE_LIMIT_ENABLED", true)?,
            per_minute: vars.parse_range("RATE_LIMIT_PER_MINUTE", 60, 1..=1_000_000)?,
            burst: vars.parse_range("RATE_LIMIT_BURST_SIZE", 10, 1..=1_000_000)?,
            redis_url: vars.get("REDIS_URL").map(|u| SecretString::from(u.to_owned())),
            trust_forwarded_for: vars.parse_bool("TRUST_FORWARDED_FOR", false)?,
        };
        if let Some(url) = &rate_limit.redis_url
            && !(url.expose_secret().starts_with("redis://") || url.expose_secret().starts_with("rediss://"))
        {
            return Err(ConfigError::Invalid {
                name: "REDIS_URL",
                value: redact_url_password(url.expose_secret()),
                expected: "redis://HOST:6379 (or rediss:// for TLS)".into(),
            });
        }
        let payments = parse_payments(&vars, environment)?;
        let webhooks = parse_webhooks(&vars, environment)?;
        let schedule = parse_schedule(&vars, environment)?;
        if url::Url::parse(&payments.fincra_base_url)
            .map(|u| !matches!(u.scheme(), "http" | "https"))
            .unwrap_or(true)
        {
            return Err(ConfigError::Invalid {
                name: "FINCRA_BASE_URL",
                value: payments.fincra_base_url.clone(),
                expected: "an http(s) URL".into(),
            });
        }
        let severity = |name: &'static str, default: Severity| vars.parse_with(name, default, |v| v.parse());
        let alerts = AlertConfig {
            queue_capacity: vars.parse_range("ALERT_QUEUE_CAPACITY", 1000, 1..=1_000_000)?,
            quiet_period: Duration::from_secs(vars.parse_range("ALERT_QUIET_PERIOD_SECONDS", 300, 0..=86_400)?),
            max_attempts: vars.parse_range("ALERT_MAX_ATTEMPTS", 5, 1..=20)?,
            retry_base: Duration::from_millis(vars.parse_range("ALERT_RETRY_BASE_MILLISECONDS", 500, 1..=60_000)?),
            min_severity_slack: severity("ALERT_MIN_SEVERITY_SLACK", Severity::Warning)?,
            min_severity_pagerduty: severity("ALERT_MIN_SEVERITY_PAGERDUTY", Severity::Critical)?,
        };
        let alerts_channels = AlertChannelsConfig {
            slack_webhook_url: vars.secret("SLACK_WEBHOOK_URL"),
            pagerduty_routing_key: vars.secret("PAGERDUTY_API_KEY"),
            pagerduty_service_id: vars.get("PAGERDUTY_SERVICE_ID").map(str::to_owned),
            pagerduty_events_url: vars
                .get("PAGERDUTY_EVENTS_URL")
                .unwrap_or("https://events.pagerduty.com/v2/enqueue")
                .to_owned(),
            alertmanager_url: vars.get("ALERTMANAGER_URL").map(|u| u.trim_end_matches('/').to_owned()),
            watchdog_interval: Duration::from_secs(vars.parse_range("WATCHDOG_INTERVAL_SECONDS", 15, 1..=3600)?),
            ledger_check_interval: Duration::from_secs(vars.parse_range(
                "LEDGER_CHECK_INTERVAL_SECONDS",
                300,
                1..=86_400,
            )?),
            error_burst_threshold: vars.parse_range("ERROR_BURST_THRESHOLD", 20, 1..=1_000_000)?,
            gateway_failure_ratio: vars.parse_fraction("GATEWAY_FAILURE_RATIO", 0.5)?,
        };
        for (name, url) in [
            (
                "SLACK_WEBHOOK_URL",
                alerts_channels
                    .slack_webhook_url
                    .as_ref()
                    .map(|u| u.expose_secret().to_owned()),
            ),
            (
                "PAGERDUTY_EVENTS_URL",
                Some(alerts_channels.pagerduty_events_url.clone()),
            ),
            ("ALERTMANAGER_URL", alerts_channels.alertmanager_url.clone()),
        ] {
            if let Some(url) = url
                && url::Url::parse(&url)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
            {
                return Err(ConfigError::Invalid {
                    name,
                    value: "<hidden>".into(),
                    expected: "an http(s) URL".into(),
                });
            }
        }
        let kyc_encryption_key = match vars.get("KYC_ENCRYPTION_KEY") {
            None => None,
            Some(raw) => Some(crate::auth::seal::parse_key(raw).ok_or_else(|| ConfigError::Invalid {
                name: "KYC_ENCRYPTION_KEY",
                value: "<hidden>".into(),
                expected: "32 bytes as 64 hex characters or base64 (openssl rand -hex 32)".into(),
            })?),
        };
        let metrics_enabled = vars.parse_bool("METRICS_ENABLED", true)?;
        let metrics_token = vars.secret("METRICS_TOKEN");
        let metrics_addr = vars.parse_with("METRICS_ADDR", None, |v| {
            v.parse::<std::net::SocketAddr>()
                .map(Some)
                .map_err(|_| "an address and port such as 10.0.0.5:9464 or 127.0.0.1:9464".to_owned())
        })?;
        if environment == Environment::Production
            && metrics_enabled
            && metrics_token.is_none()
            && metrics_addr.is_none()
        {
            return Err(ConfigError::Refused {
                name: "METRICS_TOKEN",
                reason: "ENVIRONMENT=production does not serve /metrics to anyone who asks: set METRICS_TOKEN \
                         (and give it to Prometheus as `authorization: credentials`), or METRICS_ADDR (a \
                         separate listener, e.g. on an internal interface), or METRICS_ENABLED=false"
                    .into(),
            });
        }
        let debug_routes = vars.parse_bool("ENABLE_DEBUG_ROUTES", false)?;
        if debug_routes && environment == Environment::Production {
            return Err(ConfigError::Refused {
                name: "ENABLE_DEBUG_ROUTES",
                reason: "debug routes fail on purpose and are refused in production".into(),
            });
        }
        if database.min_connections > database.max_connections {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MIN_CONNECTIONS",
                value: database.min_connections.to_string(),
                expected: format!("at most DATABASE_MAX_CONNECTIONS ({})", database.max_connections),
            });
        }
        // On by default in production: HSTS should not depend on reading the manual.
        let force_https_setting = vars.parse_bool("FORCE_HTTPS", environment == Environment::Production)?;
        Ok(Config {
            app_name: vars.text("APP_NAME", "Amani").to_owned(),
            app_version: vars.text("APP_VERSION", env!("CARGO_PKG_VERSION")).to_owned(),
            environment,
            host: vars.parse_with("HOST", IpAddr::from([127, 0, 0, 1]), |v| {
                v.parse()
                    .map_err(|_| "an IP address such as 127.0.0.1 or 0.0.0.0".to_owned())
            })?,
            port: vars.parse_range("PORT", 8000, 0..=65535)?,
            secret_key: SecretString::from(secret_key),
            access_token_expire_minutes: vars.parse_range("ACCESS_TOKEN_EXPIRE_MINUTES", 30, 1..=60 * 24 * 30)?,
            database,
            allowed_origins: parse_origins(vars.text("ALLOWED_ORIGINS", ""))?,
            log_filter: match vars.get("RUST_LOG") {
                Some(filter) => parse_log_level("RUST_LOG", filter)?,
                None => parse_log_level("LOG_LEVEL", vars.text("LOG_LEVEL", "info"))?,
            },
            log_format: vars.parse_with("LOG_FORMAT", LogFormat::Json, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "json" => Ok(LogFormat::Json),
                    "pretty" | "text" => Ok(LogFormat::Pretty),
                    _ => Err("json or pretty".to_owned()),
                }
            })?,
            force_https: force_https_setting,
            request_timeout: Duration::from_secs(vars.parse_range("REQUEST_TIMEOUT_SECONDS", 30, 1..=3600)?),
            shutdown_timeout: Duration::from_secs(vars.parse_range("SHUTDOWN_TIMEOUT_SECONDS", 30, 0..=3600)?),
            shutdown_drain_delay: Duration::from_secs(vars.parse_range("SHUTDOWN_DRAIN_DELAY_SECONDS", 0, 0..=300)?),
            max_body_bytes: vars.parse_range("MAX_BODY_BYTES", 1024 * 1024, 1024..=64 * 1024 * 1024)?,
            header_read_timeout: Duration::from_secs(vars.parse_range("HEADER_READ_TIMEOUT_SECONDS", 10, 1..=300)?),
            max_connections: vars.parse_range("MAX_CONNECTIONS", 1024, 1..=1_000_000)?,
            metrics_enabled,
            metrics_token,
            metrics_addr,
            tracing,
            sentry,
            rate_limit,
            payments,
            webhooks,
            schedule,
            alerts,
            alerts_channels,
            backup_dir: std::path::PathBuf::from(vars.text("BACKUP_DIR", "backups")),
            backup_retention_days: vars.parse_range("BACKUP_RETENTION_DAYS", 30, 1..=36_500)?,
            kyc_encryption_key,
            debug_routes,
            console: ConsoleConfig {
                idle_timeout: Duration::from_secs(60 * vars.parse_range("CONSOLE_IDLE_MINUTES", 30, 1..=24 * 60)?),
                session_lifetime: Duration::from_secs(3600 * vars.parse_range("CONSOLE_SESSION_HOURS", 8, 1..=24 * 7)?),
                reset_link_ttl: Duration::from_secs(60 * vars.parse_range("PASSWORD_RESET_MINUTES", 60, 5..=24 * 60)?),
                // Behind TLS (production, or FORCE_HTTPS): the browser sends
                // the cookie only over https.
                secure_cookie: environment == Environment::Production || force_https_setting,
                chart_interval: Duration::from_secs(vars.parse_range("CONSOLE_CHART_SECONDS", 10, 1..=60)?),
            },
            // Last: every variable above has been read (and recorded) by now.
            described: vars.described(),
        })
    }

    /// The folder the service keeps its files in: the SQLite file's folder,
    /// or the working directory when the database is elsewhere.
    pub fn data_dir(&self) -> std::path::PathBuf {
        let url = self.database.url.expose_secret();
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|path| !path.is_empty() && !path.starts_with(':'))
            .and_then(|path| std::path::Path::new(path).parent().map(|p| p.to_path_buf()))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| std::path::PathBuf::from("."))
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// The configuration as an operator may see it: every variable the
    /// parser read, by its own name, secrets as set/unset and length, URL
    /// passwords replaced by `***`.
    pub fn masked(&self) -> serde_json::Value {
        serde_json::Value::Object(self.described.clone())
    }
}

fn parse_tracing(vars: &Vars, environment: Environment) -> Result<TracingConfig, ConfigError> {
    let exporter = match vars.text("TRACING_EXPORTER", "otlp").to_ascii_lowercase().as_str() {
        "otlp" | "jaeger" | "tempo" | "datadog" => TracingExporter::Otlp,
        "console" | "stdout" => TracingExporter::Console,
        other => TracingExporter::Unknown(other.to_owned()),
    };
    let enabled = vars.parse_bool("TRACING_ENABLED", false)?;
    if let TracingExporter::Unknown(name) = &exporter
        && enabled
        && environment == Environment::Production
    {
        return Err(ConfigError::Invalid {
            name: "TRACING_EXPORTER",
            value: name.clone(),
            expected: "otlp or console (an unknown exporter is refused in production)".into(),
        });
    }
    let protocol = vars.parse_with("OTLP_PROTOCOL", OtlpProtocol::Grpc, |v| {
        match v.to_ascii_lowercase().as_str() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http" | "http/protobuf" | "http-protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            _ => Err("grpc or http/protobuf".into()),
        }
    })?;
    let default_endpoint = match protocol {
        OtlpProtocol::Grpc => "http://localhost:4317",
        OtlpProtocol::HttpProtobuf => "http://localhost:4318",
    };
    let endpoint = vars.text("OTLP_ENDPOINT", default_endpoint).to_owned();
    if url::Url::parse(&endpoint)
        .map(|u| !matches!(u.scheme(), "http" | "https"))
        .unwrap_or(true)
    {
        return Err(ConfigError::Invalid {
            name: "OTLP_ENDPOINT",
            value: endpoint,
            expected: "an http:// or https:// URL of an OTLP collector".into(),
        });
    }
    let mut headers = Vec::new();
    for pair in vars
        .get("OTLP_HEADERS")
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ConfigError::Invalid {
                name: "OTLP_HEADERS",
                value: "<hidden>".into(),
                expected: "comma-separated key=value pairs".into(),
            });
        };
        headers.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(TracingConfig {
        enabled,
        logs_enabled: vars.parse_bool("OTLP_LOGS_ENABLED", false)?,
        exporter,
        protocol,
        endpoint,
        headers,
        sample_ratio: vars.parse_fraction("TRACING_SAMPLE_RATIO", 1.0)?,
    })
}

fn check_production_secret(secret: &str) -> Result<(), ConfigError> {
    if secret == DEFAULT_SECRET_KEY || secret.is_empty() {
        return Err(ConfigError::Refused {
            name: "SECRET_KEY",
            reason: "ENVIRONMENT=production needs its own SECRET_KEY (the default is public)".to_owned(),
        });
    }
    if secret.len() < MIN_PRODUCTION_SECRET_BYTES {
        return Err(ConfigError::Refused {
            name: "SECRET_KEY",
            reason: format!(
                "ENVIRONMENT=production needs a SECRET_KEY of at least {MIN_PRODUCTION_SECRET_BYTES} bytes (got {})",
                secret.len()
            ),
        });
    }
    Ok(())
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if supported.iter().any(|prefix| url.starts_with(prefix)) {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        name: "DATABASE_URL",
        value: redact_url_password(url),
        expected: "a sqlite://PATH or postgres://USER@HOST/DB URL".to_owned(),
    })
}

fn parse_origins(raw: &str) -> Result<AllowedOrigins, ConfigError> {
    let origins: Vec<&str> = raw.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return Ok(AllowedOrigins::None);
    }
    if origins == ["*"] {
        return Ok(AllowedOrigins::Any);
    }
    for origin in &origins {
        let valid = url::Url::parse(origin)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/")
            .unwrap_or(false);
        if !valid || origin.ends_with('/') {
            return Err(ConfigError::Invalid {
                name: "ALLOWED_ORIGINS",
                value: raw.to_owned(),
                expected: "`*` or comma-separated origins such as https://app.example.com (scheme and host, no path)"
                    .to_owned(),
            });
        }
    }
    Ok(AllowedOrigins::List(origins.into_iter().map(str::to_owned).collect()))
}

fn parse_log_level(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    // LOG_LEVEL is the original's single level; a full filter directive
    // (`info,sqlx=warn`) is accepted too and checked here, not at first log.
    let level = raw.trim().to_ascii_lowercase();
    let level = if level == "warning" { "warn".to_owned() } else { level };
    if level == "critical" {
        return Ok("error".to_owned());
    }
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // A bare word must be a level: EnvFilter would take `loud` as a target
    // name and silently log nothing useful.
    let valid = if level.contains('=') || level.contains(',') {
        tracing_subscriber::EnvFilter::try_new(&level).is_ok()
    } else {
        LEVELS.contains(&level.as_str())
    };
    if valid {
        Ok(level)
    } else {
        Err(ConfigError::Invalid {
            name,
            value: raw.to_owned(),
            expected: "trace, debug, info, warn or error (or a tracing filter such as info,sqlx=warn)".to_owned(),
        })
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
pub fn redact_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Cannot fail: the URL already has a password, so it has a host.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// The variables whose values are secrets: `check-config` shows only
/// whether each is set and its length. One list, used by every read.
const SECRETS: [&str; 11] = [
    "SECRET_KEY",
    "METRICS_TOKEN",
    "SENTRY_DSN",
    "OTLP_HEADERS",
    "FINCRA_API_KEY",
    "FINCRA_API_SECRET",
    "FINCRA_PUBLIC_KEY",
    "FINCRA_WEBHOOK_SECRET",
    "SLACK_WEBHOOK_URL",
    "PAGERDUTY_API_KEY",
    "KYC_ENCRYPTION_KEY",
];

/// URLs that may carry a password: shown with it replaced by `***`.
const URLS_WITH_CREDENTIALS: [&str; 2] = ["DATABASE_URL", "REDIS_URL"];

/// The environment as the parser sees it, and a record of every variable
/// read, in order, with how `check-config` shows it. Because the record is
/// made by the reads themselves, a new variable cannot be forgotten by
/// `check-config` ([`Config::masked`]).
struct Vars {
    values: HashMap<String, String>,
    read: RefCell<Vec<(&'static str, serde_json::Value)>>,
}

impl Vars {
    fn new(values: HashMap<String, String>) -> Vars {
        Vars {
            values,
            read: RefCell::new(Vec::new()),
        }
    }

    /// A variable's value, unrecorded; an empty or blank value counts as
    /// unset, as it did in the original (`SENTRY_DSN=` means "off").
    fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Records how `name` is shown: secrets as set/unset and length, URLs
    /// without their password, anything else as given (or its default).
    fn note(&self, name: &'static str, default: Option<String>) {
        let shown = match self.raw(name) {
            Some(value) if SECRETS.contains(&name) => {
                serde_json::Value::from(format!("<set, {} characters>", value.chars().count()))
            }
            Some(value) if URLS_WITH_CREDENTIALS.contains(&name) => redact_url_password(value).into(),
            Some(value) => value.into(),
            None => default.map_or(serde_json::Value::Null, serde_json::Value::from),
        };
        let mut read = self.read.borrow_mut();
        read.retain(|(seen, _)| *seen != name);
        read.push((name, shown));
    }

    /// A variable with no default (unset is `None`).
    fn get(&self, name: &'static str) -> Option<&str> {
        self.note(name, None);
        self.raw(name)
    }

    /// A variable with a default.
    fn text<'a>(&'a self, name: &'static str, default: &'a str) -> &'a str {
        self.note(name, Some(default.to_owned()));
        self.raw(name).unwrap_or(default)
    }

    /// A secret (shown only as set/unset and its length).
    fn secret(&self, name: &'static str) -> Option<SecretString> {
        debug_assert!(
            SECRETS.contains(&name),
            "{name} is read as a secret but not listed in SECRETS"
        );
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }

    /// Every variable read, in the order first read, as shown.
    fn described(&self) -> serde_json::Map<String, serde_json::Value> {
        self.read
            .borrow()
            .iter()
            .map(|(name, shown)| ((*name).to_owned(), shown.clone()))
            .collect()
    }

    fn parse_with<T: fmt::Debug>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.note(name, Some(format!("{default:?}").to_lowercase()));
        match self.raw(name) {
            None => Ok(default),
            Some(value) => parse(value).map_err(|expected| ConfigError::Invalid {
                name,
                value: if SECRETS.contains(&name) {
                    "<hidden>".to_owned()
                } else {
                    value.to_owned()
                },
                expected,
            }),
        }
    }

    fn parse_range<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + fmt::Debug + Copy,
    {
        self.parse_with(name, default, |v| {
            let expected = || format!("a whole number from {} to {}", range.start(), range.end());
            let n: T = v.parse().map_err(|_| expected())?;
            if range.contains(&n) { Ok(n) } else { Err(expected()) }
        })
    }

    fn parse_fraction(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.parse_with(name, default, |v| match v.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
            _ => Err("a number from 0.0 to 1.0".into()),
        })
    }

    fn parse_bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse_with(name, default, |v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("true or false".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_run_on_sqlite_without_any_variable() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database.url.expose_secret(), "sqlite://data/amani.db");
        assert_eq!(config.port, 8000);
        assert!(config.database.auto_migrate);
        assert_eq!(config.allowed_origins, AllowedOrigins::None);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_was_expected() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.variable(), "PORT");
        assert!(err.to_string().contains("whole number from 0 to 65535"), "{err}");
        assert_eq!(
            config(&[("AUTO_MIGRATE", "maybe")]).unwrap_err().variable(),
            "AUTO_MIGRATE"
        );
        assert_eq!(
            config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().variable(),
            "DATABASE_URL"
        );
        assert_eq!(
            config(&[("ALLOWED_ORIGINS", "example.com")]).unwrap_err().variable(),
            "ALLOWED_ORIGINS"
        );
        assert_eq!(config(&[("LOG_LEVEL", "loud")]).unwrap_err().variable(), "LOG_LEVEL");
    }

    #[test]
    fn production_refuses_default_or_short_secret_keys() {
        let prod = ("ENVIRONMENT", "production");
        assert_eq!(config(&[prod]).unwrap_err().variable(), "SECRET_KEY");
        assert_eq!(
            config(&[prod, ("SECRET_KEY", "short")]).unwrap_err().variable(),
            "SECRET_KEY"
        );
        let fincra = [
            ("METRICS_TOKEN", "prometheus-scrape-token"),
            ("PAYMENT_GATEWAY", "fincra"),
            ("FINCRA_API_KEY", "sk"),
            ("FINCRA_PUBLIC_KEY", "pk"),
            ("FINCRA_BUSINESS_ID", "b"),
            ("FINCRA_WEBHOOK_SECRET", "w"),
        ];
        let key = "k".repeat(32);
        let good: Vec<(&str, &str)> = [prod, ("SECRET_KEY", key.as_str())].into_iter().chain(fincra).collect();
        assert!(config(&good).is_ok());
        // Outside production the development default is fine.
        assert!(config(&[("SECRET_KEY", "short")]).is_ok());
    }

    #[test]
    fn the_gateway_is_named_as_its_metrics_name_it_in_any_case() {
        let sandbox = config(&[("PAYMENT_GATEWAY", "SandBox")]).unwrap();
        assert_eq!(sandbox.payments.gateway, payments::GatewayKind::Sandbox);
        let refused = config(&[("PAYMENT_GATEWAY", "paystack")]).unwrap_err();
        assert_eq!(refused.variable(), "PAYMENT_GATEWAY");
        assert_eq!(
            payments::GatewayKind::ALL.map(|kind| kind.name()),
            ["sandbox", "fincra"]
        );
    }

    #[test]
    fn production_refuses_the_sandbox_gateway_and_picks_fincras_live_url() {
        let prod = ("ENVIRONMENT", "production");
        let key = "k".repeat(32);
        let refused = config(&[prod, ("SECRET_KEY", &key)]).unwrap_err();
        assert_eq!(refused.variable(), "PAYMENT_GATEWAY");
        let live = config(&[
            prod,
            ("SECRET_KEY", &key),
            ("METRICS_TOKEN", "prometheus-scrape-token"),
            ("PAYMENT_GATEWAY", "fincra"),
            ("FINCRA_API_KEY", "sk"),
            ("FINCRA_PUBLIC_KEY", "pk"),
            ("FINCRA_BUSINESS_ID", "b"),
            ("FINCRA_WEBHOOK_SECRET", "w"),
        ])
        .unwrap();
        assert_eq!(live.payments.fincra_base_url, FINCRA_LIVE_URL);
        assert!(live.force_https, "HSTS is on in production without reading the manual");
        assert!(!config(&[]).unwrap().force_https);
        // Production without a metrics token: refused, unless /metrics has
        // a separate listener (the other way to keep it private).
        let fincra = [
            prod,
            ("SECRET_KEY", key.as_str()),
            ("PAYMENT_GATEWAY", "fincra"),
            ("FINCRA_API_KEY", "sk"),
            ("FINCRA_PUBLIC_KEY", "pk"),
            ("FINCRA_BUSINESS_ID", "b"),
            ("FINCRA_WEBHOOK_SECRET", "w"),
        ];
        assert_eq!(config(&fincra).unwrap_err().variable(), "METRICS_TOKEN");
        let separate = config(&[&fincra[..], &[("METRICS_ADDR", "10.0.0.5:9464")]].concat());
        assert_eq!(separate.unwrap().metrics_addr, Some("10.0.0.5:9464".parse().unwrap()));
        assert_eq!(
            config(&[("METRICS_ADDR", "9464")]).unwrap_err().variable(),
            "METRICS_ADDR"
        );
        assert_eq!(config(&[]).unwrap().payments.fincra_base_url, FINCRA_SANDBOX_URL);
        assert_eq!(
            config(&[("SANDBOX_OUTCOME", "sometimes")]).unwrap_err().variable(),
            "SANDBOX_OUTCOME"
        );
    }

    /// Variables `.env.example` documents (`NAME=value` or `# NAME=value`).
    fn documented() -> std::collections::BTreeSet<String> {
        include_str!("../../.env.example")
            .lines()
            .map(|line| line.trim_start_matches('#').trim())
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_variable_read_is_shown_by_check_config_and_documented() {
        let described: std::collections::BTreeSet<String> = match config(&[]).unwrap().masked() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("{other}"),
        };
        let documented = documented();
        let undocumented: Vec<&String> = described.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "read but not in .env.example: {undocumented:?}"
        );
        let unread: Vec<&String> = documented.difference(&described).collect();
        assert!(unread.is_empty(), "in .env.example but never read: {unread:?}");
        assert!(described.contains("LOG_LEVEL"), "named as it is set, not LOG_FILTER");
    }

    #[test]
    fn check_config_shows_secrets_only_as_set_and_their_length() {
        let marker = "s3cr3t-marker-value-0123456789abcdef";
        let mut pairs: Vec<(&str, &str)> = SECRETS
            .iter()
            .filter(|name| {
                !matches!(
                    **name,
                    "SENTRY_DSN" | "SLACK_WEBHOOK_URL" | "KYC_ENCRYPTION_KEY" | "OTLP_HEADERS"
                )
            })
            .map(|name| (*name, marker))
            .collect();
        pairs.push(("SENTRY_DSN", "https://s3cr3t-marker@o0.ingest.sentry.io/1"));
        pairs.push(("SLACK_WEBHOOK_URL", "https://hooks.slack.example/s3cr3t-marker"));
        pairs.push(("OTLP_HEADERS", "api-key=s3cr3t-marker"));
        let shown = config(&pairs).unwrap().masked();
        let text = shown.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(shown["SECRET_KEY"], format!("<set, {} characters>", marker.len()));
        assert_eq!(shown["METRICS_TOKEN"], format!("<set, {} characters>", marker.len()));
        assert_eq!(shown["PORT"], "8000", "defaults are shown as used");
        assert_eq!(config(&[]).unwrap().masked()["SENTRY_DSN"], serde_json::Value::Null);
    }

    #[test]
    fn masked_config_hides_secrets_and_database_passwords() {
        let config = config(&[
            ("SECRET_KEY", "supersecretvalue"),
            ("DATABASE_URL", "postgres://amani:hunter2@db:5432/amani"),
        ])
        .unwrap();
        let shown = config.masked().to_string();
        assert!(!shown.contains("supersecretvalue"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://amani:***@db:5432/amani"), "{shown}");
    }

    #[test]
    fn origins_accept_a_list_or_a_star() {
        let list = config(&[("ALLOWED_ORIGINS", "https://a.example, http://localhost:3000")]).unwrap();
        assert_eq!(
            list.allowed_origins,
            AllowedOrigins::List(vec!["https://a.example".into(), "http://localhost:3000".into()])
        );
        assert_eq!(
            config(&[("ALLOWED_ORIGINS", "*")]).unwrap().allowed_origins,
            AllowedOrigins::Any
        );
    }
}
