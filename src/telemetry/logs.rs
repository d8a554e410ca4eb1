//! Log records over OTLP (the logs signal), beside the spans, when
//! `OTLP_LOGS_ENABLED=true`: every event that passes the log filter goes to
//! the collector too (same endpoint, protocol and headers as the spans), so
//! several replicas' logs can be searched in one place (Loki behind the
//! OpenTelemetry Collector in docker-compose).
//!
//! A record says what the JSON line says ([`super::json::event_fields`]):
//! the message as its body; the correlation fields of its spans
//! (`request_id`, `trace_id`, `span_id`, `user_id`, `method`, `route`) and
//! the event's fields as attributes, secret-looking ones redacted; and the
//! request's trace context as OTLP's own, so a trace view lists its lines.
//! (A layer of our own rather than `opentelemetry-appender-tracing`: that
//! appender exports fields unredacted and does not see the request span's
//! ids without an experimental feature.)

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use serde_json::Value;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::traces::{TracingError, grpc, http, resource};
use crate::config::{Config, OtlpProtocol};

/// Crates on the export path (gRPC, HTTP, the SDK): their events are not
/// exported, or exporting would feed itself.
pub const EXPORTER_TARGETS: [&str; 6] = ["opentelemetry", "tonic", "h2", "hyper", "tower", "reqwest"];

/// The logger provider, when log export is on.
pub fn provider(config: &Config) -> Result<Option<SdkLoggerProvider>, TracingError> {
    if !config.tracing.logs_enabled {
        return Ok(None);
    }
    let exporter = match config.tracing.protocol {
        OtlpProtocol::Grpc => grpc(opentelemetry_otlp::LogExporter::builder().with_tonic(), config)?.build(),
        OtlpProtocol::HttpProtobuf => http(
            opentelemetry_otlp::LogExporter::builder().with_http(),
            config,
            "/v1/logs",
        )
        .build(),
    }
    .map_err(|e| TracingError::new(e.to_string()))?;
    Ok(Some(
        SdkLoggerProvider::builder()
            .with_resource(resource(config))
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The layer that turns `tracing` events into OTLP log records.
pub struct OtlpLogs {
    logger: SdkLogger,
}

impl OtlpLogs {
    pub fn new(provider: &SdkLoggerProvider) -> OtlpLogs {
        use opentelemetry::logs::LoggerProvider as _;
        OtlpLogs {
            logger: provider.logger("amani"),
        }
    }
}

impl<S> Layer<S> for OtlpLogs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut fields = super::json::event_fields(ctx.event_scope(event), event);
        let mut record = self.logger.create_log_record();
        record.set_timestamp(SystemTime::now());
        record.set_target(metadata.target());
        record.set_severity_number(severity(*metadata.level()));
        record.set_severity_text(metadata.level().as_str());
        if let Some(message) = fields.remove("message") {
            record.set_body(any(message));
        }
        let id = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let trace = id("trace_id").and_then(|t| TraceId::from_hex(&t).ok());
        let span = id("span_id").and_then(|s| SpanId::from_hex(&s).ok());
        if let (Some(trace), Some(span)) = (trace, span) {
            record.set_trace_context(trace, span, None);
        }
        for (key, value) in fields {
            record.add_attribute(key, any(value));
        }
        self.logger.emit(record);
    }
}

fn severity(level: Level) -> Severity {
    match level {
        Level::TRACE => Severity::Trace,
        Level::DEBUG => Severity::Debug,
        Level::INFO => Severity::Info,
        Level::WARN => Severity::Warn,
        Level::ERROR => Severity::Error,
    }
}

fn any(value: Value) -> AnyValue {
    match value {
        Value::String(s) => AnyValue::from(s),
        Value::Bool(b) => AnyValue::from(b),
        Value::Number(n) => n
            .as_i64()
            .map(AnyValue::from)
            .or_else(|| n.as_f64().map(AnyValue::from))
            .unwrap_or_else(|| AnyValue::from(n.to_string())),
        other => AnyValue::from(other.to_string()),
    }
}
