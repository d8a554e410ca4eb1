//! The event log, the events API and outbound webhooks, against a local
//! receiver (wiremock) that records what went over the wire. Signatures are
//! checked with `standardwebhooks`, an implementation independent of ours.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::both_engines;
use crate::escrow::{active_project, deposit, money_post, verified_user};
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};
use crate::server::eventually;

/// Creates an endpoint for `types` at `url`; returns (id, secret).
async fn endpoint(app: &TestApp, admin: &TestUser, url: &str, types: &[&str]) -> (String, String) {
    let (status, body) = json(
        app.authed(Method::POST, "/api/v1/admin/webhook-endpoints", &admin.token)
            .json(&json!({"url": url, "event_types": types, "description": "the marketplace"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"), "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// Every request the receiver got, verified with the secret.
async fn received(server: &MockServer, secret: &str) -> Vec<(String, Value)> {
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|request: &Request| {
            let mut headers = http::HeaderMap::new();
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                let value = request.headers.get(name).unwrap_or_else(|| panic!("{name} missing"));
                headers.insert(name, http::HeaderValue::from_bytes(value.as_bytes()).unwrap());
            }
            verifier
                .verify(&request.body, &headers)
                .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            assert_eq!(body["id"], id.as_str(), "webhook-id is the event id");
            (id, body)
        })
        .collect()
}

/// `GET /api/v1/events{query}` as `user`.
pub async fn events(app: &TestApp, user: &TestUser, query: &str) -> (u16, Value) {
    json(
        app.authed(Method::GET, &format!("/api/v1/events{query}"), &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub fn types_of(items: &[Value], project: &str) -> Vec<String> {
    items
        .iter()
        .filter(|e| e["project_id"] == project)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The events of one deal, in order: created to completed, one milestone.
pub const DEAL: [&str; 10] = [
    "project.created",
    "project.sent",
    "project.accepted",
    "milestone.funded",
    "escrow.held",
    "milestone.submitted",
    "milestone.approved",
    "milestone.released",
    "escrow.released",
    "project.completed",
];

/// A whole deal: exactly the documented events, in order, signed, each
/// delivered once, and the same events through the API.
async fn a_deal_emits_its_documented_events_in_order_signed(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let hook = receiver(200).await;
    let (_, secret) = endpoint(&app, &admin, &hook.uri(), &["*"]).await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = app.user("freelancer").await;
    deposit(&app, &buyer, 100_000).await;
    let (project, milestones) = active_project(&app, &buyer, &seller, &[40_000]).await;
    let (status, body) = money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{body}");
    let path = |step: &str| format!("/api/v1/milestones/{}/{step}", milestones[0]);
    let (status, body) = crate::escrow::post(&app, &seller, &path("submit"), json!({"note": "done"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = crate::escrow::post(&app, &buyer, &path("approve"), json!({"approve": true})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = money_post(
        &app,
        &buyer,
        "/api/v1/escrow/release",
        json!({"milestone_id": milestones[0]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let (status, page) = events(&app, &buyer, "?limit=100").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(types_of(items, &project), DEAL, "{page:#}");
    let mine: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        mine.contains(&"kyc.approved") && mine.contains(&"wallet.deposit.completed"),
        "{mine:?}"
    );
    let released = items.iter().find(|e| e["type"] == "escrow.released").unwrap();
    assert_eq!(released["data"]["amount"], 40_000);
    assert_eq!(released["data"]["user_id"], seller.id.as_str());
    assert_eq!(released["object"]["type"], "transaction");
    assert!(released["request_id"].as_str().is_some(), "{released}");

    // The seller sees the deal but not the buyer's deposit or KYC; a
    // stranger sees nothing, even by id.
    let (_, theirs) = events(&app, &seller, "?limit=100").await;
    let theirs = theirs["items"].as_array().unwrap();
    assert_eq!(types_of(theirs, &project), DEAL);
    assert!(
        theirs
            .iter()
            .all(|e| e["type"] != "wallet.deposit.completed" && e["type"] != "kyc.approved")
    );
    let stranger = app.user("client").await;
    let (_, none) = events(&app, &stranger, "").await;
    assert_eq!(none["items"], json!([]));
    let hidden = app
        .authed(
            Method::GET,
            &format!("/api/v1/events/{}", released["id"].as_str().unwrap()),
            &stranger.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);

    // Filters and the cursor walk the same log.
    let (_, funded) = events(&app, &buyer, &format!("?type=milestone.funded&project_id={project}")).await;
    assert_eq!(funded["items"].as_array().unwrap().len(), 1, "{funded}");
    let mut walked = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = events(&app, &buyer, &format!("?limit=3&project_id={project}{after}")).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, DEAL);

    // Every event reached the receiver once, signed, in order per project.
    let total = app
        .authed(Method::GET, "/api/v1/events?limit=100", &admin.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    let delivered = eventually(Duration::from_secs(20), "every event delivered", async || {
        let got = received(&hook, &secret).await;
        (got.len() >= total).then_some(got)
    })
    .await;
    let mut seen = BTreeMap::new();
    for (id, _) in &delivered {
        *seen.entry(id.clone()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "delivered twice: {seen:?}");
    let bodies: Vec<Value> = delivered.into_iter().map(|(_, body)| body).collect();
    assert_eq!(
        types_of(&bodies, &project),
        DEAL,
        "webhooks arrive in order per project"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("amani_events_written_total{type=\"escrow.released\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("amani_webhook_deliveries_total{outcome=\"delivered\"}"));
}

/// A money operation that fails after emitting rolls back its events too.
async fn a_rolled_back_operation_emits_no_event(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = app.user("freelancer").await;
    // Enough for the first milestone (and its fee), not the second: the
    // hold emits the first milestone's events, then fails on the second.
    deposit(&app, &buyer, 30_000).await;
    let (project, _) = active_project(&app, &buyer, &seller, &[20_000, 20_000]).await;
    let (status, body) = money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 409, "{body}");
    let (_, page) = events(&app, &buyer, &format!("?project_id={project}")).await;
    assert_eq!(
        types_of(page["items"].as_array().unwrap(), &project),
        ["project.created", "project.sent", "project.accepted"],
        "{page:#}"
    );
    let (_, held) = events(&app, &buyer, "?type=escrow.held").await;
    assert_eq!(held["items"], json!([]));
}

/// The receiver fails (503, then 429 with Retry-After), then answers: the
/// event is retried on the schedule and delivered once it can be, with the
/// same webhook-id on every attempt; the attempts are readable.
async fn a_receiver_that_fails_gets_the_event_when_it_returns(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1,1,1")]).await;
    let admin = app.admin().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("thanks"))
        .with_priority(3)
        .mount(&hook)
        .await;
    let (endpoint_id, secret) = endpoint(&app, &admin, &hook.uri(), &["kyc.approved"]).await;
    let started = std::time::Instant::now();
    verified_user(&app, "client", &admin).await;
    let got = eventually(Duration::from_secs(20), "three attempts", async || {
        let got = received(&hook, &secret).await;
        (got.len() >= 3).then_some(got)
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        got.iter().all(|(id, _)| *id == got[0].0),
        "one webhook-id for every attempt"
    );
    assert_eq!(got[0].1["type"], "kyc.approved");
    // 1 s (±20%) after the 503, then at least the 2 s Retry-After.
    assert!(elapsed >= Duration::from_millis(2_800), "{elapsed:?}");
    let attempts = eventually(Duration::from_secs(10), "the delivered attempt recorded", async || {
        let (_, list) = json(
            app.authed(
                Method::GET,
                &format!("/api/v1/admin/webhook-endpoints/{endpoint_id}/attempts"),
                &admin.token,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        (list["items"].as_array().unwrap().len() == 3).then_some(list)
    })
    .await;
    let outcomes: Vec<(&str, i64)> = attempts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["outcome"].as_str().unwrap(), a["status_code"].as_i64().unwrap()))
        .collect();
    assert_eq!(outcomes, [("delivered", 200), ("http_error", 429), ("http_error", 503)]);
    assert_eq!(attempts["items"][0]["response_body"], "thanks");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received(&hook, &secret).await.len(), 3, "nothing more after delivery");
}

/// Nothing listens at the endpoint for a while: connection errors, retried,
/// then delivered once a receiver listens there.
async fn a_receiver_that_is_down_gets_the_event_once_it_listens(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1,1,1,1,1,1,1,1")]).await;
    let admin = app.admin().await;
    let port = crate::helpers::free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let (id, secret) = endpoint(&app, &admin, &url, &["kyc.approved"]).await;
    verified_user(&app, "client", &admin).await;
    let attempts_path = format!("/api/v1/admin/webhook-endpoints/{id}/attempts");
    eventually(Duration::from_secs(15), "two refused connections", async || {
        let (_, list) = json(
            app.authed(Method::GET, &attempts_path, &admin.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let items = list["items"].as_array()?.clone();
        (items.len() >= 2 && items.iter().all(|a| a["outcome"] == "connection_error")).then_some(())
    })
    .await;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let hook = MockServer::builder().listener(listener).start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let got = eventually(Duration::from_secs(15), "delivered once it listens", async || {
        let got = received(&hook, &secret).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["type"], "kyc.approved");
}

/// A receiver that takes 10 s holds up only itself.
async fn a_slow_endpoint_does_not_delay_another(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&slow)
        .await;
    let fast = receiver(204).await;
    let (_, _) = endpoint(&app, &admin, &slow.uri(), &["*"]).await;
    let (_, fast_secret) = endpoint(&app, &admin, &fast.uri(), &["*"]).await;
    let buyer = app.user("client").await;
    let seller = app.user("freelancer").await;
    let started = std::time::Instant::now();
    for i in 0..6 {
        let (status, body) = crate::escrow::post(
            &app,
            &buyer,
            "/api/v1/projects",
            json!({"title": format!("Deal {i}"), "seller_id": seller.id, "currency": "NGN",
                "milestones": [{"title": "All", "amount": 1000}]}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    eventually(Duration::from_secs(8), "the fast endpoint has all six", async || {
        (received(&fast, &fast_secret).await.len() >= 6).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// Outside production, loopback is allowed (developers); with private
/// targets off, it is refused when set and when resolved.
async fn internal_targets_are_refused_when_not_allowed(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")]).await;
    let admin = app.admin().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
    ] {
        let (status, body) = json(
            app.authed(Method::POST, "/api/v1/admin/webhook-endpoints", &admin.token)
                .json(&json!({"url": url, "event_types": ["*"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("internal"), "{body}");
    }
    let (status, body) = json(
        app.authed(Method::POST, "/api/v1/admin/webhook-endpoints", &admin.token)
            .json(&json!({"url": "https://hooks.example.com/amani", "event_types": ["milestone.paid"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let user = app.user("client").await;
    let forbidden = app
        .authed(Method::GET, "/api/v1/admin/webhook-endpoints", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
}

/// Events and attempts past retention are pruned; newer ones stay.
async fn old_events_are_pruned_after_retention(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let hook = receiver(200).await;
    let (endpoint_id, secret) = endpoint(&app, &admin, &hook.uri(), &["*"]).await;
    verified_user(&app, "client", &admin).await;
    let attempts_path = format!("/api/v1/admin/webhook-endpoints/{endpoint_id}/attempts");
    let attempts = async || {
        json(
            app.authed(Method::GET, &attempts_path, &admin.token)
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    };
    // Delivered, and the attempt recorded (it is written after the answer).
    eventually(Duration::from_secs(20), "the attempt recorded", async || {
        let recorded = attempts().await["items"].as_array().is_some_and(|a| a.len() == 1);
        (recorded && received(&hook, &secret).await.len() == 1).then_some(())
    })
    .await;
    let config = &app.state.config.webhooks;
    let now = time::OffsetDateTime::now_utc();
    let kept = amani::operations::deliveries::prune(&app.state.db, config, now + time::Duration::days(29))
        .await
        .unwrap();
    assert_eq!(kept, 0, "nothing is 30 days old yet");
    let pruned = amani::operations::deliveries::prune(&app.state.db, config, now + time::Duration::days(31))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the kyc.approved event");
    let (_, page) = events(&app, &admin, "").await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(attempts().await["items"], json!([]));
}

/// Disable, enable, rotate and replay: the admin's levers, over the wire.
async fn an_admin_disables_rotates_and_replays(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let hook = receiver(200).await;
    let (id, secret) = endpoint(&app, &admin, &hook.uri(), &["kyc.approved"]).await;
    let patch = async |body: Value| {
        json(
            app.authed(
                Method::PATCH,
                &format!("/api/v1/admin/webhook-endpoints/{id}"),
                &admin.token,
            )
            .json(&body)
            .send()
            .await
            .unwrap(),
        )
        .await
    };
    let (status, off) = patch(json!({"enabled": false})).await;
    assert_eq!((status, off["status"].as_str()), (200, Some("disabled")), "{off}");
    assert_eq!(off["disabled_reason"], "disabled by an admin");
    verified_user(&app, "client", &admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        received(&hook, &secret).await.is_empty(),
        "nothing goes to a disabled endpoint"
    );
    let (status, on) = patch(json!({"enabled": true, "event_types": ["kyc.approved", "kyc.rejected"]})).await;
    assert_eq!((status, on["status"].as_str()), (200, Some("enabled")), "{on}");
    assert_eq!(on["event_types"], json!(["kyc.approved", "kyc.rejected"]));

    let (status, rotated) = json(
        app.authed(
            Method::POST,
            &format!("/api/v1/admin/webhook-endpoints/{id}/rotate-secret"),
            &admin.token,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    // The event written while disabled, replayed by time range: signed with
    // both secrets during the overlap, so either verifies.
    let since = "2000-01-01T00:00:00Z";
    let (status, replayed) = crate::escrow::post(
        &app,
        &admin,
        &format!("/api/v1/admin/webhook-endpoints/{id}/replay"),
        json!({"since": since, "until": "2100-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!((status, replayed["queued"].as_i64()), (202, Some(1)), "{replayed}");
    let got = eventually(Duration::from_secs(10), "the replayed event", async || {
        let got = received(&hook, &new_secret).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got[0].1["type"], "kyc.approved");
    assert_eq!(received(&hook, &secret).await.len(), 1, "the old secret still verifies");
    let (status, _) = crate::escrow::post(
        &app,
        &admin,
        &format!("/api/v1/admin/webhook-endpoints/{id}/replay"),
        json!({"event_id": uuid::Uuid::now_v7().to_string()}),
    )
    .await;
    assert_eq!(status, 404);
    let deleted = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/admin/webhook-endpoints/{id}"),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

/// An endpoint whose every attempt fails for WEBHOOK_DISABLE_AFTER_SECONDS
/// is disabled, with an alert (here to a local Slack).
async fn an_endpoint_failing_too_long_is_disabled_with_an_alert(engine: Engine) {
    let db = TestDb::create(engine).await;
    let slack = receiver(200).await;
    let slack_url = format!("{}/hook", slack.uri());
    let app = TestApp::spawn_ready(
        &db.url,
        &[
            ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1,1,1,1,1,1"),
            ("WEBHOOK_DISABLE_AFTER_SECONDS", "1"),
            ("SLACK_WEBHOOK_URL", &slack_url),
        ],
    )
    .await;
    let admin = app.admin().await;
    let hook = receiver(500).await;
    let (id, secret) = endpoint(&app, &admin, &hook.uri(), &["*"]).await;
    verified_user(&app, "client", &admin).await;
    let disabled = eventually(Duration::from_secs(20), "the endpoint disabled", async || {
        let (_, body) = json(
            app.authed(
                Method::GET,
                &format!("/api/v1/admin/webhook-endpoints/{id}"),
                &admin.token,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        (body["status"] == "disabled").then_some(body)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("every attempt failed since"),
        "{disabled}"
    );
    let alerted = eventually(Duration::from_secs(10), "the alert", async || {
        let requests = slack.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .find(|body| body.contains("WebhookEndpointDisabled"))
    })
    .await;
    assert!(alerted.contains(&id), "{alerted}");
    let attempts = received(&hook, &secret).await.len();
    assert!(attempts >= 2, "{attempts}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received(&hook, &secret).await.len(),
        attempts,
        "nothing sent once disabled"
    );
    crate::metrics::scrape_until(&app, r#"amani_webhook_endpoints{status="disabled"} 1"#).await;
}

/// After the last retry a delivery fails for good: counted, not retried.
async fn a_delivery_fails_after_its_last_retry(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1")]).await;
    let admin = app.admin().await;
    let hook = receiver(500).await;
    let (_, secret) = endpoint(&app, &admin, &hook.uri(), &["kyc.approved"]).await;
    verified_user(&app, "client", &admin).await;
    eventually(Duration::from_secs(10), "counted as failed", async || {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        metrics
            .contains("amani_webhook_deliveries_total{outcome=\"failed\"} 1")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received(&hook, &secret).await.len(),
        2,
        "the first attempt and one retry"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("amani_webhook_attempts_total{outcome=\"http_error\"} 2"),
        "{metrics}"
    );
    // A failed delivery is not backlog.
    crate::metrics::scrape_until(&app, "amani_webhook_oldest_undelivered_seconds 0").await;
}

both_engines!(
    a_receiver_that_is_down_gets_the_event_once_it_listens,
    an_endpoint_failing_too_long_is_disabled_with_an_alert,
    a_delivery_fails_after_its_last_retry,
    an_admin_disables_rotates_and_replays,
    a_deal_emits_its_documented_events_in_order_signed,
    a_rolled_back_operation_emits_no_event,
    a_receiver_that_fails_gets_the_event_when_it_returns,
    a_slow_endpoint_does_not_delay_another,
    internal_targets_are_refused_when_not_allowed,
    old_events_are_pruned_after_retention,
);

/// Two replicas on one PostgreSQL deliver each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let db = TestDb::create(Engine::Postgres).await;
    let first = TestApp::spawn(&db).await;
    let second = TestApp::spawn(&db).await;
    let admin = first.admin().await;
    let hook = receiver(200).await;
    let (_, secret) = endpoint(&first, &admin, &hook.uri(), &["*"]).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        verified_user(app, "client", &admin).await;
    }
    eventually(Duration::from_secs(20), "ten deliveries", async || {
        (received(&hook, &secret).await.len() >= 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received(&hook, &secret).await;
    let mut ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (10, 10), "each event once");
}

/// kill -9 while deliveries are failing and waiting for their retry: the
/// restarted service delivers every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_kill_9() {
    let db = TestDb::create(Engine::Sqlite).await;
    let hook = receiver(500).await;
    let setup = TestApp::spawn(&db).await;
    let admin = setup.admin().await;
    let (_, secret) = endpoint(&setup, &admin, &hook.uri(), &["project.created"]).await;
    let buyer = setup.user("client").await;
    let seller = setup.user("freelancer").await;
    setup.shutdown().await.unwrap();

    let server = crate::server::Server::start(&[
        ("DATABASE_URL", db.url.as_str()),
        ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "2,2,2,2,2,2,2,2,2,2"),
    ]);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();
    let mut projects = Vec::new();
    for i in 0..3 {
        let (status, project) = json(
            client
                .post(server.url("/api/v1/projects"))
                .bearer_auth(&buyer.token)
                .json(
                    &json!({"title": format!("Deal {i}"), "seller_id": seller.id, "currency": "NGN",
                    "milestones": [{"title": "All", "amount": 1000}]}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{project}");
        projects.push(project["id"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(10), "attempts that fail", async || {
        (received(&hook, &secret).await.len() >= 3).then_some(())
    })
    .await;
    drop(server); // SIGKILL
    hook.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;

    let restarted = TestApp::spawn_ready(&db.url, &[("WEBHOOK_RETRY_SCHEDULE_SECONDS", "2,2,2,2,2,2,2,2,2,2")]).await;
    let got = eventually(Duration::from_secs(60), "all three delivered", async || {
        let got = received(&hook, &secret).await;
        (got.len() >= 3).then_some(got)
    })
    .await;
    let mut delivered: Vec<String> = got
        .iter()
        .map(|(_, body)| body["project_id"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    projects.sort();
    assert_eq!(delivered, projects);
    restarted.shutdown().await.unwrap();
}
