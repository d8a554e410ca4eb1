//! JSON log lines: one object per line with the timestamp (RFC 3339, UTC),
//! level, target, message, the event's fields, and the correlation fields of
//! the spans it happened in (`request_id`, `trace_id`, `span_id`, `user_id`,
//! `method`, `route`), so every line of a request can be found by its id.
//!
//! Redaction by construction: a field whose name says it holds a secret is
//! written as `"[redacted]"`, whatever the caller passed.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Scope};

use super::traces::TraceIds;

/// Span fields copied onto every log line emitted inside the span (with
/// `trace_id` and `span_id`, from [`attach_trace_ids`]).
const CORRELATION_FIELDS: [&str; 4] = ["request_id", "user_id", "method", "route"];

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

/// The correlation fields a span carries (in [`CORRELATION_FIELDS`]'s
/// order), stored in its extensions: fixed slots, so a request's span costs
/// a few small strings, not a map.
#[derive(Default)]
struct SpanCorrelation([Option<String>; CORRELATION_FIELDS.len()]);

/// Gives the log lines written inside `span` its trace's ids (`trace_id`,
/// `span_id`), kept as numbers in the span's extensions and formatted only
/// when a line is written.
pub fn attach_trace_ids(span: &tracing::Span, ids: TraceIds) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
            && let Some(span) = registry.span(id)
        {
            span.extensions_mut().insert(ids);
        }
    });
}

/// Captures correlation fields from spans as they are created and recorded.
pub struct CorrelationLayer;

impl<S> Layer<S> for CorrelationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanCorrelation::default();
        attrs.record(&mut CorrelationVisitor(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanCorrelation>() {
            values.record(&mut CorrelationVisitor(fields));
        }
    }
}

struct CorrelationVisitor<'a>(&'a mut SpanCorrelation);

impl CorrelationVisitor<'_> {
    fn slot(&mut self, field: &Field) -> Option<&mut Option<String>> {
        // The request span names the method and the route as OpenTelemetry
        // does: the same value, not a second copy of it on the span.
        let name = match field.name() {
            "http.request.method" => "method",
            "http.route" => "route",
            name => name,
        };
        let index = CORRELATION_FIELDS.iter().position(|known| *known == name)?;
        self.0.0.get_mut(index)
    }
}

impl Visit for CorrelationVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(slot) = self.slot(field)
            && !value.is_empty()
        {
            *slot = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(slot) = self.slot(field) {
            let text = format!("{value:?}");
            let text = text.trim_matches('"');
            if !text.is_empty() {
                *slot = Some(text.to_owned());
            }
        }
    }
}

/// `LOG_FORMAT=json`: writes one JSON line per event, and nothing else. (A
/// `tracing_subscriber::fmt` layer would also copy every span's fields as
/// text when each span opens and each time a field is recorded: for a
/// request's span, work thrown away on every request, about a seventh of
/// `/ping`'s CPU in bench/ping-flamegraph.svg. The lines take span fields
/// from [`CorrelationLayer`].)
pub struct JsonLines<W> {
    writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(writer: W) -> JsonLines<W> {
        JsonLines { writer }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(crate::timestamp::now()));
        line.insert("level".into(), Value::from(metadata.level().as_str()));
        line.insert("target".into(), Value::from(metadata.target()));
        line.extend(event_fields(ctx.event_scope(event), event));
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        // One write per line, as the fmt layer does; a log line that cannot
        // be written has nowhere else to go.
        let _ = self.writer.make_writer_for(metadata).write_all(text.as_bytes());
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
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<SpanCorrelation>() {
                for (name, value) in CORRELATION_FIELDS.iter().zip(&fields.0) {
                    if let Some(value) = value {
                        line.insert((*name).to_owned(), Value::from(value.as_str()));
                    }
                }
            }
            if let Some(ids) = extensions.get::<TraceIds>() {
                line.insert("trace_id".into(), Value::from(ids.trace_id.to_string()));
                line.insert("span_id".into(), Value::from(ids.span_id.to_string()));
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
