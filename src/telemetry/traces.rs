//! OpenTelemetry traces: the tracer provider behind `tracing`, W3C trace
//! context in and out, and the exporters (OTLP over gRPC or HTTP/protobuf,
//! or the console).
//!
//! The provider is installed even when `TRACING_ENABLED=false`, without an
//! exporter: requests still get trace ids (in logs, exemplars and the
//! `traceparent` sent to the payment gateway) and an incoming `traceparent`
//! is still continued, so correlation never depends on an exporter.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{Config, OtlpProtocol, TracingExporter};

#[derive(Debug, thiserror::Error)]
#[error("tracing exporter: {0}")]
pub struct TracingError(String);

impl TracingError {
    pub fn new(message: String) -> TracingError {
        TracingError(message)
    }
}

/// Builds the tracer provider for this process.
///
/// Must run inside the Tokio runtime: the gRPC exporter's channel is bound
/// to it.
pub fn provider(config: &Config) -> Result<SdkTracerProvider, TracingError> {
    let builder = SdkTracerProvider::builder().with_resource(resource(config));
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.tracing.sample_ratio)));
    let builder = builder.with_sampler(sampler);
    if !config.tracing.enabled {
        return Ok(builder.build());
    }
    let builder = match &config.tracing.exporter {
        TracingExporter::Console => builder.with_batch_exporter(opentelemetry_stdout::SpanExporter::default()),
        TracingExporter::Otlp => match config.tracing.protocol {
            OtlpProtocol::Grpc => builder.with_batch_exporter(grpc_exporter(config)?),
            OtlpProtocol::HttpProtobuf => builder.with_batch_exporter(http_exporter(config)?),
        },
        // Refused at start in production (see config.rs); elsewhere
        // `init` warns, and spans are not exported.
        TracingExporter::Unknown(_) => builder,
    };
    Ok(builder.build())
}

/// Who is sending: the same resource on spans and log records.
pub(super) fn resource(config: &Config) -> Resource {
    Resource::builder()
        .with_service_name(config.app_name.to_ascii_lowercase())
        .with_attributes([
            KeyValue::new("service.version", config.app_version.clone()),
            KeyValue::new("deployment.environment", config.environment.as_str()),
            KeyValue::new("deployment.environment.name", config.environment.as_str()),
        ])
        .build()
}

fn grpc_exporter(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, TracingError> {
    grpc(opentelemetry_otlp::SpanExporter::builder().with_tonic(), config)?
        .build()
        .map_err(|e| TracingError(e.to_string()))
}

/// An OTLP gRPC exporter's settings (endpoint, headers as metadata, TLS for
/// https), shared by spans and log records.
pub(super) fn grpc<B: WithTonicConfig + WithExportConfig>(builder: B, config: &Config) -> Result<B, TracingError> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in &config.tracing.headers {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes())
            .map_err(|_| TracingError(format!("OTLP_HEADERS: invalid header name {key:?}")))?;
        let value = value
            .parse()
            .map_err(|_| TracingError("OTLP_HEADERS: invalid header value".into()))?;
        metadata.insert(key, value);
    }
    let mut builder = builder
        .with_endpoint(config.tracing.endpoint.clone())
        .with_timeout(Duration::from_secs(10))
        .with_metadata(metadata);
    if config.tracing.endpoint.starts_with("https://") {
        builder = builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
    }
    Ok(builder)
}

fn http_exporter(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, TracingError> {
    http(
        opentelemetry_otlp::SpanExporter::builder().with_http(),
        config,
        "/v1/traces",
    )
    .build()
    .map_err(|e| TracingError(e.to_string()))
}

/// An OTLP HTTP/protobuf exporter's settings: the collector's `path` for the
/// signal, and the headers.
pub(super) fn http<B: WithHttpConfig + WithExportConfig>(builder: B, config: &Config, path: &str) -> B {
    let endpoint = config.tracing.endpoint.trim_end_matches('/');
    let endpoint = if endpoint.ends_with(path) {
        endpoint.to_owned()
    } else {
        format!("{endpoint}{path}")
    };
    builder
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .with_headers(config.tracing.headers.iter().cloned().collect::<HashMap<_, _>>())
}

pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

pub fn tracer(provider: &SdkTracerProvider) -> opentelemetry_sdk::trace::Tracer {
    provider.tracer("amani")
}

/// Continues the caller's trace: the `traceparent`/`tracestate` of an
/// incoming request become the parent of `span`.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes the current trace context (`traceparent`, `tracestate`) into the
/// headers of an outbound request.
pub fn inject_trace(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    let propagator = TraceContextPropagator::new();
    propagator.inject_context(&context, &mut HeaderInjector(headers));
}

/// Links `span` to the span a stored `traceparent` names: a webhook
/// delivery, made later by a worker, points at the request that caused its
/// event (a link, not a parent: the request's trace has long ended).
pub fn link_to(span: &tracing::Span, traceparent: &str) {
    let mut headers = http::HeaderMap::new();
    let Ok(value) = http::HeaderValue::from_str(traceparent) else {
        return;
    };
    headers.insert("traceparent", value);
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.add_link(span_context);
    }
}

/// The OpenTelemetry span behind a request's `tracing` span, started (to
/// know its ids) and kept by the request: its ids are read and it is
/// renamed through this, without looking the span up again.
pub struct RequestSpan(Context);

/// A trace's ids, as numbers: formatted as hex only where one is written
/// (a log line, an exemplar, an error report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: opentelemetry::trace::TraceId,
    pub span_id: opentelemetry::trace::SpanId,
    /// Whether the trace is sampled (exported).
    pub sampled: bool,
}

impl RequestSpan {
    pub fn of(span: &tracing::Span) -> RequestSpan {
        RequestSpan(span.context())
    }

    /// None when no tracer is installed.
    pub fn ids(&self) -> Option<TraceIds> {
        let otel_span = self.0.span();
        let span_context = otel_span.span_context();
        span_context.is_valid().then(|| TraceIds {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            sampled: span_context.is_sampled(),
        })
    }

    /// Renames the span (tracing-opentelemetry only honours `otel.name`
    /// before the span is started, and the request span is started early,
    /// to know its trace id).
    pub fn rename(&self, name: String) {
        self.0.span().update_name(name);
    }
}
