//! `/metrics`: names and labels the seed's dashboards rely on, bounded
//! cardinality, authentication, and a valid exposition.

use std::collections::BTreeSet;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, TestDb, run_tool};

/// The metric families SPEC.md promises, as they appear in the exposition.
pub const SPEC_METRICS: &[&str] = &[
    "amani_app_info",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_requests_in_progress",
    "db_connections_active",
    "db_connections_idle",
    "db_connections_max",
    "db_query_duration_seconds_bucket",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

pub async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Sample lines (not comments) of the exposition whose name is `name`.
/// Scrapes until the exposition has the sample line `line` (the gauges of
/// stored state are refreshed every 5 s in the background), and returns it.
pub async fn scrape_until(app: &TestApp, line: &str) -> String {
    crate::server::eventually(std::time::Duration::from_secs(12), line, async || {
        let metrics = scrape(app).await;
        metrics.lines().any(|l| l == line).then_some(metrics)
    })
    .await
}

pub fn samples<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .collect()
}

both_engines!(
    metrics_expose_the_seed_names_with_route_templates_as_endpoints,
    unknown_paths_and_invented_methods_do_not_create_series,
);

async fn metrics_expose_the_seed_names_with_route_templates_as_endpoints(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    app.get("/api/v1/health").await;
    app.get("/docs/swagger-ui.css").await;
    app.get("/api/v1/nope").await;
    app.client.delete(app.url("/api/v1/ping")).send().await.unwrap();

    let text = scrape(&app).await;
    for name in SPEC_METRICS {
        assert!(
            !samples(&text, name).is_empty(),
            "{name} missing from /metrics:\n{text}"
        );
    }
    // The gateway calls' series exist at zero for the configured provider
    // (the sandbox here), not for the one this instance never calls.
    assert!(
        text.contains(r#"amani_gateway_request_duration_seconds_count{provider="sandbox",operation="checkout"} 0"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"amani_gateway_requests_total{provider="fincra""#),
        "{text}"
    );
    assert!(!text.contains(r#"amani_gateway_request_duration_seconds_count{provider="fincra""#));
    let info = samples(&text, "amani_app_info")[0];
    for label in ["version=\"", "environment=\"test\"", "app_name=\"Amani\"", "git_sha=\""] {
        assert!(info.contains(label), "{info}");
    }
    let requests = samples(&text, "http_requests_total");
    let has = |needle: &str| requests.iter().any(|l| l.contains(needle));
    assert!(
        has(r#"method="GET",endpoint="/api/v1/health",status="200""#),
        "{requests:#?}"
    );
    assert!(
        has(r#"endpoint="/docs/{*rest}""#),
        "route template, not the raw path: {requests:#?}"
    );
    assert!(has(r#"endpoint="unmatched",status="404""#), "{requests:#?}");
    assert!(
        has(r#"method="DELETE",endpoint="/api/v1/ping",status="405""#),
        "{requests:#?}"
    );
    assert!(!text.contains("swagger-ui.css"), "a raw path leaked into a label");
    // The scrape itself is not counted.
    assert!(!has(r#"endpoint="/metrics""#));
    // Errors are counted by problem type.
    let errors = samples(&text, "errors_total");
    assert!(
        errors
            .iter()
            .any(|l| l.contains(r#"error_type="not-found",endpoint="unmatched""#)),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|l| l.contains(r#"error_type="method-not-allowed""#)),
        "{errors:#?}"
    );
    // Every statement of the health check was timed by operation.
    let queries = samples(&text, "db_query_duration_seconds_count");
    assert!(
        queries.iter().any(|l| l.contains(r#"operation="health.ping""#)),
        "{queries:#?}"
    );
    assert!(samples(&text, "amani_database_up")[0].ends_with(" 1"));
}

async fn unknown_paths_and_invented_methods_do_not_create_series(engine: Engine) {
    let db = TestDb::create(engine).await;
    // The webhook worker's and the scheduler's first statements would add
    // their (fixed) `db_query_duration_seconds` series mid-test: off, as
    // requests are what this test is about.
    let app = TestApp::spawn_ready(
        &db.url,
        &[("WEBHOOK_DELIVERY_ENABLED", "false"), ("SCHEDULER_ENABLED", "false")],
    )
    .await;
    app.get("/warm-up").await;
    // Nor are the stored-state gauges' statements, whose first round can
    // come after readiness (it is retried a second after a database that
    // was not migrated yet): wait for the whole round, every statement of
    // it (one appearing says the others are under way, not done).
    crate::server::eventually(
        std::time::Duration::from_secs(12),
        "the gauges' first refresh",
        async || {
            let text = scrape(&app).await;
            crate::speed::GAUGE_REFRESH_OPERATIONS
                .iter()
                .all(|op| text.contains(&format!(r#"operation="{op}""#)))
                .then_some(())
        },
    )
    .await;
    let before = scrape(&app).await.lines().filter(|l| !l.starts_with('#')).count();

    for i in 0..1000 {
        let path = format!("/{}/{i}/{}", uuid::Uuid::new_v4(), "x".repeat(i % 7));
        let response = app.get(&path).await;
        assert_eq!(response.status(), 404);
    }
    for method in ["BREW", "PROPFIND", "XYZZY"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, app.url("/api/v1/ping"))
            .send()
            .await
            .unwrap();
    }
    let text = scrape(&app).await;
    let after = text.lines().filter(|l| !l.starts_with('#')).count();
    // The invented methods share one `other` label on the ping route: one
    // request series, one latency histogram and one error series at most.
    let allowed_growth = 1 + (super::metrics::HTTP_BUCKET_COUNT + 3) + 1 + 1;
    assert!(after <= before + allowed_growth, "series grew from {before} to {after}");
    let unmatched = samples(&text, "http_requests_total")
        .into_iter()
        .find(|l| l.contains(r#"endpoint="unmatched""#))
        .expect("unmatched series");
    let count: f64 = unmatched.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1001.0, "{unmatched}");
    assert!(text.contains(r#"method="other""#));
}

/// Buckets of `http_request_duration_seconds` (the `+Inf` bucket included).
pub const HTTP_BUCKET_COUNT: usize = amani::telemetry::metrics::HTTP_BUCKETS.len() + 1;

#[tokio::test]
async fn a_metrics_token_is_required_when_configured() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn_ready(&db.url, &[("METRICS_TOKEN", "scrape-secret-0123")]).await;

    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret-0124")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("http_requests_total"));
}

/// METRICS_ADDR: `/metrics` on a listener of its own (an internal
/// interface in production), and no longer on the public one.
#[tokio::test]
async fn metrics_addr_serves_metrics_on_their_own_listener_only() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn_ready(&db.url, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let own = app.metrics_addr.expect("a metrics listener");
    assert_ne!(own, app.addr);
    app.get("/api/v1/ping").await;

    let public = app.get("/metrics").await;
    assert_eq!(public.status(), 404);
    assert!(public.text().await.unwrap().contains("METRICS_ADDR"));

    let scrape = app.client.get(format!("http://{own}/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    let body = scrape.text().await.unwrap();
    assert!(body.contains("http_requests_total{"), "{body}");
    assert!(
        body.contains("endpoint=\"/api/v1/ping\""),
        "the public listener's traffic is counted"
    );
    // Only /metrics there: the API is not reachable through it.
    let api = app
        .client
        .get(format!("http://{own}/api/v1/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);

    // The token still applies on the metrics listener when both are set.
    let both = TestApp::spawn_ready(
        &db.url,
        &[("METRICS_ADDR", "127.0.0.1:0"), ("METRICS_TOKEN", "scrape-secret-0123")],
    )
    .await;
    let own = both.metrics_addr.expect("a metrics listener");
    let anonymous = both.client.get(format!("http://{own}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn_ready(&db.url, &[("METRICS_ENABLED", "false")]).await;
    app.get("/api/v1/ping").await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(
        app.state
            .metrics
            .render_text()
            .matches("endpoint=\"/api/v1/ping\"")
            .count(),
        0
    );
}

#[tokio::test]
async fn the_exposition_passes_promtool_and_openmetrics_is_served_when_asked() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    app.get("/api/v1/health").await;
    app.get("/nope").await;

    let response = app.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let (ok, output) = run_tool("promtool", &["check", "metrics"], Some(text.as_bytes()));
    assert!(ok, "promtool check metrics:\n{output}");

    let openmetrics = app
        .client
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(
        openmetrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(openmetrics.text().await.unwrap().trim_end().ends_with("# EOF"));
}

#[test]
fn every_metric_named_by_the_dashboard_and_the_rules_is_exported() {
    let names: BTreeSet<String> = super::monitoring::metric_names_in_config();
    assert!(names.len() > 15, "{names:?}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = TestDb::create(Engine::Sqlite).await;
        let app = TestApp::spawn(&db).await;
        app.get("/api/v1/health").await;
        app.get("/no-such-route").await; // errors_total has no series before the first error
        let text = scrape(&app).await;
        // A family is exported when its HELP line is there, even before its
        // first sample (a counter no request has touched yet).
        let exported: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                !exported.contains(name.as_str()) && !exported.contains(base)
            })
            .collect();
        assert!(missing.is_empty(), "named in config/ but not exported: {missing:?}");
    });
}

/// Rejections by outer layers are problem+json and counted: a body over
/// MAX_BODY_BYTES (413) and a request over REQUEST_TIMEOUT_SECONDS (503,
/// made slow by a delaying proxy in front of PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_timeouts_are_problems_and_are_counted() {
    let db = TestDb::create(Engine::Postgres).await;
    let proxy = crate::helpers::TcpProxy::start(db.server.unwrap()).await;
    let app = TestApp::spawn_ready(
        &db.url_via(&proxy),
        &[("MAX_BODY_BYTES", "2048"), ("REQUEST_TIMEOUT_SECONDS", "1")],
    )
    .await;

    let big =
        serde_json::json!({"email": "a@example.com", "password": "x".repeat(4096), "full_name": "A", "role": "client"});
    let response = app.post_json("/api/v1/auth/signup", &big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    proxy.set_delay(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let response = app.get("/api/v1/health").await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "abandoned at the timeout"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("too long"), "{problem}");
    proxy.set_delay(std::time::Duration::ZERO);

    let text = scrape(&app).await;
    let requests = samples(&text, "http_requests_total");
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"endpoint="/api/v1/auth/signup",status="413""#)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"endpoint="/api/v1/health",status="503""#)),
        "{requests:#?}"
    );
}
