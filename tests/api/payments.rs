//! The FinCra gateway and its webhooks, against a local fake FinCra
//! (wiremock) that records every request it receives.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_engines;
use crate::escrow::{assert_books_balance, available, keyed_post, verified_user};
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};

const SECRET: &str = "whsec-test-secret";

async fn fincra_app(db: &TestDb, fincra: &MockServer) -> TestApp {
    let app = TestApp::spawn_with(
        &db.url,
        &[
            ("PAYMENT_GATEWAY", "fincra"),
            ("FINCRA_API_KEY", "test-api-key"),
            ("FINCRA_BASE_URL", &fincra.uri()),
            ("FINCRA_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    app.wait_until_ready().await;
    app
}

async fn webhook(app: &TestApp, body: &Value, signed_at: i64, secret: &str) -> reqwest::Response {
    let raw = serde_json::to_vec(body).unwrap();
    let signature = amani::gateway::webhook::sign(secret.as_bytes(), signed_at, &raw);
    app.client
        .post(app.url("/api/v1/webhooks/payments/fincra"))
        .header("content-type", "application/json")
        .header("x-fincra-signature", signature)
        .header("x-fincra-timestamp", signed_at.to_string())
        .body(raw)
        .send()
        .await
        .unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A deposit through FinCra, confirmed by its webhook; returns the reference.
async fn funded(app: &TestApp, fincra: &MockServer, user: &TestUser, amount: i64) -> String {
    Mock::given(method("POST"))
        .and(path("/checkout/payments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "data": {"link": "https://checkout.example/pay"}})),
        )
        .mount(fincra)
        .await;
    let key = uuid::Uuid::new_v4().to_string();
    let (status, body) = keyed_post(
        app,
        user,
        "/api/v1/wallet/deposit",
        &key,
        json!({"amount": amount, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    let event =
        json!({"id": format!("evt-{reference}"), "event": "charge.successful", "data": {"reference": reference}});
    assert_eq!(webhook(app, &event, now(), SECRET).await.status(), 200);
    reference
}

both_engines!(
    a_deposit_is_credited_only_when_the_signed_webhook_confirms_it,
    payouts_retry_on_503_never_on_400_and_reuse_the_reference,
);

async fn a_deposit_is_credited_only_when_the_signed_webhook_confirms_it(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/checkout/payments"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"link": "https://checkout.example/pay/1"}})),
        )
        .mount(&fincra)
        .await;
    let app = fincra_app(&db, &fincra).await;
    let user = app.user("client").await;
    let response = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .header("idempotency-key", "deposit-1")
        .header("x-request-id", "deposit-request-1")
        .json(&json!({"amount": 250_050, "currency": "NGN"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["transaction"]["status"], "pending");
    assert_eq!(body["checkout_url"], "https://checkout.example/pay/1");
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        available(&app, &user).await,
        0,
        "nothing credited before the gateway confirms"
    );

    let sent = &fincra.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers.get("api-key").unwrap(), "test-api-key");
    assert_eq!(sent.headers.get("x-request-id").unwrap(), "deposit-request-1");
    let sent_body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent_body["reference"], reference.as_str());
    assert_eq!(
        sent_body["amount"], "2500.50",
        "major units as a decimal string, no floats"
    );

    let event = json!({"id": "evt-1", "event": "charge.successful", "data": {"reference": reference}});
    // Unsigned, wrongly signed and stale webhooks change nothing.
    let unsigned = app
        .client
        .post(app.url("/api/v1/webhooks/payments/fincra"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(webhook(&app, &event, now(), "not-the-secret").await.status(), 401);
    assert_eq!(webhook(&app, &event, now() - 3600, SECRET).await.status(), 401);
    assert_eq!(available(&app, &user).await, 0);

    let (status, ack) = json(webhook(&app, &event, now(), SECRET).await).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("processed")));
    assert_eq!(available(&app, &user).await, 250_050);
    // A replay of the same event is acknowledged and ignored.
    let (status, ack) = json(webhook(&app, &event, now(), SECRET).await).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("duplicate")));
    assert_eq!(available(&app, &user).await, 250_050);
    // An event for a reference we never issued: recorded, answered 200.
    let stray = json!({"id": "evt-2", "event": "charge.successful", "data": {"reference": "dep_unknown"}});
    let (status, ack) = json(webhook(&app, &stray, now(), SECRET).await).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("unknown_reference")));
    assert_books_balance(&app).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"amani_webhooks_received_total{provider="fincra",outcome="processed"} 1"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="duplicate"} 1"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="rejected"} 3"#,
        r#"amani_gateway_requests_total{provider="fincra",operation="checkout",outcome="success"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}");
    }
}

async fn payouts_retry_on_503_never_on_400_and_reuse_the_reference(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = MockServer::start().await;
    let app = fincra_app(&db, &fincra).await;
    let admin = app.admin().await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    funded(&app, &fincra, &seller, 100_000).await;
    assert_eq!(available(&app, &seller).await, 100_000);

    // 503 twice, then accepted: three attempts, one reference.
    Mock::given(method("POST"))
        .and(path("/disbursements/transfers"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&fincra)
        .await;
    Mock::given(method("POST"))
        .and(path("/disbursements/transfers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .up_to_n_times(1)
        .mount(&fincra)
        .await;
    let (status, payout) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-1",
        json!({"amount": 30_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(payout["status"], "pending");
    let attempts: Vec<Value> = payouts(&fincra).await;
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|a| a["customerReference"] == payout["id"]),
        "{attempts:?}"
    );
    assert_eq!(available(&app, &seller).await, 70_000, "reserved while in flight");

    // The provider refuses (400): one attempt, nothing reserved, a 4xx.
    Mock::given(method("POST"))
        .and(path("/disbursements/transfers"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "invalid beneficiary"})))
        .up_to_n_times(1)
        .mount(&fincra)
        .await;
    let (status, problem) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-2",
        json!({"amount": 10_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("invalid beneficiary"));
    assert_eq!(payouts(&fincra).await.len(), 4);
    assert_eq!(available(&app, &seller).await, 70_000);

    // The provider is down: bounded retries, then 503, nothing reserved; a
    // retry with the same key sends the same reference.
    Mock::given(method("POST"))
        .and(path("/disbursements/transfers"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&fincra)
        .await;
    let (status, _) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-3",
        json!({"amount": 5_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(available(&app, &seller).await, 70_000);
    Mock::given(method("POST"))
        .and(path("/disbursements/transfers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&fincra)
        .await;
    let (status, retried) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-3",
        json!({"amount": 5_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{retried}");
    let all = payouts(&fincra).await;
    let failed_attempt_reference = &all[4]["customerReference"];
    assert_eq!(
        &all.last().unwrap()["customerReference"],
        failed_attempt_reference,
        "same key, same reference"
    );

    // The payout webhooks settle the two withdrawals: one paid, one failed.
    let paid = json!({"id": "evt-paid", "event": "payout.successful", "data": {"reference": payout["id"]}});
    assert_eq!(webhook(&app, &paid, now(), SECRET).await.status(), 200);
    assert_eq!(
        available(&app, &seller).await,
        65_000,
        "5,000 reserved for the retried payout"
    );
    let failed = json!({"id": "evt-failed", "event": "payout.failed", "data": {"reference": retried["id"]}});
    assert_eq!(webhook(&app, &failed, now(), SECRET).await.status(), 200);
    assert_eq!(available(&app, &seller).await, 70_000, "the failed payout came back");
    let (_, wallet) = json(
        app.authed(Method::GET, "/api/v1/wallet", &seller.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wallet["balances"][0]["reserved"], 0);
    assert_books_balance(&app).await;
}

async fn payouts(fincra: &MockServer) -> Vec<Value> {
    fincra
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/disbursements/transfers")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// The gateway call carries the trace: a caller's `traceparent` continues
/// through Amani to the provider, with the request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_gateway_calls_carry_the_trace_context_and_request_id() {
    let fincra = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"link": "https://checkout.example/x"}})))
        .mount(&fincra)
        .await;
    let server = crate::server::Server::start(&[
        ("PAYMENT_GATEWAY", "fincra"),
        ("FINCRA_API_KEY", "k"),
        ("FINCRA_BASE_URL", &fincra.uri()),
    ]);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();
    let signup = client
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"email": "trace@example.com", "password": crate::helpers::PASSWORD, "full_name": "T", "role": "client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let login: Value = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": "trace@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trace_id = "7bf92f3577b34da6a3ce929d0e0e4736";
    let response = client
        .post(server.url("/api/v1/wallet/deposit"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .header("idempotency-key", "traced-deposit")
        .header("x-request-id", "traced-request-9")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"amount": 1_000, "currency": "NGN"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let sent = &fincra.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers.get("x-request-id").unwrap(), "traced-request-9");
    let traceparent = sent
        .headers
        .get("traceparent")
        .expect("traceparent sent")
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[1], trace_id, "{traceparent}");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the parent is Amani's own span, not the caller's"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
}
