//! JSON log lines: one object per line with the timestamp (RFC 3339, UTC),
//! level, target, message, the event's fields, and the correlation fields of
//! the spans it happened in (`request_id`, `trace_id`, `span_id`, `user_id`,
//! `method`, `route`), so every line of a request can be found by its id.
//!
//! Redaction by construction: a field whose name says it holds a secret is
//! written as `"[redacted]"`, whatever the caller passed.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Scope};

/// Span fields copied onto every log line emitted inside the span.
const CORRELATION_FIELDS: [&str; 6] = ["request_id", "trace_id", "span_id", "user_id", "method", "route"];

/// Field names whose values never reach a log line.
const SECRET_FIELD_MARKERS: [&str; 9] = [
    "password",
    "token",
    "authorization",
    "cookie",
    "secret",
    "signature",
    "nin",
    "passport",
    "document",
];

pub fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_FIELD_MARKERS.iter().any(|marker| name.contains(marker))
}

/// The correlation fields a span carries, stored in its extensions.
#[derive(Default)]
struct SpanCorrelation(Map<String, Value>);

/// Captures correlation fields from spans as they are created and recorded.
pub struct CorrelationLayer;

impl<S> Layer<S> for CorrelationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanCorrelation::default();
        attrs.record(&mut CorrelationVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanCorrelation>() {
            values.record(&mut CorrelationVisitor(&mut fields.0));
        }
    }
}

struct CorrelationVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for CorrelationVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if CORRELATION_FIELDS.contains(&field.name()) && !value.is_empty() {
            self.0.insert(field.name().to_owned(), Value::from(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if CORRELATION_FIELDS.contains(&field.name()) {
            let text = format!("{value:?}");
            let text = text.trim_matches('"');
            if !text.is_empty() {
                self.0.insert(field.name().to_owned(), Value::from(text));
            }
        }
    }
}

/// The event formatter for `LOG_FORMAT=json`.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(crate::timestamp::now()));
        line.insert("level".into(), Value::from(metadata.level().as_str()));
        line.insert("target".into(), Value::from(metadata.target()));
        line.extend(event_fields(ctx.event_scope(), event));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// What a log line says besides its time, level and target: the
/// correlation fields of the spans it happened in, the event's own fields
/// (secret-looking ones redacted) and a `message`. The JSON line and the
/// OTLP log record ([`super::logs`]) are both made from it.
pub(super) fn event_fields<'a, R>(scope: Option<Scope<'a, R>>, event: &Event<'_>) -> Map<String, Value>
where
    R: LookupSpan<'a>,
{
    let mut line = Map::new();
    if let Some(scope) = scope {
        for span in scope.from_root() {
            if let Some(fields) = span.extensions().get::<SpanCorrelation>() {
                for (key, value) in &fields.0 {
                    line.insert(key.clone(), value.clone());
                }
            }
        }
    }
    event.record(&mut EventVisitor(&mut line));
    // Every line has a message; events from other crates may carry only
    // fields (sqlx's query log has a `summary`).
    if !line.contains_key("message") {
        let message = line
            .get("summary")
            .cloned()
            .unwrap_or_else(|| Value::from(event.metadata().name()));
        line.insert("message".into(), message);
    }
    line
}

struct EventVisitor<'a>(&'a mut Map<String, Value>);

impl EventVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // `log` records bridged into tracing carry these; they are noise.
        if name.starts_with("log.") {
            return;
        }
        let value = if is_secret_field(name) {
            Value::from("[redacted]")
        } else {
            value
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_field_names_are_recognised() {
        for name in [
            "password",
            "new_password",
            "access_token",
            "Authorization",
            "kyc_document",
            "nin_or_passport",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["request_id", "user_id", "route", "status"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
