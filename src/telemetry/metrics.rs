//! Every Prometheus metric the service exports, declared in one place.
//!
//! ## Why `prometheus-client`
//! It is the Prometheus project's own Rust client, speaks OpenMetrics and
//! supports exemplars: each `http_request_duration_seconds` observation can
//! carry the trace id of the request, so a slow bucket on a dashboard links
//! to a trace. (`metrics` + `metrics-exporter-prometheus` is the other common
//! choice; it has no exemplars.) Scrapers that ask for OpenMetrics get it
//! with exemplars; anything else gets the classic text format (0.0.4), which
//! every Prometheus-compatible tool parses.
//!
//! Names and labels of the seed service's metrics are kept exactly, so its
//! dashboards and alert rules keep working. Labels are bounded by
//! construction: `endpoint` is a route template or `unmatched`, `method` one
//! of the standard methods or `other`, `status` a number.
//!
//! Gauges that describe the database (pool use, money in escrow, pending KYC)
//! are read at scrape time, so every replica reports the truth.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::{HistogramFamily, HistogramLabels};
use super::process::ProcessCollector;
use crate::build_info::BuildInfo;
use crate::config::Config;
use crate::config::GatewayKind;

/// The seed's request-latency buckets (the Python client's defaults), in seconds.
pub const HTTP_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Database statements are expected to be one or two orders faster.
pub const DB_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Outbound payment-gateway calls.
pub const GATEWAY_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Label vocabularies. Known combinations are created at zero at start, so
/// every family is visible (and `rate()` works) before its first event.
pub const ESCROW_TYPES: [&str; 5] = ["hold", "release", "refund", "deposit", "withdrawal"];
pub const OUTCOMES: [&str; 2] = ["succeeded", "failed"];
pub const KYC_STATUSES: [&str; 3] = ["pending", "approved", "rejected"];
pub const ALERT_CHANNELS: [&str; 2] = ["slack", "pagerduty"];
pub const GATEWAY_PROVIDERS: [&str; 2] = [GatewayKind::ALL[0].name(), GatewayKind::ALL[1].name()];
pub const GATEWAY_OPERATIONS: [&str; 5] = ["checkout", "payout", "verify", "payout_status", "resolve"];
pub const GATEWAY_OUTCOMES: [&str; 3] = ["success", "error", "timeout"];
pub const WEBHOOK_OUTCOMES: [&str; 7] = [
    "processed",
    "duplicate",
    "rejected",
    "unknown_reference",
    "kind_mismatch",
    "deferred",
    "ignored",
];
/// Gateway records: kinds, reconciliation outcomes and pending-age buckets.
/// Outcomes of one webhook attempt (`amani_webhook_attempts_total`).
/// How a write transaction ended.
pub const TRANSACTION_OUTCOMES: [&str; 2] = ["committed", "rolled_back"];

pub const WEBHOOK_ATTEMPT_OUTCOMES: [&str; 5] = ["delivered", "http_error", "timeout", "connection_error", "refused"];
/// How a delivery ended (`amani_webhook_deliveries_total`).
pub const WEBHOOK_DELIVERY_OUTCOMES: [&str; 2] = ["delivered", "failed"];
pub const WEBHOOK_ENDPOINT_STATUSES: [&str; 3] = ["enabled", "failing", "disabled"];
pub const PAYMENT_KINDS: [&str; 2] = ["deposit", "withdrawal"];
pub const RECONCILE_OUTCOMES: [&str; 6] = ["completed", "failed", "review", "still_pending", "resent", "error"];
pub const PENDING_AGES: [&str; 4] = ["lt_5m", "5m_1h", "1h_24h", "gt_24h"];

/// How often the stored-state gauges (money in escrow, backlogs, the last
/// backup) are refreshed, in the background: a scrape only renders.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

pub type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub endpoint: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub endpoint: String,
}

/// The exemplar attached to a latency observation: the request's trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// A histogram's labels only (written by [`super::histogram`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct OperationLabels {
    pub operation: &'static str,
}

impl HistogramLabels for OperationLabels {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![("operation", self.operation)]
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error_type: &'static str,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EscrowLabels {
    /// Rendered as `type` (the derive strips the raw-identifier prefix).
    pub r#type: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Rendered as `type`.
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

impl HistogramLabels for OutcomeLabels {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![("outcome", self.outcome)]
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrencyLabels {
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub provider: &'static str,
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// A histogram's labels only (written by [`super::histogram`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct GatewayOperationLabels {
    pub provider: &'static str,
    pub operation: &'static str,
}

impl HistogramLabels for GatewayOperationLabels {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![("provider", self.provider), ("operation", self.operation)]
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub provider: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PaymentAgeLabels {
    pub kind: &'static str,
    pub age: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// The last payment-gateway call, as `/health` reports it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct GatewayCall {
    pub operation: &'static str,
    /// success, error (refused) or timeout (no definite answer).
    pub outcome: &'static str,
    /// RFC 3339.
    pub at: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub channel: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub version: String,
    pub environment: String,
    pub app_name: String,
    pub git_sha: String,
}

type LatencyFamily =
    Family<RouteLabels, HistogramWithExemplars<TraceExemplar>, fn() -> HistogramWithExemplars<TraceExemplar>>;

/// Declares every metric once — field, type, initial value, exported name
/// and help — and generates the struct, its constructor and its
/// registration from that one table. (prometheus-client appends `_total`
/// to counters itself: name a counter without it.)
macro_rules! metrics {
    (
        exported { $( $field:ident : $ty:ty = $init:expr => $name:literal, $help:literal; )+ }
        histograms { $( $hfield:ident : $labels:ty, $bounds:expr => $hname:literal, $hhelp:literal; )+ }
        internal { $( $(#[$doc:meta])* $ifield:ident : $ity:ty = $iinit:expr; )+ }
    ) => {
        pub struct Metrics {
            registry: Registry,
            $( pub $field: $ty, )+
            $( pub $hfield: HistogramFamily<$labels>, )+
            $( $(#[$doc])* pub $ifield: $ity, )+
        }

        impl Metrics {
            fn declare() -> Metrics {
                Metrics {
                    registry: Registry::default(),
                    $( $field: $init, )+
                    $( $hfield: HistogramFamily::new($hname, $hhelp, &$bounds), )+
                    $( $ifield: $iinit, )+
                }
            }

            fn register_all(&self, registry: &mut Registry) {
                $( registry.register($name, $help, self.$field.clone()); )+
            }

            /// The histograms kept outside the registry (see
            /// [`super::histogram`]), in OpenMetrics text.
            fn render_histograms(&self, out: &mut String) {
                $( self.$hfield.render(out); )+
            }
        }
    };
}

metrics! {
    exported {
        http_requests: Family<RequestLabels, Counter> = Family::default()
            => "http_requests", "HTTP requests served, by method, route template and status";
        http_request_duration: LatencyFamily = Family::new_with_constructor(latency_histogram)
            => "http_request_duration_seconds", "HTTP request latency by method and route template, with the trace id as exemplar";
        http_requests_in_progress: Family<RouteLabels, Gauge> = Family::default()
            => "http_requests_in_progress", "HTTP requests being served now, by method and route template";
        db_connections_active: Gauge = Gauge::default()
            => "db_connections_active", "Pooled database connections in use";
        db_connections_idle: Gauge = Gauge::default()
            => "db_connections_idle", "Pooled database connections open and idle";
        db_connections_max: Gauge = Gauge::default()
            => "db_connections_max", "Configured maximum pool size";
        escrow_transactions: Family<EscrowLabels, Counter> = Family::default()
            => "escrow_transactions", "Escrow ledger operations by type (hold, release, refund, deposit, withdrawal) and outcome";
        user_registrations: Counter = Counter::default()
            => "user_registrations", "Accounts created through sign-up";
        kyc_submissions: Family<StatusLabels, Counter> = Family::default()
            => "kyc_submissions", "KYC submissions and decisions by status";
        errors: Family<ErrorLabels, Counter> = Family::default()
            => "errors", "Error responses by problem type and route template";
        escrow_held: Family<CurrencyLabels, Gauge> = Family::default()
            => "amani_escrow_held_minor_units", "Money held in escrow now, in minor units, by currency (read from the ledger)";
        kyc_pending: Gauge = Gauge::default()
            => "amani_kyc_pending", "KYC submissions awaiting review (read from the database)";
        gateway_requests: Family<GatewayLabels, Counter> = Family::default()
            => "amani_gateway_requests", "Payment-gateway calls by provider, operation and outcome";
        webhooks_received: Family<WebhookLabels, Counter> = Family::default()
            => "amani_webhooks_received", "Payment webhooks received by provider and outcome";
        payments_pending: Family<PaymentAgeLabels, Gauge> = Family::default()
            => "amani_payments_pending", "Deposits and withdrawals waiting for the payment provider, by kind and age (read from the database)";
        payments_stuck: Gauge = Gauge::default()
            => "amani_payments_stuck", "Deposits and withdrawals pending longer than PAYMENT_STUCK_AFTER_SECONDS (read from the database)";
        payments_reconciled: Family<ReconcileLabels, Counter> = Family::default()
            => "amani_payments_reconciled", "Pending deposits and withdrawals looked up at the provider by reconciliation, by kind and outcome";
        payment_mispayments: Family<KindLabels, Counter> = Family::default()
            => "amani_payment_mispayments", "Money reported by the provider that did not match the record (held for review), by kind";
        events_written: Family<EventLabels, Counter> = Family::default()
            => "amani_events_written", "Events written to the event log (committed), by type";
        webhook_attempts: Family<OutcomeLabels, Counter> = Family::default()
            => "amani_webhook_attempts", "Outbound webhook attempts by outcome (delivered, http_error, timeout, connection_error, refused)";
        webhook_deliveries: Family<OutcomeLabels, Counter> = Family::default()
            => "amani_webhook_deliveries", "Outbound webhook deliveries finished, by outcome (delivered, or failed after the last retry)";
        webhook_pending: Gauge = Gauge::default()
            => "amani_webhook_deliveries_pending", "Outbound webhook deliveries not yet made, including events not yet fanned out (read from the database)";
        webhook_oldest_undelivered: Gauge = Gauge::default()
            => "amani_webhook_oldest_undelivered_seconds", "Age of the oldest event still waiting for a delivery, 0 when none (read from the database)";
        webhook_endpoints: Family<StatusLabels, Gauge> = Family::default()
            => "amani_webhook_endpoints", "Outbound webhook endpoints by status (enabled, failing, disabled; read from the database)";
        scheduled_jobs: Family<JobLabels, Counter> = Family::default()
            => "amani_scheduled_jobs", "Scheduled jobs run, by kind and outcome (done, obsolete: nothing left to do, failed: retried later)";
        scheduled_jobs_due: Family<KindLabels, Gauge> = Family::default()
            => "amani_scheduled_jobs_due", "Scheduled jobs due and not done, by kind (read from the database)";
        scheduled_jobs_late: Gauge = Gauge::default()
            => "amani_scheduled_jobs_late_seconds", "How long the earliest due, undone scheduled job has been due, 0 when none (read from the database)";
        milestones_auto_released: Counter = Counter::default()
            => "amani_milestones_auto_released", "Milestones the system approved and released because their inspection period elapsed";
        projects_expired: Counter = Counter::default()
            => "amani_projects_expired", "Projects the system cancelled because they were not fully funded by their funding deadline";
        alerts_sent: Family<AlertLabels, Counter> = Family::default()
            => "alerts_sent", "Alert deliveries by channel and outcome";
        alerts_dropped: Counter = Counter::default()
            => "alerts_dropped", "Alerts dropped because the delivery queue was full";
        ledger_check_ok: Gauge = Gauge::default()
            => "amani_ledger_check_ok", "1 when the last ledger check balanced, 0 when it found a break";
        ledger_check_timestamp: FloatGauge = FloatGauge::default()
            => "amani_ledger_check_timestamp_seconds", "Unix time of the last ledger check";
        ledger_check_success_timestamp: FloatGauge = FloatGauge::default()
            => "amani_ledger_check_success_timestamp_seconds", "Unix time of the last ledger check that balanced (0: none since start)";
        backup_last_success_timestamp: FloatGauge = FloatGauge::default()
            => "backup_last_success_timestamp_seconds", "Unix time of the newest verified backup found in the backup folder";
        database_up: Gauge = Gauge::default()
            => "amani_database_up", "1 when the last database check succeeded, 0 when the database could not be reached";
        database_migrations_pending: Gauge = Gauge::default()
            => "amani_database_migrations_pending", "Embedded migrations not yet applied to the database";
    }
    histograms {
        db_query_duration: OperationLabels, DB_BUCKETS
            => "db_query_duration_seconds", "Database statement latency by operation";
        db_transaction_duration: OutcomeLabels, DB_BUCKETS
            => "db_transaction_duration_seconds", "Write transactions from begin to commit or rollback (on SQLite, how long the writer's lock was held), by outcome";
        gateway_request_duration: GatewayOperationLabels, GATEWAY_BUCKETS
            => "amani_gateway_request_duration_seconds", "Payment-gateway call latency";
        webhook_attempt_duration: (), GATEWAY_BUCKETS
            => "amani_webhook_attempt_duration_seconds", "Outbound webhook attempt latency";
    }
    internal {
        /// The last payment-gateway call, for `/health`.
        gateway_last_call: Mutex<Option<GatewayCall>> = Mutex::new(None);
        /// Plain counters the watchdogs read (not exported: their exported twins
        /// are `http_requests_total{status=~"5.."}` and `amani_gateway_requests_total`).
        server_errors: std::sync::atomic::AtomicU64 = Default::default();
        gateway_calls: std::sync::atomic::AtomicU64 = Default::default();
        gateway_failures: std::sync::atomic::AtomicU64 = Default::default();
        /// The process collector (registered), for its slow values' refresh.
        process: ProcessCollector = ProcessCollector::default();
    }
}

fn latency_histogram() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(HTTP_BUCKETS.into_iter())
}

impl Metrics {
    pub fn new(config: &Config, build: &BuildInfo) -> Arc<Metrics> {
        let metrics = Metrics::declare();
        let info: Family<InfoLabels, Gauge> = Family::default();
        info.get_or_create(&InfoLabels {
            version: config.app_version.clone(),
            environment: config.environment.as_str().to_owned(),
            app_name: config.app_name.clone(),
            git_sha: build.git_sha.to_owned(),
        })
        .set(1);
        metrics
            .db_connections_max
            .set(i64::from(config.database.max_connections));
        metrics.create_known_series(config.payments.gateway.name());

        let mut registry = Registry::default();
        registry.register(
            "amani_app_info",
            "Build and deployment of this process (always 1)",
            info,
        );
        metrics.register_all(&mut registry);
        let process = ProcessCollector::new(vec![("data".to_owned(), config.data_dir())]);
        registry.register_collector(Box::new(process.clone()));
        Arc::new(Metrics {
            registry,
            process,
            ..metrics
        })
    }

    /// The gateway calls' series are created for the configured provider
    /// only (`gateway`): a process never calls the other one, and its 80
    /// lines of zeros were an eighth of every scrape.
    fn create_known_series(&self, gateway: &'static str) {
        for r#type in ESCROW_TYPES {
            for status in OUTCOMES {
                let _ = self.escrow_transactions.get_or_create(&EscrowLabels { r#type, status });
            }
        }
        for status in KYC_STATUSES {
            let _ = self.kyc_submissions.get_or_create(&StatusLabels { status });
        }
        for channel in ALERT_CHANNELS {
            for outcome in OUTCOMES {
                let _ = self.alerts_sent.get_or_create(&AlertLabels { channel, outcome });
            }
        }
        for operation in GATEWAY_OPERATIONS {
            for outcome in GATEWAY_OUTCOMES {
                let _ = self.gateway_requests.get_or_create(&GatewayLabels {
                    provider: gateway,
                    operation,
                    outcome,
                });
            }
            self.gateway_request_duration.create(&GatewayOperationLabels {
                provider: gateway,
                operation,
            });
        }
        for provider in GATEWAY_PROVIDERS {
            for outcome in WEBHOOK_OUTCOMES {
                let _ = self.webhooks_received.get_or_create(&WebhookLabels {
                    provider: provider.to_owned(),
                    outcome,
                });
            }
        }
        for kind in PAYMENT_KINDS {
            for age in PENDING_AGES {
                let _ = self.payments_pending.get_or_create(&PaymentAgeLabels { kind, age });
            }
            for outcome in RECONCILE_OUTCOMES {
                let _ = self
                    .payments_reconciled
                    .get_or_create(&ReconcileLabels { kind, outcome });
            }
            let _ = self.payment_mispayments.get_or_create(&KindLabels { kind });
        }
        for event in crate::domain::event::EventType::ALL {
            let _ = self
                .events_written
                .get_or_create(&EventLabels { r#type: event.as_str() });
        }
        for outcome in TRANSACTION_OUTCOMES {
            self.db_transaction_duration.create(&OutcomeLabels { outcome });
        }
        self.webhook_attempt_duration.create(&());
        for outcome in WEBHOOK_ATTEMPT_OUTCOMES {
            let _ = self.webhook_attempts.get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in WEBHOOK_DELIVERY_OUTCOMES {
            let _ = self.webhook_deliveries.get_or_create(&OutcomeLabels { outcome });
        }
        for status in WEBHOOK_ENDPOINT_STATUSES {
            let _ = self.webhook_endpoints.get_or_create(&StatusLabels { status });
        }
        for kind in crate::domain::job::KINDS {
            let _ = self.scheduled_jobs_due.get_or_create(&KindLabels { kind });
            for outcome in crate::domain::job::OUTCOMES {
                let _ = self.scheduled_jobs.get_or_create(&JobLabels { kind, outcome });
            }
        }
        for currency in crate::domain::money::Currency::ALL {
            let _ = self.escrow_held.get_or_create(&CurrencyLabels {
                currency: currency.code().to_owned(),
            });
        }
    }

    /// Reads the process's slowly changing values (open descriptors,
    /// limits, volumes) for the next scrapes.
    pub fn refresh_process(&self) {
        self.process.refresh();
    }

    /// Remembers the last gateway call for `/health`.
    pub fn note_gateway_outcome(&self, operation: &'static str, outcome: &'static str) {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if let Ok(mut last) = self.gateway_last_call.lock() {
            *last = Some(GatewayCall { operation, outcome, at });
        }
    }

    pub fn last_gateway_call(&self) -> Option<GatewayCall> {
        self.gateway_last_call.lock().ok().and_then(|last| last.clone())
    }

    /// Renders the registry as OpenMetrics text (with exemplars).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        self.render_histograms(&mut out);
        out.push_str("# EOF\n");
        out
    }

    /// Renders the registry in the classic Prometheus text format (0.0.4).
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// The request method as a label: the standard methods, or `other`, so a
/// client inventing methods cannot create series.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Turns OpenMetrics text into the classic text format: counter families are
/// named with their `_total` suffix, exemplars and `# EOF` are dropped.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "info" | "stateset" | "gaugehistogram" | "unknown" => (name.to_owned(), "untyped"),
                _ => (name.to_owned(), kind),
            };
            if let Some(help) = pending_help.take() {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        // A sample, possibly followed by ` # {exemplar} value [timestamp]`.
        let sample = line.split_once(" # ").map_or(line, |(sample, _)| sample);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_drops_exemplars() {
        let openmetrics = "# HELP http_requests Requests.\n# TYPE http_requests counter\n\
            http_requests_total{method=\"GET\"} 3\n\
            # HELP lat Latency.\n# TYPE lat histogram\n\
            lat_bucket{le=\"0.1\"} 1 # {trace_id=\"abc\"} 0.05 1700000000.0\n# EOF\n";
        let text = openmetrics_to_text(openmetrics);
        assert_eq!(
            text,
            "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
             http_requests_total{method=\"GET\"} 3\n\
             # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\n"
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        let invented = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
