//! The shipped monitoring configuration: valid for the real tools, naming
//! only metrics the service exports, and a real Prometheus scraping Amani.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Engine, TestApp, TestDb, free_port, run_tool};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn prometheus_config_and_rules_pass_promtool_including_the_rule_unit_tests() {
    for args in [
        &["check", "config", "config/prometheus.yml"][..],
        &["check", "rules", "config/alert_rules.yml"][..],
        &["test", "rules", "config/alert_rules.test.yml"][..],
    ] {
        let (ok, output) = run_tool("promtool", args, None);
        assert!(ok, "promtool {args:?}:\n{output}");
    }
}

#[test]
fn alertmanager_config_passes_amtool() {
    let (ok, output) = run_tool("amtool", &["check-config", "config/alertmanager.yml"], None);
    assert!(ok, "{output}");
}

/// Every severity the rules use reaches a person (`error` once matched no
/// route and went to the null receiver).
#[test]
fn every_severity_the_rules_use_is_routed_to_a_receiver() {
    let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
    let severities: BTreeSet<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("severity: "))
        .collect();
    assert!(
        severities.contains("error") && severities.contains("critical"),
        "{severities:?}"
    );
    for severity in severities {
        let (ok, output) = run_tool(
            "amtool",
            &[
                "config",
                "routes",
                "test",
                "--config.file=config/alertmanager.yml",
                &format!("severity={severity}"),
            ],
            None,
        );
        assert!(ok, "{output}");
        let receiver = output
            .lines()
            .find(|l| !l.starts_with("Warning"))
            .unwrap_or_default()
            .trim();
        let expected = match severity {
            "critical" => "pagerduty-and-slack",
            "info" => "null",
            _ => "slack",
        };
        assert_eq!(receiver, expected, "severity {severity}");
    }
}

#[test]
fn every_alert_in_the_rules_has_a_unit_test() {
    let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
    let tests = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.test.yml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "no promtool test for {name}"
            );
        }
    }
}

/// Every metric name used by an expression in the rules or the dashboard.
pub fn metric_names_in_config() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
    let mut exprs = rule_expressions(&rules);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("config/grafana/dashboards/amani.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs.iter().flat_map(|e| metric_names(e)).collect()
}

/// The `expr:` values of a rules file, one-line or `|` blocks.
fn rule_expressions(rules: &str) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if value.trim() != "|" {
            exprs.push(value.trim().to_owned());
            continue;
        }
        let block = lines[i + 1..]
            .iter()
            .take_while(|next| next.trim().is_empty() || indent(next) > indent(line))
            .map(|next| next.trim())
            .collect::<Vec<_>>()
            .join(" ");
        exprs.push(block);
    }
    exprs
}

/// Metric names in one PromQL expression: identifiers outside strings,
/// selectors, ranges and grouping label lists, minus functions and keywords.
/// `up` is Prometheus' own; `a:b:c` names are our recording rules.
fn metric_names(expr: &str) -> Vec<String> {
    const NOT_METRICS: &[&str] = &[
        "sum",
        "rate",
        "irate",
        "increase",
        "histogram_quantile",
        "max",
        "min",
        "avg",
        "count",
        "and",
        "or",
        "unless",
        "time",
        "abs",
        "clamp_min",
        "clamp_max",
        "bool",
        "up",
        "offset",
        "topk",
        "vector",
    ];
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let mut names = Vec::new();
    let (mut braces, mut brackets, mut in_string) = (0, 0, false);
    let (mut after_grouping, mut in_label_list) = (false, false);
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => braces += 1,
            '}' => braces -= 1,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            _ if braces > 0 || brackets > 0 => {}
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => {
                word.push(c);
                continue;
            }
            _ => {}
        }
        if !word.is_empty() {
            let w = std::mem::take(&mut word);
            if GROUPING.contains(&w.as_str()) {
                after_grouping = true;
            } else if !in_label_list {
                names.push(w);
            }
        }
        match c {
            '(' if after_grouping => (in_label_list, after_grouping) = (true, false),
            ')' if in_label_list => in_label_list = false,
            c if !c.is_whitespace() => after_grouping = false,
            _ => {}
        }
    }
    names
        .into_iter()
        .filter(|w| !NOT_METRICS.contains(&w.as_str()) && !w.contains(':'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .collect()
}

#[test]
fn the_metric_name_extractor_finds_names_and_skips_labels_and_functions() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket{job="amani",le="0.5"}[5m]))) > 2 and on(instance) up == 1"#,
    );
    assert_eq!(names, vec!["http_request_duration_seconds_bucket"]);
}

#[test]
fn the_compose_stack_mounts_files_that_exist_and_prometheus_targets_its_services() {
    let compose = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    let mut mounts = 0;
    for line in compose.lines() {
        let line = line.trim().trim_start_matches("- ");
        if let Some(source) = line.strip_prefix("./") {
            let source = source.split(':').next().unwrap();
            // config/secrets holds operator-provided files; its README is committed.
            let path = Path::new(ROOT).join(source);
            assert!(
                path.exists(),
                "docker-compose.yml mounts ./{source}, which does not exist"
            );
            mounts += 1;
        }
    }
    assert!(mounts >= 5, "expected the config mounts, found {mounts}");
    for file in ["Dockerfile", "config/grafana/provisioning/datasources/prometheus.yml"] {
        assert!(Path::new(ROOT).join(file).exists(), "{file}");
    }
    let services: BTreeSet<&str> = compose
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    for service in [
        "amani",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
        "jaeger",
        "otel-collector",
        "loki",
    ] {
        assert!(
            services.contains(service),
            "compose service {service} missing: {services:?}"
        );
    }
    let prometheus = std::fs::read_to_string(Path::new(ROOT).join("config/prometheus.yml")).unwrap();
    for target in ["amani:8000", "alertmanager:9093"] {
        assert!(prometheus.contains(target), "prometheus.yml does not target {target}");
        let host = target.split(':').next().unwrap();
        assert!(services.contains(host));
    }
    // Amani sends spans and log records to the collector, which passes them
    // to services that exist, through pipelines that name what it defines.
    assert!(compose.contains("OTLP_ENDPOINT: http://otel-collector:4317"));
    assert!(compose.contains("OTLP_LOGS_ENABLED: \"true\""));
    assert!(compose.contains("ALERTMANAGER_URL: http://alertmanager:9093"));
    let collector = std::fs::read_to_string(Path::new(ROOT).join("config/otel-collector.yml")).unwrap();
    assert!(
        collector.contains("endpoint: 0.0.0.0:4317"),
        "the collector receives OTLP gRPC on 4317"
    );
    for (exporter, host) in [
        ("otlp/jaeger:", "jaeger:4317"),
        ("otlphttp/loki:", "http://loki:3100/otlp"),
    ] {
        assert!(
            collector.contains(exporter) && collector.contains(host),
            "{exporter} {host}"
        );
        let service = host.trim_start_matches("http://").split(':').next().unwrap();
        assert!(services.contains(service), "{service}");
    }
    for pipeline in [
        "exporters: [otlp/jaeger]",
        "exporters: [otlphttp/loki]",
        "receivers: [otlp]",
    ] {
        assert!(collector.contains(pipeline), "{pipeline}");
    }
    let datasources =
        std::fs::read_to_string(Path::new(ROOT).join("config/grafana/provisioning/datasources/loki.yml")).unwrap();
    assert!(datasources.contains("uid: loki") && datasources.contains("datasourceUid: jaeger"));
    let jaeger =
        std::fs::read_to_string(Path::new(ROOT).join("config/grafana/provisioning/datasources/prometheus.yml"))
            .unwrap();
    assert!(jaeger.contains("tracesToLogsV2") && jaeger.contains("datasourceUid: loki"));
}

/// A real Prometheus on loopback, killed when dropped.
pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with `rules` (a
    /// rules file's text) and optionally an Alertmanager.
    pub async fn start(target: &str, rules: Option<&str>, alertmanager: Option<&str>) -> Prometheus {
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: amani\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        if rules.is_some() {
            config.push_str("rule_files: [rules.yml]\n");
        }
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{am}\"]\n"
            ));
        }
        let files: Vec<(&str, &str)> = rules.map(|r| ("rules.yml", r)).into_iter().collect();
        Prometheus::launch(free_port(), &config, &files).await
    }

    /// The shipped `config/prometheus.yml` (its intervals) and rules, aimed
    /// at `target` and `alertmanager` instead of the compose services.
    pub async fn shipped(target: &str, alertmanager: &str) -> Prometheus {
        let port = free_port();
        let config = std::fs::read_to_string(Path::new(ROOT).join("config/prometheus.yml"))
            .unwrap()
            .replace("amani:8000", target)
            .replace("alertmanager:9093", alertmanager)
            .replace("localhost:9090", &format!("127.0.0.1:{port}"));
        let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
        Prometheus::launch(port, &config, &[("alert_rules.yml", &rules)]).await
    }

    /// Runs Prometheus on `port` with `config` and the files it names.
    async fn launch(port: u16, config: &str, files: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is needed by this test; run scripts/dev-services.sh");
        let url = format!("http://127.0.0.1:{port}");
        let prometheus = Prometheus { url, child, _dir: dir };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client
            .get(format!("{}/-/ready", prometheus.url))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    pub async fn api(&self, path_and_query: &str) -> serde_json::Value {
        reqwest::get(format!("{}{}", self.url, path_and_query))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls an instant query until it returns at least one series.
    pub async fn wait_for_series(&self, query: &str, limit: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let encoded = url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>();
            let body = self.api(&format!("/api/v1/query?query={encoded}")).await;
            if body["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                return body;
            }
            assert!(
                started.elapsed() < limit,
                "no series for {query} after {limit:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_amani_and_sees_requests_by_route_template() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let prometheus = Prometheus::start(&app.addr.to_string(), None, None).await;

    prometheus
        .wait_for_series(r#"up{job="amani"} == 1"#, Duration::from_secs(20))
        .await;
    let targets = prometheus.api("/api/v1/targets").await;
    assert_eq!(targets["data"]["activeTargets"][0]["health"], "up", "{targets}");

    for _ in 0..3 {
        app.get("/api/v1/ping").await;
    }
    let body = prometheus
        .wait_for_series(
            r#"http_requests_total{job="amani",endpoint="/api/v1/ping",method="GET",status="200"} >= 3"#,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(body["data"]["result"][0]["metric"]["endpoint"], "/api/v1/ping");
}

/// MONITORING.md promises that the dashboard never shows "no data": a real
/// Prometheus with the shipped rules, scraping a healthy Amani that has
/// served a few requests (no 5xx), has a value for every panel's expression
/// and every recording rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_and_recording_rule_has_data_for_a_healthy_service() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
    let prometheus = Prometheus::start(&app.addr.to_string(), Some(&rules), None).await;
    // Light, steady traffic (a 404 among it, never a 5xx) while it scrapes.
    let base = app.url("");
    let traffic = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for n in 0.. {
            let path = ["/api/v1/ping", "/api/v1/", "/api/v1/health", "/api/v1/no-such-thing"][n % 4];
            let _ = client.get(format!("{base}{path}")).send().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    prometheus
        .wait_for_series(
            r#"rate(http_requests_total{job="amani"}[5m]) > 0"#,
            Duration::from_secs(30),
        )
        .await;

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("config/grafana/dashboards/amani.json")).unwrap(),
    )
    .unwrap();
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    let recorded: Vec<String> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- record:"))
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(queries.len() > 20 && recorded.len() >= 14, "{queries:?} {recorded:?}");
    queries.extend(recorded);
    for query in queries {
        prometheus.wait_for_series(&query, Duration::from_secs(20)).await;
    }
    traffic.abort();
}

/// A slow bucket on the dashboard links to a trace: Prometheus, scraping
/// OpenMetrics with exemplar storage on, stores the request's trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_trace_id_exemplars_for_request_latency() {
    let collector = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let server = crate::server::Server::start(&[
        ("TRACING_ENABLED", "true"),
        ("OTLP_PROTOCOL", "http/protobuf"),
        ("OTLP_ENDPOINT", &collector.uri()),
    ]);
    server.wait_until_ready().await;
    let prometheus = Prometheus::start(&server.addr.to_string(), None, None).await;
    prometheus
        .wait_for_series(r#"up{job="amani"} == 1"#, Duration::from_secs(20))
        .await;

    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client
            .get(server.url("/api/v1/version"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let query =
        url::form_urlencoded::byte_serialize(br#"http_request_duration_seconds_bucket{endpoint="/api/v1/version"}"#)
            .collect::<String>();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = Instant::now();
    loop {
        let body = prometheus
            .api(&format!(
                "/api/v1/query_exemplars?query={query}&start={}&end={}",
                now - 60,
                now + 60
            ))
            .await;
        let found = body["data"].as_array().into_iter().flatten().any(|series| {
            series["exemplars"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["labels"]["trace_id"] == trace_id)
        });
        if found {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exemplar with the trace id: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The bodies a fake receiver got.
async fn received(server: &wiremock::MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// The events the fake PagerDuty received, in order.
async fn pagerduty_events(pagerduty: &wiremock::MockServer) -> Vec<serde_json::Value> {
    received(pagerduty)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect()
}

/// Waits up to `limit` for the fake PagerDuty's first event that is `wanted`.
async fn pagerduty_event(
    pagerduty: &wiremock::MockServer,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    crate::server::eventually(limit, what, async || {
        pagerduty_events(pagerduty).await.into_iter().find(|e| wanted(e))
    })
    .await
}

/// A real Alertmanager on loopback, killed when dropped.
pub struct Alertmanager {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub async fn start(config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let (ok, output) = run_tool(
            "amtool",
            &["check-config", dir.path().join("alertmanager.yml").to_str().unwrap()],
            None,
        );
        assert!(ok, "{output}");
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is needed by this test; run scripts/dev-services.sh");
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("http://{address}/-/ready"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Alertmanager {
            address,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped rules with every `for:` cut to 2 s, so a test sees them fire.
fn fast_rules() -> String {
    let rules = std::fs::read_to_string(Path::new(ROOT).join("config/alert_rules.yml")).unwrap();
    rules
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 2s", &line[..line.len() - line.trim_start().len()]),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The shipped Alertmanager configuration, routing and timers as shipped,
/// with its receivers pointed at local fakes.
fn shipped_alertmanager_config(slack: &str, pagerduty: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("config/alertmanager.yml"))
        .unwrap()
        .replace(
            "api_url_file: /etc/alertmanager/secrets/slack_webhook_url",
            &format!("api_url: {slack}/hook"),
        )
        .replace(
            "routing_key_file: /etc/alertmanager/secrets/pagerduty_routing_key",
            &format!("routing_key: test-routing-key\n        url: {pagerduty}/v2/enqueue"),
        )
}

/// The shipped Alertmanager routing (critical → PagerDuty and Slack,
/// warning → Slack), pointed at local fakes, with short timers.
fn alertmanager_config(slack: &str, pagerduty: &str) -> String {
    shipped_alertmanager_config(slack, pagerduty)
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_wait: 5s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s")
        .replace("group_interval: 30s", "group_interval: 1s")
}

/// A fake Slack (answers 200) and PagerDuty (202), and a real Alertmanager
/// with the shipped routing pointed at them (short timers).
async fn alerting_path() -> (wiremock::MockServer, wiremock::MockServer, Alertmanager) {
    alerting_path_with(alertmanager_config).await
}

async fn alerting_path_with(
    config: fn(&str, &str) -> String,
) -> (wiremock::MockServer, wiremock::MockServer, Alertmanager) {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slack = MockServer::start().await;
    let pagerduty = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&pagerduty)
        .await;
    let alertmanager = Alertmanager::start(&config(&slack.uri(), &pagerduty.uri())).await;
    (slack, pagerduty, alertmanager)
}

/// The whole path: a real condition on a running Amani → the shipped rules
/// in a real Prometheus → the shipped routing in a real Alertmanager → the
/// fake Slack and PagerDuty. A 4xx flood fires HighClientErrorRate (a
/// warning: Slack only); stopping Amani fires ApplicationDown (critical:
/// PagerDuty too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_conditions_reach_slack_and_pagerduty_through_prometheus_and_alertmanager() {
    let (slack, pagerduty, alertmanager) = alerting_path().await;

    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let prometheus = Prometheus::start(&app.addr.to_string(), Some(&fast_rules()), Some(&alertmanager.address)).await;
    prometheus
        .wait_for_series(r#"up{job="amani"} == 1"#, Duration::from_secs(20))
        .await;

    let flood_started = Instant::now();
    let slack_note = loop {
        for i in 0..20 {
            app.get(&format!("/no-such-page/{i}")).await;
        }
        if let Some(note) = received(&slack)
            .await
            .into_iter()
            .find(|b| b.contains("HighClientErrorRate"))
        {
            break note;
        }
        assert!(
            flood_started.elapsed() < Duration::from_secs(60),
            "no Slack notification"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let to_slack = flood_started.elapsed();
    assert!(slack_note.contains("warning"), "{slack_note}");
    assert!(
        !received(&pagerduty)
            .await
            .iter()
            .any(|b| b.contains("HighClientErrorRate")),
        "a warning does not page"
    );

    let stopped = Instant::now();
    app.shutdown().await.unwrap();
    let page = loop {
        if let Some(page) = received(&pagerduty)
            .await
            .into_iter()
            .find(|b| b.contains("ApplicationDown"))
        {
            break page;
        }
        assert!(stopped.elapsed() < Duration::from_secs(60), "no PagerDuty page");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let to_pagerduty = stopped.elapsed();
    let event: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(event["routing_key"], "test-routing-key");
    assert_eq!(event["event_action"], "trigger");
    println!(
        "condition → notification: HighClientErrorRate → Slack {to_slack:?}; ApplicationDown → PagerDuty {to_pagerduty:?}"
    );
}

/// GitHub's anchor for a Markdown heading: lowercase, punctuation dropped
/// (but `-` and `_`), spaces turned into `-`.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn files_under(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                files_under(&path, found);
            }
        } else if [".md", ".yml", ".yaml", ".json", ".rs"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            found.push(path);
        }
    }
}

/// Every `docs/runbooks/<file>.md#<anchor>` named anywhere (alert rules and
/// their tests, the service's own alerts, docs, the dashboard) opens a
/// heading that exists.
#[test]
fn every_runbook_link_opens_a_heading_that_exists() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    for dir in ["config", "src", "docs"] {
        files_under(&root.join(dir), &mut files);
    }
    files.extend(["README.md", "MONITORING.md"].map(|f| root.join(f)));
    let mut dead = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("docs/runbooks/") {
            let link: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.' | '#'))
                .collect();
            let Some((runbook, anchor)) = link.split_once('#') else {
                continue;
            };
            checked += 1;
            let anchors: BTreeSet<String> = std::fs::read_to_string(root.join(runbook.trim_end_matches('.')))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with('#'))
                .map(|l| heading_anchor(l.trim_start_matches('#')))
                .collect();
            if !anchors.contains(anchor.trim_end_matches('.')) {
                dead.push(format!("{}: {link}", file.strip_prefix(root).unwrap().display()));
            }
        }
    }
    assert!(checked >= 10, "found only {checked} runbook links");
    assert!(
        dead.is_empty(),
        "links to headings that do not exist:\n{}",
        dead.join("\n")
    );
}

/// One incident, one page: a real database outage seen by the service's
/// watchdog (within a second) and by Prometheus (the shipped rule,
/// `for:` cut to 2 s) reaches a real Alertmanager with the shipped routing
/// as two alerts of one group (the watchdog's under the rule's name,
/// `ALERTMANAGER_URL` set), so PagerDuty gets one dedup key: one incident,
/// opened once and resolved once. The service's direct PagerDuty channel,
/// configured too, stands down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_and_prometheus_open_one_incident_for_one_outage() {
    let (_slack, pagerduty, alertmanager) = alerting_path().await;

    let db = TestDb::create(Engine::Postgres).await;
    let proxy = crate::proxy::TcpProxy::start(db.server.unwrap()).await;
    let alertmanager_url = format!("http://{}", alertmanager.address);
    let pagerduty_url = format!("{}/v2/enqueue", pagerduty.uri());
    let app = TestApp::spawn_ready(
        &db.url_via(&proxy),
        &[
            ("ALERTMANAGER_URL", alertmanager_url.as_str()),
            ("PAGERDUTY_API_KEY", "direct-key"),
            ("PAGERDUTY_EVENTS_URL", pagerduty_url.as_str()),
            ("WATCHDOG_INTERVAL_SECONDS", "1"),
        ],
    )
    .await;
    let prometheus = Prometheus::start(&app.addr.to_string(), Some(&fast_rules()), Some(&alertmanager.address)).await;
    prometheus
        .wait_for_series(r#"amani_database_up{job="amani"} == 1"#, Duration::from_secs(20))
        .await;

    proxy.cut();
    let groups_url = format!("{alertmanager_url}/api/v2/alerts/groups");
    crate::server::eventually(Duration::from_secs(40), "both alerts in one group", async || {
        let groups: serde_json::Value = reqwest::get(&groups_url).await.ok()?.json().await.ok()?;
        groups.as_array()?.iter().find(|g| {
            g["labels"]["alertname"] == "DatabaseConnectionIssues"
                && g["alerts"].as_array().is_some_and(|alerts| {
                    alerts.len() == 2 && alerts.iter().any(|a| a["labels"]["source"] == "amani-watchdog")
                })
        })?;
        Some(())
    })
    .await;
    pagerduty_event(&pagerduty, Duration::from_secs(20), "a page", |e| {
        e["event_action"] == "trigger"
    })
    .await;
    proxy.restore();
    pagerduty_event(&pagerduty, Duration::from_secs(60), "the resolve", |e| {
        e["event_action"] == "resolve"
    })
    .await;
    let events = pagerduty_events(&pagerduty).await;
    let keys: BTreeSet<&str> = events.iter().map(|e| e["dedup_key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 1, "one incident: {events:#?}");
    assert!(
        events.iter().all(|e| e["routing_key"] == "test-routing-key"),
        "every page came through Alertmanager, none directly: {events:#?}"
    );
    let resolves = events.iter().filter(|e| e["event_action"] == "resolve").count();
    assert_eq!(resolves, 1, "resolved once: {events:#?}");
}

/// Time to page and time to resolve with the shipped settings (scrape and
/// evaluation every 10 s, `for: 30s`, Alertmanager's group_wait 5 s and
/// group_interval 30 s for pages), nothing shortened: a real Prometheus and
/// Alertmanager, the service behind a proxy that refuses connections like
/// a stopped process (ApplicationDown), then its PostgreSQL behind another
/// (DatabaseConnectionIssues). Each must reach the fake PagerDuty within
/// 60 s of the outage and resolve within 60 s of recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_shipped_settings_an_outage_pages_within_60_s_and_resolves_within_60_s() {
    let (_slack, pagerduty, alertmanager) = alerting_path_with(shipped_alertmanager_config).await;
    let db = TestDb::create(Engine::Postgres).await;
    let database = crate::proxy::TcpProxy::start(db.server.unwrap()).await;
    let app = TestApp::spawn_ready(&db.url_via(&database), &[]).await;
    let service = crate::proxy::TcpProxy::start(app.addr).await;
    let prometheus = Prometheus::shipped(&service.addr().to_string(), &alertmanager.address).await;
    prometheus
        .wait_for_series(r#"amani_database_up{job="amani"} == 1"#, Duration::from_secs(40))
        .await;
    let limit = Duration::from_secs(60);
    for (alertname, outage) in [("ApplicationDown", &service), ("DatabaseConnectionIssues", &database)] {
        let about = |e: &serde_json::Value| {
            e["payload"]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{alertname}:")))
        };
        let down = Instant::now();
        outage.cut();
        let page = pagerduty_event(&pagerduty, limit + Duration::from_secs(30), "the page", |e| {
            e["event_action"] == "trigger" && about(e)
        })
        .await;
        let to_page = down.elapsed();
        outage.restore();
        let up = Instant::now();
        let key = page["dedup_key"].clone();
        pagerduty_event(&pagerduty, limit + Duration::from_secs(30), "the resolve", |e| {
            e["event_action"] == "resolve" && e["dedup_key"] == key
        })
        .await;
        let to_resolve = up.elapsed();
        println!("{alertname}: paged {to_page:.1?} after the outage began, resolved {to_resolve:.1?} after it ended");
        assert!(to_page <= limit, "{alertname} paged after {to_page:?}");
        assert!(to_resolve <= limit, "{alertname} resolved after {to_resolve:?}");
    }
}
