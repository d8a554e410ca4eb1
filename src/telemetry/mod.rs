//! Logs and metrics; traces and error tracking plug in here.
//!
//! [`init`] installs one `tracing` subscriber for the process: an env filter
//! (`RUST_LOG`, else `LOG_LEVEL`) and a formatter writing one JSON object per
//! line to stdout (or a human format with `LOG_FORMAT=pretty`).

mod access_log;
pub mod metrics;
mod process;

pub use access_log::{MatchedRoute, observe, record_route};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Flushes telemetry when dropped; keep it alive for the life of `main`.
#[must_use = "dropping the guard stops telemetry"]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber. Call once, before the runtime serves.
pub fn init(config: &Config) -> TelemetryGuard {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    if let Err(err) = result {
        eprintln!("telemetry: a global subscriber was already installed: {err}");
    }
    TelemetryGuard { _private: () }
}

/// The OpenTelemetry trace id of `span`, when tracing is on and the span is
/// sampled; used as the exemplar of latency observations.
pub fn current_trace_id(_span: &tracing::Span) -> Option<String> {
    None
}
