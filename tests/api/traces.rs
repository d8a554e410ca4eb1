//! OpenTelemetry export, checked on what reached a local OTLP receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::helpers::free_port;
use crate::server::{Server, eventually};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        kv.value.as_ref().and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        })
    })
}

/// Spans received, with their resource's `service.name`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn record(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_grpc_receiver() -> (u16, Received) {
    let received = Received::default();
    let port = free_port();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(([127, 0, 0, 1], port).into()),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    (port, received)
}

/// Sends a health check carrying the caller's `traceparent` and returns the
/// server span and the spans received for that trace.
async fn traced_health_check(server: &Server, received: &Received) -> (Span, Vec<Span>) {
    server.wait_until_ready().await;
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/health"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "trace-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually(Duration::from_secs(20), "the server span", async || {
        let spans: Vec<Span> = received
            .spans()
            .into_iter()
            .map(|(service, span)| {
                assert_eq!(service, "amani");
                span
            })
            .filter(|s| hex(&s.trace_id) == CALLER_TRACE)
            .collect();
        let server_span = spans.iter().find(|s| s.name == "GET /api/v1/health")?.clone();
        spans
            .iter()
            .any(|s| s.name.starts_with("health."))
            .then_some((server_span, spans))
    })
    .await
}

fn assert_request_trace(server_span: &Span, spans: &[Span]) {
    assert_eq!(
        hex(&server_span.parent_span_id),
        CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(attribute(server_span, "http.route").as_deref(), Some("/api/v1/health"));
    assert_eq!(attribute(server_span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attribute(server_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attribute(server_span, "request_id").as_deref(), Some("trace-test-1"));
    for copy in ["method", "route", "status"] {
        assert_eq!(attribute(server_span, copy), None, "{copy} repeats an http.* attribute");
    }
    // The span's own ids are its identity, not attributes (log lines get
    // them from the span's extensions).
    for copy in ["trace_id", "span_id"] {
        assert_eq!(attribute(server_span, copy), None, "{copy} repeats the span's own id");
    }
    // Not exported, not computed per request: the code location, the
    // thread, busy and idle time.
    for span in spans {
        let extra: Vec<&str> = span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .filter(|key| key.starts_with("code.") || key.starts_with("thread.") || key.ends_with("_ns"))
            .collect();
        assert!(extra.is_empty(), "span {} carries {extra:?}", span.name);
    }
    let db_span = spans
        .iter()
        .find(|s| s.name == "health.ping")
        .expect("a span per database statement");
    assert_eq!(
        db_span.parent_span_id, server_span.span_id,
        "database spans are children of the request"
    );
    assert_eq!(attribute(db_span, "db.system").as_deref(), Some("sqlite"));
    assert_eq!(attribute(db_span, "db.operation").as_deref(), Some("health.ping"));
    assert!(
        db_span.attributes.iter().all(|kv| !kv.key.contains("statement")),
        "no SQL text or parameters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_grpc_continuing_the_callers_trace() {
    let (port, received) = start_grpc_receiver().await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start(&[
        ("TRACING_ENABLED", "true"),
        ("TRACING_EXPORTER", "otlp"),
        ("OTLP_PROTOCOL", "grpc"),
        ("OTLP_ENDPOINT", &endpoint),
    ]);
    let (server_span, spans) = traced_health_check(&server, &received).await;
    assert_request_trace(&server_span, &spans);

    // Spans still in the batch when SIGTERM arrives are flushed, not lost.
    let response = reqwest::get(server.url("/api/v1/version")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        tokio::task::spawn_blocking(move || server.stop()).await.unwrap(),
        Some(0)
    );
    let names: Vec<String> = received.spans().into_iter().map(|(_, s)| s.name).collect();
    assert!(names.iter().any(|n| n == "GET /api/v1/version"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_http_protobuf_with_the_configured_headers() {
    let collector = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/traces"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let server = Server::start(&[
        ("TRACING_ENABLED", "true"),
        ("OTLP_PROTOCOL", "http/protobuf"),
        ("OTLP_ENDPOINT", &collector.uri()),
        ("OTLP_HEADERS", "x-api-key=collector-key,x-tenant=amani"),
    ]);
    let received = Received::default();
    server.wait_until_ready().await;
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/health"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "trace-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (server_span, spans) = eventually(Duration::from_secs(20), "spans over HTTP", async || {
        for request in collector.received_requests().await.unwrap_or_default() {
            assert_eq!(request.headers.get("x-api-key").unwrap(), "collector-key");
            assert_eq!(request.headers.get("x-tenant").unwrap(), "amani");
            received.record(ExportTraceServiceRequest::decode(request.body.as_slice()).expect("OTLP protobuf"));
        }
        let spans: Vec<Span> = received
            .spans()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| hex(&s.trace_id) == CALLER_TRACE)
            .collect();
        let server_span = spans.iter().find(|s| s.name == "GET /api/v1/health")?.clone();
        Some((server_span, spans))
    })
    .await;
    assert_request_trace(&server_span, &spans);
}

#[test]
fn the_console_exporter_prints_spans() {
    let server = Server::start(&[("TRACING_ENABLED", "true"), ("TRACING_EXPORTER", "console")]);
    let status = reqwest::blocking::get(server.url("/api/v1/ping")).map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(200));
    let output = {
        let started = std::time::Instant::now();
        loop {
            let output = server.output().join("\n");
            if output.contains("GET /api/v1/ping") || started.elapsed() > Duration::from_secs(15) {
                break output;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(output.contains("GET /api/v1/ping"), "{output}");
}

#[test]
fn an_unknown_exporter_fails_start_up_in_production_and_only_warns_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amani"))
        .env_clear()
        .current_dir(dir.path())
        .envs([
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY", "0123456789abcdef0123456789abcdef-prod"),
            ("TRACING_ENABLED", "true"),
            ("TRACING_EXPORTER", "zipkin"),
        ])
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TRACING_EXPORTER"));

    let server = Server::start(&[("TRACING_ENABLED", "true"), ("TRACING_EXPORTER", "zipkin")]);
    let logs = server.logs();
    assert!(
        logs.iter().any(|l| l["level"] == "WARN" && l["exporter"] == "zipkin"),
        "{logs:#?}"
    );
}

/// A webhook delivery is its own trace, linked to the request that caused
/// its event; the receiver gets the delivery's `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivery_links_to_the_request_that_caused_its_event() {
    use serde_json::json;
    let (port, received) = start_grpc_receiver().await;
    let hook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let db = crate::helpers::TestDb::create(crate::helpers::Engine::Sqlite).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TRACING_ENABLED", "true"),
        ("OTLP_PROTOCOL", "grpc"),
        ("OTLP_ENDPOINT", &endpoint),
    ]);
    server.wait_until_ready().await;
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_amani"))
        .args(["admin", "create", "--email", "admin@trace.example"])
        .env("DATABASE_URL", &db.url)
        .env("AMANI_ADMIN_PASSWORD", crate::helpers::PASSWORD)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let client = reqwest::Client::new();
    let token = async |email: &str| -> String {
        let login: serde_json::Value = client
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().unwrap().to_owned()
    };
    let admin = token("admin@trace.example").await;
    let response = client
        .post(server.url("/api/v1/admin/webhook-endpoints"))
        .bearer_auth(&admin)
        .json(&json!({"url": hook.uri(), "event_types": ["project.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let mut seller_id = String::new();
    for (email, role) in [
        ("buyer@trace.example", "client"),
        ("seller@trace.example", "freelancer"),
    ] {
        let user: serde_json::Value = client
            .post(server.url("/api/v1/auth/signup"))
            .json(&json!({"email": email, "password": crate::helpers::PASSWORD, "full_name": "T", "role": role}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seller_id = user["id"].as_str().unwrap().to_owned();
    }
    let buyer = token("buyer@trace.example").await;
    let response = client
        .post(server.url("/api/v1/projects"))
        .bearer_auth(&buyer)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"title": "Traced", "seller_id": seller_id, "currency": "NGN",
            "milestones": [{"title": "All", "amount": 1000}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let delivered = eventually(Duration::from_secs(20), "the webhook", async || {
        hook.received_requests().await.unwrap_or_default().into_iter().next()
    })
    .await;
    let traceparent = delivered
        .headers
        .get("traceparent")
        .expect("the delivery's traceparent");
    let delivery_trace = traceparent.to_str().unwrap().split('-').nth(1).unwrap().to_owned();
    assert_ne!(delivery_trace, CALLER_TRACE, "a trace of its own");
    let span = eventually(Duration::from_secs(20), "the webhook.deliver span", async || {
        received
            .spans()
            .into_iter()
            .map(|(_, span)| span)
            .find(|s| s.name == "webhook.deliver")
    })
    .await;
    assert_eq!(hex(&span.trace_id), delivery_trace);
    assert_eq!(attribute(&span, "outcome").as_deref(), Some("delivered"));
    assert_eq!(attribute(&span, "event_type").as_deref(), Some("project.created"));
    let spans: Vec<Span> = received.spans().into_iter().map(|(_, span)| span).collect();
    let request_span = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/projects")
        .expect("the request's span");
    assert_eq!(hex(&request_span.trace_id), CALLER_TRACE);
    // The link names the span the event was written in: the business step
    // `project.create`, a child of the request.
    let [link] = span.links.as_slice() else {
        panic!("one link: {:?}", span.links)
    };
    assert_eq!(hex(&link.trace_id), CALLER_TRACE);
    let linked = spans
        .iter()
        .find(|s| s.span_id == link.span_id)
        .expect("the linked span was exported");
    assert_eq!(linked.name, "project.create");
    assert_eq!(linked.parent_span_id, request_span.span_id);
}

/// Log records received over OTLP gRPC (spans are accepted and dropped).
#[derive(Clone, Default)]
struct ReceivedLogs(Arc<Mutex<Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService for ReceivedLogs {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse>,
        tonic::Status,
    > {
        let mut records = self.0.lock().unwrap();
        for resource in request.into_inner().resource_logs {
            for scope in resource.scope_logs {
                records.extend(scope.log_records);
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

fn log_attribute(record: &opentelemetry_proto::tonic::logs::v1::LogRecord, key: &str) -> Option<String> {
    record.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        kv.value.as_ref().and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
    })
}

/// With `OTLP_LOGS_ENABLED`, the log records of one request reach the
/// collector with its request id, trace id and span id as attributes (and
/// OTLP's own trace context), so a trace view can list them.
#[tokio::test]
async fn log_records_are_exported_over_otlp_with_the_requests_ids() {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer;
    let logs = ReceivedLogs::default();
    let port = free_port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Received::default()))
            .add_service(LogsServiceServer::new(logs.clone()))
            .serve(([127, 0, 0, 1], port).into()),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start(&[
        ("TRACING_ENABLED", "true"),
        ("OTLP_LOGS_ENABLED", "true"),
        ("OTLP_PROTOCOL", "grpc"),
        ("OTLP_ENDPOINT", &endpoint),
    ]);
    server.wait_until_ready().await;
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/no-such-page"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "logs-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let record = eventually(Duration::from_secs(20), "the request's log record", async || {
        logs.0
            .lock()
            .unwrap()
            .iter()
            .find(|r| log_attribute(r, "request_id").as_deref() == Some("logs-test-1"))
            .cloned()
    })
    .await;
    assert_eq!(log_attribute(&record, "trace_id").as_deref(), Some(CALLER_TRACE));
    let span_id = log_attribute(&record, "span_id").unwrap_or_default();
    assert_eq!(span_id.len(), 16, "{record:?}");
    assert_ne!(span_id, CALLER_SPAN, "the service's own span, a child of the caller's");
    assert_eq!(hex(&record.trace_id), CALLER_TRACE, "OTLP's trace context too");
    assert!(!record.severity_text.is_empty());
    // The same line is still on stdout as JSON.
    let json_line = server
        .logs()
        .into_iter()
        .any(|l| l["request_id"] == "logs-test-1" && l["trace_id"] == CALLER_TRACE);
    assert!(json_line);
}
