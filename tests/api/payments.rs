//! Money rails: FinCra as documented (a local fake that records requests),
//! the three steps with the gateway outside database transactions, webhooks
//! verified against FinCra's own record, reconciliation, payout destinations.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both_engines;
use crate::escrow::{assert_books_balance, available, keyed_post, verified_user};
use crate::fake_fincra::{EarlyWebhook, FakeFincra};
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};

const SECRET: &str = "whsec-test-secret";
const BUSINESS: &str = "65f1c0ffee0ddba11c0ffee1";

async fn fincra_app(db: &TestDb, fincra: &FakeFincra, extra: &[(&str, &str)]) -> TestApp {
    let uri = fincra.uri();
    let mut vars = vec![
        ("PAYMENT_GATEWAY", "fincra"),
        ("FINCRA_API_KEY", "sk_test_secret"),
        ("FINCRA_PUBLIC_KEY", "pk_test_public"),
        ("FINCRA_BUSINESS_ID", BUSINESS),
        ("FINCRA_BASE_URL", uri.as_str()),
        ("FINCRA_WEBHOOK_SECRET", SECRET),
        ("RECONCILE_ENABLED", "false"),
        ("RECONCILE_MIN_AGE_SECONDS", "0"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_ready(&db.url, &vars).await
}

/// Posts a webhook signed the way FinCra signs: `signature` = hex
/// HMAC-SHA512 of the body.
async fn webhook_raw(app: &TestApp, raw: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/v1/webhooks/payments/fincra"))
        .header("content-type", "application/json")
        .body(raw.to_vec());
    if let Some(signature) = signature {
        request = request.header("signature", signature);
    }
    json(request.send().await.unwrap()).await
}

async fn webhook(app: &TestApp, event: &Value) -> (u16, Value) {
    let raw = serde_json::to_vec(event).unwrap();
    let signature = amani::gateway::webhook::sign(SECRET.as_bytes(), &raw);
    webhook_raw(app, &raw, Some(signature)).await
}

async fn reserved(app: &TestApp, user: &TestUser) -> i64 {
    let (_, wallet) = json(
        app.authed(Method::GET, "/api/v1/wallet", &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    wallet["balances"][0]["reserved"].as_i64().unwrap_or(0)
}

async fn transaction(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let path = format!("/api/v1/escrow/transactions/{id}");
    let (status, body) = json(app.authed(Method::GET, &path, &user.token).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Ledger transfers of `kind` that point at the record `reference`.
async fn transfers(app: &TestApp, reference: &str, kind: &str) -> i64 {
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
    let (count,): (i64,) = obs
        .run(
            "test.transfers",
            sqlx::query_as("select count(*) from ledger_transfers where escrow_transaction_id = $1 and kind = $2")
                .bind(reference)
                .bind(kind)
                .fetch_one(conn),
        )
        .await
        .unwrap();
    count
}

/// A verified user with a FinCra-resolved bank account and `funds` NGN
/// minor units deposited (through a checkout FinCra reports paid in full).
async fn funded_seller(app: &TestApp, fincra: &FakeFincra, funds: i64) -> (TestUser, String) {
    let admin = app.admin().await;
    let seller = verified_user(app, "freelancer", &admin).await;
    fincra.add_account("2345678901", "USER TEST");
    let (status, destination) = json(
        app.authed(Method::POST, "/api/v1/wallet/destinations", &seller.token)
            .json(&json!({"kind": "bank_account", "bank_code": "058", "account_number": "2345678901", "account_holder_name": "Test User"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{destination}");
    let key = uuid::Uuid::new_v4().to_string();
    let (status, body) = keyed_post(
        app,
        &seller,
        "/api/v1/wallet/deposit",
        &key,
        json!({"amount": funds, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    let major = amani::gateway::major_units(funds, amani::domain::money::Currency::Ngn);
    let paid = fincra.pay_checkout(&reference, json!(major), None);
    let (status, ack) = webhook(app, &json!({"event": "charge.successful", "data": paid})).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("processed")), "{ack}");
    assert_eq!(available(app, &seller).await, funds);
    (seller, destination["id"].as_str().unwrap().to_owned())
}

both_engines!(
    fincra_calls_carry_the_documented_headers_units_and_bodies,
    a_deposit_is_credited_only_when_fincra_confirms_the_full_amount,
    a_payout_that_timed_out_after_fincra_paid_is_settled_once_by_reconciliation,
    a_webhook_that_arrives_before_the_payout_call_returns_settles_it_once,
    a_refused_payout_returns_the_reservation_and_replays_as_refused,
    a_slow_gateway_does_not_slow_unrelated_requests,
    two_replicas_reconciling_one_database_settle_each_record_once,
    payout_destinations_must_resolve_to_the_verified_name,
    a_stuck_payment_is_counted_and_mispayments_are_held_for_review,
    a_payout_interrupted_by_kill_9_is_settled_after_restart,
    concurrent_first_deposits_of_a_new_user_all_succeed,
);

/// Starts `count` deposits of `amount` at once (keys `{prefix}-{i}`); each
/// task answers the status and body.
fn spawn_deposits(
    app: &TestApp,
    user: &TestUser,
    count: usize,
    amount: i64,
    prefix: &str,
) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    (0..count)
        .map(|i| {
            let request = app
                .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
                .header("idempotency-key", format!("{prefix}-{i}"))
                .json(&json!({"amount": amount, "currency": "NGN"}));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            })
        })
        .collect()
}

/// Waits for every spawned deposit and requires each to be 201.
async fn expect_created(deposits: Vec<tokio::task::JoinHandle<(u16, String)>>) {
    for deposit in deposits {
        let (status, body) = deposit.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
}

/// The first deposits of a new user create their ledger accounts; several at
/// once must not collide (PostgreSQL once answered 500 here: a unique
/// violation on the second unique index of `ledger_accounts`).
async fn concurrent_first_deposits_of_a_new_user_all_succeed(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(
        &db.url,
        &[
            ("DATABASE_MAX_CONNECTIONS", "16"),
            ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "30"),
        ],
    )
    .await;
    for round in 0..8 {
        let user = app.user("client").await;
        let deposits = spawn_deposits(&app, &user, 12, 100, &format!("first-{round}"));
        expect_created(deposits).await;
        assert_eq!(available(&app, &user).await, 1_200);
    }
    assert_books_balance(&app).await;
}

async fn fincra_calls_carry_the_documented_headers_units_and_bodies(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let (seller, destination) = funded_seller(&app, &fincra, 250_050).await;

    let checkout = &fincra.requests_to("POST", "/checkout/payments")[0];
    assert_eq!(checkout.headers["api-key"], "sk_test_secret");
    assert_eq!(checkout.headers["x-pub-key"], "pk_test_public");
    assert_eq!(checkout.body["amount"], "2500.50", "major units, exact, no floats");
    assert_eq!(checkout.body["currency"], "NGN");
    assert_eq!(checkout.body["customer"]["name"], "Test User");
    assert!(checkout.body["customer"]["email"].as_str().unwrap().contains('@'));
    assert!(checkout.body["reference"].as_str().unwrap().starts_with("dep_"));
    let verify = &fincra.requests_to("GET", "/checkout/payments/merchant-reference/")[0];
    assert_eq!(verify.headers["api-key"], "sk_test_secret");
    assert_eq!(verify.headers["x-business-id"], BUSINESS);
    let resolve = &fincra.requests_to("POST", "/core/accounts/resolve")[0];
    assert_eq!(
        resolve.body,
        json!({"accountNumber": "2345678901", "bankCode": "058", "type": "nuban", "currency": "NGN"})
    );

    let (status, payout) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-headers",
        json!({"amount": 30_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(payout["status"], "pending", "FinCra answers `processing`");
    let sent = &fincra.requests_to("POST", "/disbursements/payouts")[0];
    assert_eq!(sent.headers["api-key"], "sk_test_secret");
    assert_eq!(sent.body["business"], BUSINESS);
    assert_eq!(sent.body["amount"], "300.00");
    assert_eq!(sent.body["sourceCurrency"], "NGN");
    assert_eq!(sent.body["destinationCurrency"], "NGN");
    assert_eq!(sent.body["paymentDestination"], "bank_account");
    assert_eq!(sent.body["customerReference"], payout["id"]);
    assert_eq!(sent.body["beneficiary"]["accountNumber"], "2345678901");
    assert_eq!(sent.body["beneficiary"]["bankCode"], "058");
    assert_eq!(sent.body["beneficiary"]["accountHolderName"], "USER TEST");
    assert_eq!(sent.body["beneficiary"]["type"], "individual");
    assert_eq!(sent.body["beneficiary"]["country"], "NG");

    // Reconciliation fetches by customer reference.
    fincra.settle_payout(payout["id"].as_str().unwrap(), "successful");
    let report = app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    let fetch = &fincra.requests_to("GET", "/disbursements/payouts/customer-reference/")[0];
    assert_eq!(
        fetch.path,
        format!(
            "/disbursements/payouts/customer-reference/{}",
            payout["id"].as_str().unwrap()
        )
    );
    assert_eq!(fetch.headers["api-key"], "sk_test_secret");
    assert_eq!(
        transaction(&app, &seller, payout["id"].as_str().unwrap()).await["status"],
        "completed"
    );
    assert_eq!(available(&app, &seller).await, 250_050 - 30_000);
    assert_books_balance(&app).await;
}

async fn a_deposit_is_credited_only_when_fincra_confirms_the_full_amount(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let user = app.user("client").await;
    let response = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .header("idempotency-key", "deposit-1")
        .header("x-request-id", "deposit-request-1")
        .json(&json!({"amount": 100_000, "currency": "NGN"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["transaction"]["status"], "pending");
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["checkout_url"],
        format!("https://checkout.fincra.test/pay/{reference}")
    );
    assert_eq!(fincra.requests()[0].headers["x-request-id"], "deposit-request-1");
    assert_eq!(
        available(&app, &user).await,
        0,
        "nothing credited before FinCra confirms"
    );

    // The payload says paid; FinCra's own record does not (yet): nothing
    // moves, and the event is not marked processed (a later delivery counts).
    let claim = json!({"event": "charge.successful", "data": {"reference": reference, "status": "success", "amountReceived": 1000}});
    for _ in 0..2 {
        let (status, ack) = webhook(&app, &claim).await;
        assert_eq!((status, ack["outcome"].as_str()), (200, Some("deferred")), "{ack}");
    }
    assert_eq!(available(&app, &user).await, 0, "a webhook is a hint, not proof");

    // FinCra records the payment. Signatures: missing, wrong secret,
    // tampered body → 401 and nothing moves.
    let paid = fincra.pay_checkout(&reference, json!(1000), None);
    let event = json!({"event": "charge.successful", "data": paid});
    let raw = serde_json::to_vec(&event).unwrap();
    assert_eq!(webhook_raw(&app, &raw, None).await.0, 401);
    let wrong = amani::gateway::webhook::sign(b"not-the-secret", &raw);
    assert_eq!(webhook_raw(&app, &raw, Some(wrong)).await.0, 401);
    let signature = amani::gateway::webhook::sign(SECRET.as_bytes(), &raw);
    let tampered =
        serde_json::to_vec(&json!({"event": "charge.successful", "data": {"reference": "dep_other"}})).unwrap();
    assert_eq!(webhook_raw(&app, &tampered, Some(signature)).await.0, 401);
    assert_eq!(available(&app, &user).await, 0);

    // A payout event naming a deposit's reference is looked up among
    // payouts only; a reference we never issued is recorded and answered 200.
    let (_, ack) = webhook(
        &app,
        &json!({"event": "payout.successful", "data": {"customerReference": reference, "status": "successful"}}),
    )
    .await;
    assert_eq!(ack["outcome"], "kind_mismatch");
    let (_, ack) = webhook(
        &app,
        &json!({"event": "charge.successful", "data": {"merchantReference": "dep_never_issued"}}),
    )
    .await;
    assert_eq!(ack["outcome"], "unknown_reference");
    assert_eq!(available(&app, &user).await, 0);

    // Signed over the compact form, delivered pretty-printed: verified; FinCra
    // says paid in full, so the deposit is credited, once.
    let compact =
        serde_json::to_vec(&json!({"event": "charge.successful", "data": {"merchantReference": reference, "id": 2}}))
            .unwrap();
    let signature = amani::gateway::webhook::sign(SECRET.as_bytes(), &compact);
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&compact).unwrap()).unwrap();
    let (status, ack) = webhook_raw(&app, &pretty, Some(signature)).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("processed")), "{ack}");
    assert_eq!(available(&app, &user).await, 100_000);
    let (status, ack) = webhook(&app, &event).await;
    assert_eq!(
        (status, ack["outcome"].as_str()),
        (200, Some("duplicate")),
        "a replay is acknowledged and ignored"
    );
    assert_eq!(available(&app, &user).await, 100_000);
    assert_eq!(transfers(&app, &reference, "deposit").await, 1);
    let report = app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(report.examined, 0, "nothing left pending: {report:?}");

    // Over- and under-payments, as FinCra's record reports them: held for
    // review, never credited (neither the expected nor the received amount).
    for (key, received, variance) in [
        ("over", json!("1500.00"), Some("overpayment")),
        ("under", json!(500), None),
    ] {
        let (status, body) = keyed_post(
            &app,
            &user,
            "/api/v1/wallet/deposit",
            key,
            json!({"amount": 100_000, "currency": "NGN"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let other = body["transaction"]["id"].as_str().unwrap().to_owned();
        let data = fincra.pay_checkout(&other, received, variance);
        let (status, ack) = webhook(&app, &json!({"event": "charge.successful", "data": data})).await;
        assert_eq!((status, ack["outcome"].as_str()), (200, Some("processed")), "{ack}");
        let record = transaction(&app, &user, &other).await;
        assert_eq!(record["status"], "review", "{key}: {record}");
        assert!(record["failure_reason"].as_str().is_some(), "{record}");
    }
    assert_eq!(
        available(&app, &user).await,
        100_000,
        "only the clean deposit is credited"
    );

    // A replay of the key returns the record as it is now.
    let replay = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .header("idempotency-key", "deposit-1")
        .json(&json!({"amount": 100_000, "currency": "NGN"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (status, replayed) = json(replay).await;
    assert_eq!(
        (status, replayed["transaction"]["status"].as_str()),
        (201, Some("completed"))
    );
    assert_books_balance(&app).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"amani_webhooks_received_total{provider="fincra",outcome="rejected"} 3"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="unknown_reference"} 1"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="kind_mismatch"} 1"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="deferred"} 2"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="processed"} 3"#,
        r#"amani_payment_mispayments_total{kind="deposit"} 2"#,
        r#"amani_webhooks_received_total{provider="fincra",outcome="duplicate"} 1"#,
        r#"amani_gateway_requests_total{provider="fincra",operation="checkout",outcome="success"} 3"#,
        // Created at zero for the configured provider before its first call.
        r#"amani_gateway_request_duration_seconds_count{provider="fincra",operation="payout"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line}");
    }
    // And not for the provider this instance never calls.
    assert!(!metrics.contains(r#"amani_gateway_requests_total{provider="sandbox""#));
    assert!(!metrics.contains(r#"amani_gateway_request_duration_seconds_count{provider="sandbox""#));
}

async fn a_payout_that_timed_out_after_fincra_paid_is_settled_once_by_reconciliation(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[("FINCRA_TIMEOUT_SECONDS", "1")]).await;
    let (seller, destination) = funded_seller(&app, &fincra, 100_000).await;
    fincra.delay_payouts(Duration::from_secs(3));
    let (status, payout) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-timeout",
        json!({"amount": 40_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(
        payout["status"], "pending",
        "no definite answer: pending, never rolled back"
    );
    let reference = payout["id"].as_str().unwrap().to_owned();
    assert_eq!(available(&app, &seller).await, 60_000);
    assert_eq!(reserved(&app, &seller).await, 40_000, "the money stays reserved");
    assert_eq!(
        fincra.requests_to("POST", "/disbursements/payouts").len(),
        1,
        "never sent again blind"
    );
    let health: Value = app.get("/api/v1/health").await.json().await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["gateway"]["last_call"]["outcome"], "timeout");
    fincra.delay_payouts(Duration::ZERO);

    // The client retries with the same key: the record as it stands, no new call.
    let (status, retried) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-timeout",
        json!({"amount": 40_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!((status, retried["id"].as_str()), (201, Some(reference.as_str())));
    assert_eq!(fincra.requests_to("POST", "/disbursements/payouts").len(), 1);

    // FinCra paid it. Reconciliation settles it, once.
    fincra.settle_payout(&reference, "successful");
    let report = app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!((report.examined, report.settled), (1, 1), "{report:?}");
    let again = app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(again.examined, 0, "nothing left pending");
    assert_eq!(transaction(&app, &seller, &reference).await["status"], "completed");
    assert_eq!(
        (available(&app, &seller).await, reserved(&app, &seller).await),
        (60_000, 0)
    );
    // The late webhook changes nothing.
    let late = json!({"event": "payout.successful", "data": {"customerReference": reference, "status": "successful"}});
    let (status, _) = webhook(&app, &late).await;
    assert_eq!(status, 200);
    assert_eq!(
        (available(&app, &seller).await, reserved(&app, &seller).await),
        (60_000, 0)
    );
    assert_eq!(
        transfers(&app, &reference, "withdrawal").await,
        1,
        "paid out exactly once"
    );
    assert_eq!(fincra.requests_to("POST", "/disbursements/payouts").len(), 1);
    assert_books_balance(&app).await;
}

async fn a_webhook_that_arrives_before_the_payout_call_returns_settles_it_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let (seller, destination) = funded_seller(&app, &fincra, 50_000).await;
    fincra.send_webhook_before_answering(Some(EarlyWebhook {
        url: app.url("/api/v1/webhooks/payments/fincra"),
        secret: SECRET.into(),
    }));
    let (status, payout) = money_post_key(
        &app,
        &seller,
        json!({"amount": 20_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(
        payout["status"], "completed",
        "the webhook, verified at FinCra, settled it first"
    );
    let reference = payout["id"].as_str().unwrap();
    assert_eq!(transfers(&app, reference, "withdrawal").await, 1);
    assert_eq!(
        (available(&app, &seller).await, reserved(&app, &seller).await),
        (30_000, 0)
    );
    assert_books_balance(&app).await;
}

async fn money_post_key(app: &TestApp, user: &TestUser, body: Value) -> (u16, Value) {
    let key = uuid::Uuid::new_v4().to_string();
    keyed_post(app, user, "/api/v1/wallet/withdraw", &key, body).await
}

async fn a_refused_payout_returns_the_reservation_and_replays_as_refused(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let (seller, destination) = funded_seller(&app, &fincra, 50_000).await;
    // A payout FinCra executed and then answered 500: ambiguous, pending.
    fincra.fail_payouts_after_executing(Some(500));
    let (status, pending) = money_post_key(
        &app,
        &seller,
        json!({"amount": 10_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (201, Some("pending")),
        "{pending}"
    );
    fincra.fail_payouts_after_executing(None);
    // FinCra says it failed: the reservation comes back, once.
    let reference = pending["id"].as_str().unwrap().to_owned();
    fincra.settle_payout(&reference, "failed");
    let (status, ack) = webhook(
        &app,
        &json!({"event": "payout.failed", "data": {"customerReference": reference}}),
    )
    .await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("processed")));
    let record = transaction(&app, &seller, &reference).await;
    assert_eq!(record["status"], "reversed");
    assert_eq!(record["failure_reason"], "beneficiary account closed");
    assert_eq!(
        (available(&app, &seller).await, reserved(&app, &seller).await),
        (50_000, 0)
    );
    // A replay of a refused operation answers as refused (422), every time.
    let (status, problem) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-refused",
        json!({"amount": 10_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 201, "{problem}");
    fincra.settle_payout(problem["id"].as_str().unwrap(), "failed");
    let report = app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    let (status, problem) = keyed_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        "wd-refused",
        json!({"amount": 10_000, "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("beneficiary account closed"),
        "{problem}"
    );
    // Another destination or currency than registered: clear 4xx, nothing reserved.
    let (status, problem) = money_post_key(
        &app,
        &seller,
        json!({"amount": 1_000, "currency": "GHS", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("currency"), "{problem}");
    let (status, _) = money_post_key(
        &app,
        &seller,
        json!({"amount": 1_000, "currency": "NGN", "destination_id": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = money_post_key(
        &app,
        &seller,
        json!({"amount": 1_000, "currency": "NGN", "destination_id": "not-an-id"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        (available(&app, &seller).await, reserved(&app, &seller).await),
        (50_000, 0)
    );
    assert_books_balance(&app).await;
}

/// Sign-up and `GET /auth/me` while deposits wait 5 s on the gateway: with
/// the gateway called outside any transaction and with no pooled connection
/// held, unrelated requests are as fast as without (a generous 2× bound
/// plus a small absolute allowance for a noisy machine).
async fn a_slow_gateway_does_not_slow_unrelated_requests(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(
        &db.url,
        &[
            ("SANDBOX_DELAY_MS", "5000"),
            ("DATABASE_MAX_CONNECTIONS", "2"),
            ("RATE_LIMIT_ENABLED", "false"),
        ],
    )
    .await;
    let user = app.user("client").await;
    async fn unrelated(app: &TestApp, user: &TestUser) -> Duration {
        let started = Instant::now();
        let email = format!("{}@example.com", uuid::Uuid::new_v4());
        let response = app.signup(&email, "client").await;
        assert_eq!(response.status(), 201);
        let me = app
            .authed(Method::GET, "/api/v1/auth/me", &user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        started.elapsed()
    }
    let mut quiet = Vec::new();
    for _ in 0..3 {
        quiet.push(unrelated(&app, &user).await);
    }
    // Three deposits in flight: each would hold a connection (of two) and,
    // on SQLite, the write lock, if the gateway were called inside its transaction.
    let deposits = spawn_deposits(&app, &user, 3, 1_000, "slow");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(unrelated(&app, &user).await);
    }
    quiet.sort();
    busy.sort();
    let (quiet, busy) = (quiet[1], busy[1]);
    assert!(
        busy <= quiet * 2 + Duration::from_millis(250),
        "with a 5 s gateway: {busy:?} vs {quiet:?} without"
    );
    assert!(busy < Duration::from_secs(2), "{busy:?}");
    expect_created(deposits).await;
    assert_eq!(available(&app, &user).await, 3_000);
    assert_books_balance(&app).await;
}

async fn two_replicas_reconciling_one_database_settle_each_record_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let first = fincra_app(&db, &fincra, &[]).await;
    let second = fincra_app(&db, &fincra, &[]).await;
    let (seller, destination) = funded_seller(&first, &fincra, 100_000).await;
    let mut references = Vec::new();
    for _ in 0..8 {
        let (status, payout) = money_post_key(
            &first,
            &seller,
            json!({"amount": 1_000, "currency": "NGN", "destination_id": destination}),
        )
        .await;
        assert_eq!((status, payout["status"].as_str()), (201, Some("pending")), "{payout}");
        references.push(payout["id"].as_str().unwrap().to_owned());
    }
    for reference in &references {
        fincra.settle_payout(reference, "successful");
    }
    let (a, b) = tokio::join!(
        first.state.payments.reconcile_once(false),
        second.state.payments.reconcile_once(false)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.settled + b.settled, 8, "{a:?} {b:?}");
    for reference in &references {
        assert_eq!(transfers(&first, reference, "withdrawal").await, 1, "{reference}");
    }
    let lookups = fincra
        .requests_to("GET", "/disbursements/payouts/customer-reference/")
        .len();
    assert!(lookups <= 8, "one lookup per record, not one per replica: {lookups}");
    assert_eq!(
        (available(&first, &seller).await, reserved(&first, &seller).await),
        (92_000, 0)
    );
    assert_books_balance(&first).await;
}

async fn payout_destinations_must_resolve_to_the_verified_name(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let admin = app.admin().await;
    let unverified = app.user("freelancer").await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    let add = async |user: &TestUser, body: Value| {
        json(
            app.authed(Method::POST, "/api/v1/wallet/destinations", &user.token)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let bank = |number: &str| json!({"kind": "bank_account", "bank_code": "058", "account_number": number, "account_holder_name": "Test User"});
    fincra.add_account("2345678901", "Test A. User");
    fincra.add_account("0987654321", "Grace Okoro");
    assert_eq!(add(&unverified, bank("2345678901")).await.0, 403, "KYC first");
    let (status, problem) = add(&seller, bank("0987654321")).await;
    assert_eq!(status, 422, "someone else's account: {problem}");
    assert!(
        !problem["detail"].as_str().unwrap().contains("Grace"),
        "the stranger's name is not revealed: {problem}"
    );
    let (status, problem) = add(&seller, bank("1111111111")).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("could not be resolved"),
        "{problem}"
    );
    let (status, problem) = add(&seller, bank("12345")).await;
    assert_eq!(status, 422);
    assert!(problem["detail"].as_str().unwrap().contains("10 digits"), "{problem}");
    let (status, problem) = add(
        &seller,
        json!({"kind": "mobile_money", "account_number": "233541234567", "account_holder_name": "Test User"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("mobile_money_code"),
        "{problem}"
    );
    let (status, destination) = add(&seller, bank("2345678901")).await;
    assert_eq!(status, 201, "{destination}");
    assert_eq!(destination["resolved_name"], "Test A. User");
    assert_eq!(add(&seller, bank("2345678901")).await.0, 409, "registered once");
    let (_, list) = json(
        app.authed(Method::GET, "/api/v1/wallet/destinations", &seller.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, others) = json(
        app.authed(Method::GET, "/api/v1/wallet/destinations", &unverified.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(others["items"].as_array().unwrap().len(), 0, "each user sees their own");
    let path = format!("/api/v1/wallet/destinations/{}", destination["id"].as_str().unwrap());
    let delete = async |user: &TestUser| {
        app.authed(Method::DELETE, &path, &user.token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(delete(&unverified).await, 404, "not theirs");
    assert_eq!(delete(&seller).await, 204);
    assert_eq!(delete(&seller).await, 404, "gone");

    // The sandbox follows FinCra's documented test accounts.
    let sandbox = TestApp::spawn_ready(&db.url, &[]).await;
    let (status, _) = json(sandbox.authed(Method::POST, "/api/v1/wallet/destinations", &seller.token)
        .json(&json!({"kind": "bank_account", "bank_code": "044", "account_number": "0123456789", "account_holder_name": "Test User"}))
        .send().await.unwrap()).await;
    assert_eq!(status, 422, "John Doe's test account fails to resolve");
    let (status, _) = json(sandbox.authed(Method::POST, "/api/v1/wallet/destinations", &seller.token)
        .json(&json!({"kind": "bank_account", "bank_code": "305", "account_number": "0987654321", "account_holder_name": "Test User"}))
        .send().await.unwrap()).await;
    assert_eq!(status, 422, "Grace Okoro's test account is not Test User's");
}

async fn a_stuck_payment_is_counted_and_mispayments_are_held_for_review(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(
        &db.url,
        &[
            ("SANDBOX_OUTCOME", "mispay"),
            ("RECONCILE_ENABLED", "false"),
            ("RECONCILE_MIN_AGE_SECONDS", "0"),
        ],
    )
    .await;
    let user = app.user("client").await;
    let (status, body) = keyed_post(
        &app,
        &user,
        "/api/v1/wallet/deposit",
        "mispaid",
        json!({"amount": 10_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["transaction"]["status"], "review",
        "underpaid: held for a person, not credited"
    );
    assert_eq!(body["transaction"]["amount_received"], 5_000);
    assert_eq!(available(&app, &user).await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"amani_payment_mispayments_total{kind="deposit"} 1"#),
        "{metrics}"
    );

    // A payment the provider never finishes: pending, counted, and stuck
    // once older than the limit (made old here by editing its time).
    let pending_app = TestApp::spawn_ready(
        &db.url,
        &[
            ("SANDBOX_OUTCOME", "pending"),
            ("RECONCILE_ENABLED", "false"),
            ("RECONCILE_MIN_AGE_SECONDS", "0"),
        ],
    )
    .await;
    let (status, body) = keyed_post(
        &pending_app,
        &user,
        "/api/v1/wallet/deposit",
        "never",
        json!({"amount": 10_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!((status, body["transaction"]["status"].as_str()), (201, Some("pending")));
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    {
        let mut conn = pending_app.state.db.acquire().await.unwrap();
        let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
        obs.run(
            "test.age",
            sqlx::query("update escrow_transactions set created_at = '2020-01-01T00:00:00.000000Z' where id = $1")
                .bind(&reference)
                .execute(conn),
        )
        .await
        .unwrap();
    }
    let report = pending_app.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(
        (report.examined, report.still_pending, report.stuck),
        (1, 1, 1),
        "{report:?}"
    );
    let metrics = crate::metrics::scrape_until(&pending_app, "amani_payments_stuck 1").await;
    assert!(
        metrics.contains(r#"amani_payments_pending{kind="deposit",age="gt_24h"} 1"#),
        "{metrics}"
    );
    // The console's operator view lists it, marked stuck.
    let admin = pending_app.admin().await;
    let session = crate::console::log_in(&pending_app, &admin).await;
    let (status, live) = session.get(&pending_app, "/console/live").await;
    assert_eq!(status, 200);
    let row = live
        .split("<tr>")
        .find(|row| row.contains(&reference))
        .expect("the pending deposit listed");
    assert!(row.contains(">stuck</strong>") && row.contains("10,000 NGN"), "{row}");
    assert_books_balance(&app).await;
}

#[test]
fn production_refuses_the_sandbox_gateway_and_an_incomplete_fincra() {
    let dir = tempfile::tempdir().unwrap();
    let run = |vars: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_amani"))
            .env_clear()
            .current_dir(dir.path())
            .env("ENVIRONMENT", "production")
            .env("SECRET_KEY", "0123456789abcdef0123456789abcdef-prod")
            .envs(vars.iter().copied())
            .arg("check-config")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("PAYMENT_GATEWAY") && stderr.contains("PAYMENT_GATEWAY=fincra"),
        "{stderr}"
    );
    let (code, stderr) = run(&[("PAYMENT_GATEWAY", "fincra"), ("FINCRA_API_KEY", "sk")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("FINCRA_PUBLIC_KEY"), "{stderr}");
    let (code, stderr) = run(&[
        ("METRICS_TOKEN", "prometheus-scrape-token"),
        ("PAYMENT_GATEWAY", "fincra"),
        ("FINCRA_API_KEY", "sk"),
        ("FINCRA_PUBLIC_KEY", "pk"),
        ("FINCRA_BUSINESS_ID", BUSINESS),
        ("FINCRA_WEBHOOK_SECRET", "whsec"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// kill -9 between step 1 (recorded, reserved) and step 3 (settled): after a
/// restart, reconciliation settles the payout from FinCra's record.
async fn a_payout_interrupted_by_kill_9_is_settled_after_restart(engine: Engine) {
    let db = TestDb::create(engine).await;
    let fincra = FakeFincra::start().await;
    let app = fincra_app(&db, &fincra, &[]).await;
    let (seller, destination) = funded_seller(&app, &fincra, 50_000).await;
    app.shutdown().await.unwrap();
    fincra.delay_payouts(Duration::from_secs(30));
    let uri = fincra.uri();
    let server = crate::server::Server::start(&[
        ("DATABASE_URL", db.url.as_str()),
        ("PAYMENT_GATEWAY", "fincra"),
        ("FINCRA_API_KEY", "sk_test_secret"),
        ("FINCRA_PUBLIC_KEY", "pk_test_public"),
        ("FINCRA_BUSINESS_ID", BUSINESS),
        ("FINCRA_BASE_URL", uri.as_str()),
        ("FINCRA_WEBHOOK_SECRET", SECRET),
        ("FINCRA_TIMEOUT_SECONDS", "60"),
        ("RECONCILE_ENABLED", "false"),
    ]);
    server.wait_until_ready().await;
    let (client, url, token) = (
        reqwest::Client::new(),
        server.url("/api/v1/wallet/withdraw"),
        seller.token.clone(),
    );
    let body = json!({"amount": 20_000, "currency": "NGN", "destination_id": destination});
    let request = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", "wd-killed")
            .json(&body)
            .send()
            .await
    });
    crate::server::eventually(Duration::from_secs(10), "the payout call", async || {
        (!fincra.requests_to("POST", "/disbursements/payouts").is_empty()).then_some(())
    })
    .await;
    drop(server); // SIGKILL, mid-call
    assert!(request.await.unwrap().is_err(), "the connection died with the process");
    let reference = fincra.requests_to("POST", "/disbursements/payouts")[0].body["customerReference"]
        .as_str()
        .unwrap()
        .to_owned();
    fincra.settle_payout(&reference, "successful");

    let restarted = fincra_app(&db, &fincra, &[]).await;
    assert_eq!(
        reserved(&restarted, &seller).await,
        20_000,
        "step 1 committed before the call"
    );
    let report = restarted.state.payments.reconcile_once(false).await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    assert_eq!(
        transaction(&restarted, &seller, &reference).await["status"],
        "completed"
    );
    assert_eq!(
        (
            available(&restarted, &seller).await,
            reserved(&restarted, &seller).await
        ),
        (30_000, 0)
    );
    assert_eq!(fincra.requests_to("POST", "/disbursements/payouts").len(), 1);
    assert_books_balance(&restarted).await;
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
