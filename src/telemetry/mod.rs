//! Logs, metrics, traces and error tracking, all correlated by request id
//! and trace id.
//!
//! [`init`] installs one `tracing` subscriber built from layers:
//! - [`json::CorrelationLayer`] keeps each span's request id, trace id, user
//!   id and route, so every log line inside a request carries them;
//! - the formatter (JSON lines, or `LOG_FORMAT=pretty`), filtered by
//!   `RUST_LOG`/`LOG_LEVEL`;
//! - OpenTelemetry ([`traces`]), which sees the service's own spans whatever
//!   the log level, so a quiet log never means missing traces;
//! - log records over OTLP ([`logs`]) when `OTLP_LOGS_ENABLED` is set;
//! - Sentry breadcrumbs ([`error_tracking`]) when `SENTRY_DSN` is set.
//!
//! It returns a guard that flushes the span exporter when dropped.

pub mod error_tracking;
pub mod histogram;
pub mod history;
pub mod json;
pub mod logs;
pub mod metrics;
mod process;
pub mod request_id;
pub mod traces;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Flushes and stops telemetry when dropped; keep it alive for the life of
/// the command, and drop it before the runtime.
#[must_use = "dropping the guard stops telemetry"]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.tracer_provider.shutdown() {
            eprintln!("telemetry: flushing spans failed: {err}");
        }
        if let Some(Err(err)) = self.logger_provider.as_ref().map(|p| p.shutdown()) {
            eprintln!("telemetry: flushing log records failed: {err}");
        }
    }
}

/// Sends panic messages through the log as one JSON line (with the request's
/// correlation fields) instead of plain text on stderr. Install before
/// Sentry, whose panic handler calls this one after reporting.
pub fn install_panic_log_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        tracing::error!(panic.location = %location, panic.message = %message, "panic");
    }));
}

/// Where log lines go: stdout for the server (the documented contract for
/// collectors), stderr for the other commands, whose stdout is their report
/// (`amani ledger check 2>/dev/null | jq .balanced` must read clean JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Stderr,
}

/// Installs the global subscriber. Call inside the Tokio runtime (the gRPC
/// exporter binds to it), after [`error_tracking::init`].
pub fn init(config: &Config, output: LogOutput) -> Result<TelemetryGuard, traces::TracingError> {
    let writer = move || match output {
        LogOutput::Stdout => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
        LogOutput::Stderr => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let tracer_provider = traces::provider(config)?;
    traces::install_propagator();
    // Our own spans and events; other crates' only at warn and above.
    let ours = || {
        Targets::new()
            .with_target("amani", Level::INFO)
            .with_default(Level::WARN)
    };
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (json, pretty) = match config.log_format {
        LogFormat::Json => (Some(json::JsonLines::new(writer()).with_filter(filter)), None),
        LogFormat::Pretty => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer())
                    .with_filter(filter),
            ),
        ),
    };
    // A span carries what a trace view needs: its fields, its parent and
    // its times. Not the code location (the same helper for every request
    // or statement), the thread (meaningless for async tasks), nor busy and
    // idle time (two clock reads and a lock every time a request's future
    // is polled); and the OTel context is read from the span when needed
    // (`traces::inject_trace`), not made current on every poll.
    let otel = tracing_opentelemetry::layer()
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_tracer(traces::tracer(&tracer_provider))
        .with_filter(ours());
    let logger_provider = logs::provider(config)?;
    // Log records follow the log filter, as the JSON lines do, except the
    // exporter's own stack: its events would be exported by the exporter.
    let otel_logs = logger_provider.as_ref().map(|provider| {
        logs::OtlpLogs::new(provider)
            .with_filter(EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info")))
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                !logs::EXPORTER_TARGETS
                    .iter()
                    .any(|target| metadata.target().starts_with(target))
            }))
    });
    let breadcrumbs = config
        .sentry
        .dsn
        .as_ref()
        .map(|_| error_tracking::breadcrumbs().with_filter(ours()));
    let result = tracing_subscriber::registry()
        .with(json::CorrelationLayer.with_filter(ours()))
        .with(json)
        .with(pretty)
        .with(otel)
        .with(otel_logs)
        .with(breadcrumbs)
        .try_init();
    if let Err(err) = result {
        eprintln!("telemetry: a global subscriber was already installed: {err}");
    }
    if let (true, crate::config::TracingExporter::Unknown(name)) = (config.tracing.enabled, &config.tracing.exporter) {
        tracing::warn!(exporter = %name, "unknown TRACING_EXPORTER: spans will not be exported");
    }
    Ok(TelemetryGuard {
        tracer_provider,
        logger_provider,
    })
}
