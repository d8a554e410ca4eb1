//! Alerting, checked on what local fake Slack and PagerDuty servers received.

use std::time::{Duration, Instant};

use amani::alerts::{Alert, Severity};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Engine, TcpProxy, TestApp, TestDb};
use crate::server::eventually;

struct Fakes {
    slack: MockServer,
    pagerduty: MockServer,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            slack: MockServer::start().await,
            pagerduty: MockServer::start().await,
        }
    }

    async fn answer(&self, slack: ResponseTemplate, pagerduty: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(slack)
            .mount(&self.slack)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/enqueue"))
            .respond_with(pagerduty)
            .mount(&self.pagerduty)
            .await;
    }

    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("SLACK_WEBHOOK_URL".into(), format!("{}/hook", self.slack.uri())),
            ("PAGERDUTY_API_KEY".into(), "routing-key-123".into()),
            (
                "PAGERDUTY_EVENTS_URL".into(),
                format!("{}/v2/enqueue", self.pagerduty.uri()),
            ),
            ("ALERT_RETRY_BASE_MILLISECONDS".into(), "20".into()),
        ]
    }

    async fn slack_messages(&self) -> Vec<Value> {
        received(&self.slack).await
    }

    async fn pagerduty_events(&self) -> Vec<Value> {
        received(&self.pagerduty).await
    }
}

async fn received(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

async fn app_with(db: &TestDb, fakes: &Fakes, extra: &[(&str, &str)]) -> TestApp {
    let mut vars: Vec<(String, String)> = fakes.vars();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::spawn_ready(&db.url, &borrowed).await
}

fn alert(condition: &str, severity: Severity) -> Alert {
    Alert::trigger("test", condition, "TestCondition", severity, "something is wrong").detail("queue", 42)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_carry_severity_context_and_details_and_route_by_minimum_severity() {
    let db = TestDb::create(Engine::Sqlite).await;
    let fakes = Fakes::start().await;
    fakes
        .answer(
            ResponseTemplate::new(200).set_body_string("ok"),
            ResponseTemplate::new(202),
        )
        .await;
    let app = app_with(&db, &fakes, &[]).await;
    let alerts = &app.state.alerts;

    // warning → Slack only (PagerDuty's minimum is critical); info → nobody.
    assert_eq!(alerts.deliver(&alert("w", Severity::Warning)).await.len(), 1);
    assert!(alerts.deliver(&alert("i", Severity::Info)).await.is_empty());
    let outcomes = alerts.deliver(&alert("c", Severity::Critical)).await;
    assert_eq!(
        outcomes.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec!["slack", "pagerduty"]
    );
    // Remembered, newest first, for the console's operator view.
    let recent: Vec<(&str, &str, bool)> = alerts
        .recent()
        .iter()
        .map(|a| (a.channel, a.severity.as_str(), a.failure.is_none()))
        .collect();
    assert_eq!(
        recent,
        [
            ("pagerduty", "critical", true),
            ("slack", "critical", true),
            ("slack", "warning", true)
        ]
    );
    let admin = app.admin().await;
    let (status, live) = crate::console::log_in(&app, &admin)
        .await
        .get(&app, "/console/live")
        .await;
    assert_eq!(status, 200);
    let table = &live[live.find("id=\"recent-alerts\"").expect("the alerts table")..];
    assert_eq!(table.matches("TestCondition").count(), 3, "{table}");
    assert_eq!(table.matches(">delivered<").count(), 3, "{table}");

    let slack = fakes.slack_messages().await;
    assert_eq!(slack.len(), 2);
    let warning = &slack[0]["attachments"][0];
    assert_eq!(warning["color"], "#daa038");
    assert_eq!(slack[1]["attachments"][0]["color"], "#a30200", "critical is red");
    assert!(warning["title"].as_str().unwrap().contains("[WARNING] TestCondition"));
    let fields: Vec<(&str, &str)> = warning["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    for expected in ["environment", "version", "host", "queue"] {
        assert!(
            fields.iter().any(|(t, _)| *t == expected),
            "{expected} missing: {fields:?}"
        );
    }
    assert!(fields.contains(&("environment", "test")));

    let events = fakes.pagerduty_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["routing_key"], "routing-key-123");
    assert_eq!(events[0]["event_action"], "trigger");
    assert_eq!(events[0]["dedup_key"], "amani/test/c");
    assert_eq!(events[0]["payload"]["severity"], "critical");
    assert_eq!(events[0]["payload"]["custom_details"]["queue"], "42");
    let metrics = app.state.metrics.render_text();
    assert!(
        metrics.contains(r#"alerts_sent_total{channel="slack",outcome="succeeded"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_then_a_resolve_share_the_dedup_key_and_the_quiet_period_holds_repeats() {
    let db = TestDb::create(Engine::Sqlite).await;
    let fakes = Fakes::start().await;
    fakes
        .answer(ResponseTemplate::new(200), ResponseTemplate::new(202))
        .await;
    let app = app_with(&db, &fakes, &[]).await;
    let alerts = &app.state.alerts;
    let trigger = alert("db", Severity::Critical);
    alerts.deliver(&trigger).await;
    alerts.deliver(&trigger).await; // still firing: quiet
    alerts.deliver(&trigger.clone().resolved("back")).await;
    alerts.deliver(&trigger).await; // fires again after a resolve
    let events = fakes.pagerduty_events().await;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event_action"].as_str().unwrap(), e["dedup_key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("trigger", "amani/test/db"),
            ("resolve", "amani/test/db"),
            ("trigger", "amani/test/db")
        ]
    );
    let slack = fakes.slack_messages().await;
    assert_eq!(slack[1]["attachments"][0]["color"], "#2eb886", "resolved is green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retry_on_503_and_429_but_not_on_400() {
    let db = TestDb::create(Engine::Sqlite).await;
    let fakes = Fakes::start().await;
    // Slack: 503, then 429 with Retry-After: 1, then OK.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&fakes.slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&fakes.slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fakes.slack)
        .await;
    // PagerDuty: 400 (a bad event): never retried.
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&fakes.pagerduty)
        .await;
    let app = app_with(&db, &fakes, &[]).await;

    let started = Instant::now();
    let outcomes = app.state.alerts.deliver(&alert("retry", Severity::Critical)).await;
    let elapsed = started.elapsed();
    assert!(outcomes.iter().any(|(c, o)| *c == "slack" && o.is_ok()), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|(c, o)| *c == "pagerduty" && o.is_err()),
        "{outcomes:?}"
    );
    assert_eq!(fakes.slack.received_requests().await.unwrap().len(), 3);
    assert_eq!(fakes.pagerduty.received_requests().await.unwrap().len(), 1);
    assert!(elapsed >= Duration::from_secs(1), "honoured Retry-After: {elapsed:?}");
    let metrics = app.state.metrics.render_text();
    assert!(metrics.contains(r#"alerts_sent_total{channel="pagerduty",outcome="failed"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_slack_neither_slows_requests_nor_grows_the_queue() {
    let db = TestDb::create(Engine::Sqlite).await;
    let fakes = Fakes::start().await;
    fakes
        .answer(
            ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
            ResponseTemplate::new(202),
        )
        .await;
    let app = app_with(
        &db,
        &fakes,
        &[
            ("ALERT_QUEUE_CAPACITY", "3"),
            ("ALERT_MIN_SEVERITY_PAGERDUTY", "critical"),
        ],
    )
    .await;
    for i in 0..10 {
        app.state.alerts.send(alert(&format!("flood-{i}"), Severity::Warning));
    }
    // Requests stay fast while the worker waits on the hanging Slack.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(app.get("/api/v1/ping").await.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(200), "slowest ping {slowest:?}");
    assert!(app.state.alerts.queued() <= 3);
    let dropped = app.state.metrics.alerts_dropped.get();
    assert!(dropped >= 6, "dropped {dropped}");
}

#[test]
fn alert_test_prints_each_channels_answer_and_fails_when_one_fails() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (fakes, failing) = runtime.block_on(async {
        let fakes = Fakes::start().await;
        fakes
            .answer(
                ResponseTemplate::new(200).set_body_string("ok"),
                ResponseTemplate::new(202).set_body_string(r#"{"status":"success"}"#),
            )
            .await;
        let failing = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&failing)
            .await;
        (fakes, failing)
    });
    let dir = tempfile::tempdir().unwrap();
    let run = |vars: &[(String, String)], args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_amani"))
            .env_clear()
            .current_dir(dir.path())
            .envs(vars.iter().cloned())
            .env("ALERT_MAX_ATTEMPTS", "2")
            .args(["alert", "test"])
            .args(args)
            .output()
            .unwrap()
    };
    let output = run(&fakes.vars(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("slack: delivered (HTTP 200)"), "{stdout}");
    assert!(stdout.contains("pagerduty: delivered (HTTP 202)"), "{stdout}");
    assert!(!stdout.contains("routing-key-123"), "no key printed");

    let output = run(&fakes.vars(), &["--channel", "slack", "--severity", "info"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !stdout.contains("pagerduty"), "{stdout}");

    let broken = vec![("SLACK_WEBHOOK_URL".to_owned(), format!("{}/hook", failing.uri()))];
    let output = run(&broken, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("slack: FAILED (HTTP 500)"));
    // `--json`: one document, one entry per channel, the failure included.
    let output = run(&broken, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let answers: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&answers[0]["channel"], &answers[0]["delivered"]),
        (&serde_json::json!("slack"), &serde_json::json!(false)),
        "{answers}"
    );
    assert!(answers[0]["error"].as_str().unwrap().contains("HTTP 500"), "{answers}");

    let output = run(&[], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no alert channel configured"));
}

/// The database watchdog pages when PostgreSQL goes away and resolves the
/// same incident when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_watchdog_triggers_and_resolves_on_a_real_outage() {
    let db = TestDb::create(Engine::Postgres).await;
    let proxy = TcpProxy::start(db.server.unwrap()).await;
    let fakes = Fakes::start().await;
    fakes
        .answer(ResponseTemplate::new(200), ResponseTemplate::new(202))
        .await;
    let mut vars = fakes.vars();
    vars.push(("WATCHDOG_INTERVAL_SECONDS".into(), "1".into()));
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Kept alive (its watchdog is what the test watches), never called.
    let _app = TestApp::spawn_ready(&db.url_via(&proxy), &borrowed).await;

    proxy.cut();
    let trigger = eventually(Duration::from_secs(20), "a PagerDuty trigger", async || {
        fakes
            .pagerduty_events()
            .await
            .into_iter()
            .find(|e| e["event_action"] == "trigger")
    })
    .await;
    assert_eq!(trigger["dedup_key"], "amani/test/database");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("DatabaseUnreachable")
    );
    proxy.restore();
    let resolve = eventually(Duration::from_secs(20), "the resolve", async || {
        fakes
            .pagerduty_events()
            .await
            .into_iter()
            .find(|e| e["event_action"] == "resolve")
    })
    .await;
    assert_eq!(resolve["dedup_key"], "amani/test/database", "the same incident");
    let triggers = fakes
        .pagerduty_events()
        .await
        .iter()
        .filter(|e| e["event_action"] == "trigger")
        .count();
    assert_eq!(triggers, 1, "one page for one outage");
}

/// An app whose watchdog checks the ledger every second, alerting to fakes
/// that answer 200/202.
async fn ledger_watchdog_app() -> (TestDb, Fakes, TestApp) {
    let db = TestDb::create(Engine::Sqlite).await;
    let fakes = Fakes::start().await;
    fakes
        .answer(ResponseTemplate::new(200), ResponseTemplate::new(202))
        .await;
    let app = app_with(
        &db,
        &fakes,
        &[
            ("WATCHDOG_INTERVAL_SECONDS", "1"),
            ("LEDGER_CHECK_INTERVAL_SECONDS", "1"),
        ],
    )
    .await;
    (db, fakes, app)
}

/// The ledger watchdog pages when the books stop balancing, and resolves
/// once they are repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_watchdog_triggers_on_broken_books_and_resolves_after_repair() {
    let (_db, fakes, app) = ledger_watchdog_app().await;
    let user = app.user("client").await;
    crate::escrow::deposit(&app, &user, 1_000).await;
    let corrupt = |delta: i64| {
        let state = app.state.clone();
        async move {
            let mut tx = state.db.begin().await.unwrap();
            let (conn, obs) = amani::store::DbHandle::parts(&mut tx);
            obs.run(
                "test.corrupt",
                sqlx::query("update ledger_accounts set balance = balance + $1 where kind = 'user_available'")
                    .bind(delta)
                    .execute(conn),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    };
    corrupt(500).await;
    let trigger = eventually(Duration::from_secs(20), "LedgerImbalance", async || {
        fakes
            .pagerduty_events()
            .await
            .into_iter()
            .find(|e| e["dedup_key"] == "amani/test/ledger")
    })
    .await;
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(app.state.metrics.ledger_check_ok.get(), 0);
    corrupt(-500).await;
    eventually(Duration::from_secs(20), "the resolve", async || {
        fakes
            .pagerduty_events()
            .await
            .into_iter()
            .find(|e| e["dedup_key"] == "amani/test/ledger" && e["event_action"] == "resolve")
    })
    .await;
    assert_eq!(app.state.metrics.ledger_check_ok.get(), 1);
}

/// A ledger check that cannot run (here: a column renamed under it) is a
/// failed check: logged, the gauge says broken, and the alert goes out —
/// never silently skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_check_that_cannot_run_counts_as_broken_and_alerts() {
    let (_db, fakes, app) = ledger_watchdog_app().await;
    eventually(Duration::from_secs(20), "a first balanced check", async || {
        (app.state.metrics.ledger_check_success_timestamp.get() > 0.0).then_some(())
    })
    .await;
    let mut tx = app.state.db.begin().await.unwrap();
    let (conn, obs) = amani::store::DbHandle::parts(&mut tx);
    obs.run(
        "test.break",
        sqlx::query("alter table ledger_transfers rename column amount to amount_moved").execute(conn),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let trigger = eventually(Duration::from_secs(20), "LedgerImbalance", async || {
        fakes
            .pagerduty_events()
            .await
            .into_iter()
            .find(|e| e["dedup_key"] == "amani/test/ledger")
    })
    .await;
    assert_eq!(trigger["event_action"], "trigger");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("could not run"),
        "{trigger}"
    );
    assert_eq!(app.state.metrics.ledger_check_ok.get(), 0);
    assert!(app.state.metrics.ledger_check_timestamp.get() > 0.0);
}
