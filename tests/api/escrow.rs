//! Escrow and the ledger: money is never created, lost or double-spent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};
use crate::kyc::{form, submit};

/// A user whose KYC an admin approved.
pub async fn verified_user(app: &TestApp, role: &str, admin: &TestUser) -> TestUser {
    let user = app.user(role).await;
    let (status, submission) = json(submit(app, &user, form("kyc", "A1234567890", None)).await).await;
    assert_eq!(status, 201, "{submission}");
    let id = submission["id"].as_str().unwrap();
    let response = app
        .authed(Method::POST, &format!("/api/v1/admin/kyc/{id}/approve"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    user
}

/// A money-moving POST with a fresh Idempotency-Key.
pub async fn money_post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> (u16, Value) {
    let key = uuid::Uuid::new_v4().to_string();
    keyed_post(app, user, path, &key, body).await
}

/// The buyer funds one milestone of their project (201, or the test
/// fails); answers the hold's body.
pub async fn hold_milestone(app: &TestApp, buyer: &TestUser, project: &str, milestone: &str) -> Value {
    let (status, body) = money_post(
        app,
        buyer,
        "/api/v1/escrow/hold",
        json!({"project_id": project, "milestone_id": milestone}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn keyed_post(app: &TestApp, user: &TestUser, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = app
        .authed(Method::POST, path, &user.token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    json(response).await
}

pub async fn deposit(app: &TestApp, user: &TestUser, amount: i64) {
    let (status, body) = money_post(
        app,
        user,
        "/api/v1/wallet/deposit",
        json!({"amount": amount, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["transaction"]["status"], "completed",
        "the sandbox confirms at once"
    );
}

/// Registers a Nigerian bank account for `user` (the sandbox resolves any
/// account outside FinCra's test set to the holder name given) and returns
/// its id. The user must have an approved KYC.
pub async fn bank_destination(app: &TestApp, user: &TestUser) -> String {
    let response = app
        .authed(Method::POST, "/api/v1/wallet/destinations", &user.token)
        .json(
            &json!({"kind": "bank_account", "bank_code": "058", "account_number": "1000000001",
                      "account_holder_name": "Test User"}),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub async fn available(app: &TestApp, user: &TestUser) -> i64 {
    let (_, wallet) = json(
        app.authed(Method::GET, "/api/v1/wallet", &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    wallet["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == "NGN")
        .map_or(0, |b| b["available"].as_i64().unwrap())
}

/// The ledger check, asserted balanced; returns NGN held in escrow.
pub async fn assert_books_balance(app: &TestApp) -> i64 {
    let mut conn = app.state.db.acquire().await.unwrap();
    let report = amani::store::ledger::check(&mut conn).await.unwrap();
    assert!(report.balanced, "ledger broken: {:#?}", report.problems);
    report.held_in_escrow.get("NGN").copied().unwrap_or(0)
}

/// A project between `buyer` and `seller`, sent and accepted: (project id, milestone ids).
pub async fn active_project(
    app: &TestApp,
    buyer: &TestUser,
    seller: &TestUser,
    amounts: &[i64],
) -> (String, Vec<String>) {
    let milestones: Vec<Value> = amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| json!({"title": format!("Milestone {}", i + 1), "amount": amount}))
        .collect();
    let (status, project) = json(
        app.authed(Method::POST, "/api/v1/projects", &buyer.token)
            .json(&json!({"title": "Website", "seller_id": seller.id, "currency": "NGN", "milestones": milestones}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{project}");
    let id = project["id"].as_str().unwrap().to_owned();
    let send = app
        .authed(Method::POST, &format!("/api/v1/projects/{id}/send"), &buyer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 200);
    let accept = app
        .authed(Method::POST, &format!("/api/v1/projects/{id}/accept"), &seller.token)
        .send()
        .await
        .unwrap();
    assert_eq!(accept.status(), 200);
    let ids = project["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    (id, ids)
}

/// The seller submits milestone `m` and the buyer approves it.
pub async fn delivered_and_approved(app: &TestApp, seller: &TestUser, buyer: &TestUser, m: &str) {
    let (status, body) = post(app, seller, &format!("/api/v1/milestones/{m}/submit"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let approve = json!({"approve": true});
    let (status, body) = post(app, buyer, &format!("/api/v1/milestones/{m}/approve"), approve).await;
    assert_eq!(status, 200, "{body}");
}

pub async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> (u16, Value) {
    json(
        app.authed(Method::POST, path, &user.token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

both_engines!(
    the_full_escrow_cycle_keeps_exact_balances_and_balanced_books,
    illegal_transitions_are_refused_and_leave_the_ledger_unchanged,
    idempotency_keys_replay_the_first_response_and_refuse_another_body,
    fifty_concurrent_releases_of_one_milestone_pay_once,
    concurrent_holds_beyond_the_balance_never_overdraw,
    the_same_key_sent_twenty_times_at_once_moves_money_once,
    the_same_key_sent_at_once_holds_and_releases_once,
    a_dispute_is_resolved_by_a_split_and_a_cancel_refunds_the_buyer,
    a_client_names_the_freelancer_by_email,
    a_key_found_at_commit_rolls_back_the_transaction_with_its_audit_and_events,
    a_hold_of_a_hundred_milestones_commits_in_one_statement,
    holds_of_different_projects_credit_different_fee_accounts_whose_sum_is_the_platforms_fees,
);

/// The fee income is split over 16 accounts a currency (opened by
/// migration), so that holds of different projects do not queue on one
/// row: each project credits its own shard, and `ledger check` reports
/// their sum.
async fn holds_of_different_projects_credit_different_fee_accounts_whose_sum_is_the_platforms_fees(engine: Engine) {
    use amani::domain::money::Currency;
    use amani::store::ledger::{self, Account, FEE_SHARDS};

    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    let mut conn = app.state.db.acquire().await.unwrap();
    let opened: Vec<(String,)> = {
        let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
        obs.run(
            "test.fee_accounts",
            sqlx::query_as("select id from ledger_accounts where kind = 'platform_fees'").fetch_all(&mut *conn),
        )
        .await
        .unwrap()
    };
    let opened: std::collections::BTreeSet<String> = opened.into_iter().map(|(id,)| id).collect();
    let expected: std::collections::BTreeSet<String> = Currency::ALL
        .into_iter()
        .flat_map(|currency| (0..FEE_SHARDS).map(move |shard| Account::fee_shard(shard, currency).id()))
        .collect();
    assert_eq!(opened, expected, "every shard of every currency opened by migration");
    drop(conn);

    deposit(&app, &buyer, 8 * 10_250).await;
    let mut projects = Vec::new();
    for _ in 0..8 {
        let (project, milestones) = active_project(&app, &buyer, &seller, &[10_000]).await;
        hold_milestone(&app, &buyer, &project, &milestones[0]).await;
        projects.push(project);
    }
    let mut conn = app.state.db.acquire().await.unwrap();
    let mut credited = std::collections::BTreeMap::new();
    for project in &projects {
        *credited.entry(Account::fees(project, Currency::Ngn).id()).or_insert(0) += 250;
    }
    assert!(credited.len() > 1, "eight projects on one shard: {credited:?}");
    let mut sum = 0;
    for shard in 0..FEE_SHARDS {
        let account = Account::fee_shard(shard, Currency::Ngn);
        let balance = ledger::balance(&mut conn, &account).await.unwrap();
        assert_eq!(
            balance,
            credited.get(&account.id()).copied().unwrap_or(0),
            "{}",
            account.id()
        );
        sum += balance;
    }
    assert_eq!(sum, 8 * 250);
    let report = ledger::check(&mut conn).await.unwrap();
    assert!(report.balanced, "{:#?}", report.problems);
    assert_eq!(report.platform_fees.get("NGN"), Some(&(8 * 250)), "{report:#?}");
}

/// The largest hold there is (every milestone of a project with the most
/// milestones allowed) writes its records, 200 transfers, audit records,
/// events and key in the commit's one statement, within both engines'
/// limits on bound values, and the books balance.
async fn a_hold_of_a_hundred_milestones_commits_in_one_statement(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    let amounts = vec![1_000; amani::domain::escrow::MAX_MILESTONES];
    deposit(&app, &buyer, 1_000 * 100 + 25 * 100).await;
    let (project, _) = active_project(&app, &buyer, &seller, &amounts).await;
    let (status, hold) = money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{hold}");
    let held = hold["transactions"].as_array().unwrap();
    assert_eq!(held.len(), 100);
    assert!(held.iter().all(|t| t["amount"] == 1_000 && t["fee"] == 25), "{hold}");
    assert_eq!(available(&app, &buyer).await, 0);
    let (status, listed) = json(
        app.authed(
            Method::GET,
            "/api/v1/escrow/transactions?type=hold&page_size=100",
            &buyer.token,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(100), "{listed}");
    assert_books_balance(&app).await;
}

/// A transaction whose idempotency key was stored first (by a duplicate
/// that committed meanwhile) is rolled back whole: the audit record and
/// the event written in the same statement as its key insert are gone
/// with it, and the key keeps the first response.
async fn a_key_found_at_commit_rolls_back_the_transaction_with_its_audit_and_events(engine: Engine) {
    use amani::domain::event::EventType;
    use amani::store::audit::AuditEvent;
    use amani::store::events::NewEvent;
    use amani::store::idempotency::{self, Record, Used};

    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let user = app.user("client").await;
    let subject = uuid::Uuid::now_v7().to_string();
    let attempt = async |action: &str, body: &str| -> bool {
        let mut tx = app.state.db.begin().await.unwrap();
        tx.audit(AuditEvent {
            actor_id: Some(&user.id),
            action,
            target_type: "project",
            target_id: Some(&subject),
            request_id: None,
            details: json!({}),
        });
        tx.emit(NewEvent {
            event_type: EventType::ProjectCreated,
            user_id: Some(user.id.clone()),
            counterparty_id: None,
            project_id: Some(subject.clone()),
            subject_id: subject.clone(),
            data: json!({ "action": action }),
        });
        let key = Record {
            user_id: &user.id,
            key: "commit-key",
            request_hash: "same",
            status: 201,
            body,
        };
        tx.commit_with_key(&key).await.unwrap()
    };
    assert!(attempt("test.first", r#"{"n":1}"#).await, "the first stores its key");
    assert!(!attempt("test.second", r#"{"n":2}"#).await, "the second finds it");

    let trail = crate::accounts::audit_of(&app, &admin, &subject).await;
    let actions: Vec<&str> = trail.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["test.first"], "{trail:#?}");
    let (status, events) = crate::events::events(&app, &admin, &format!("?project_id={subject}")).await;
    assert_eq!(status, 200, "{events}");
    let written: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"]["action"])
        .collect();
    assert_eq!(written, [&json!("test.first")], "{events}");
    let mut conn = app.state.db.acquire().await.unwrap();
    match idempotency::find(&mut conn, &user.id, "commit-key", "same")
        .await
        .unwrap()
    {
        Some(Used::Replay { status, body }) => assert_eq!((status, body.as_str()), (201, r#"{"n":1}"#)),
        _ => panic!("the key keeps the first response"),
    }
}

async fn a_client_names_the_freelancer_by_email(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let buyer = app.user("client").await;
    let seller = app.user("freelancer").await;
    let other_client = app.user("client").await;
    let create = |seller_fields: Value| {
        let mut body = json!({"title": "Logo", "currency": "NGN", "milestones": [{"title": "Draft", "amount": 5_000}]});
        if let (Some(body), Some(fields)) = (body.as_object_mut(), seller_fields.as_object()) {
            body.extend(fields.clone());
        }
        let request = app.authed(Method::POST, "/api/v1/projects", &buyer.token).json(&body);
        async move { json(request.send().await.unwrap()).await }
    };

    // Any letter case finds the account, as login does.
    let (status, project) = create(json!({"seller_email": seller.email.to_uppercase()})).await;
    assert_eq!(status, 201, "{project}");
    assert_eq!(project["seller_id"], seller.id.as_str(), "{project}");

    // Unknown, a client's, or malformed: 422 naming the field; an unknown
    // address and a client's get the same answer.
    let (status, unknown) = create(json!({"seller_email": "nobody-here@example.com"})).await;
    assert_eq!(status, 422, "{unknown}");
    let (status, client) = create(json!({"seller_email": other_client.email})).await;
    assert_eq!(status, 422, "{client}");
    assert_eq!(unknown["detail"], client["detail"]);
    assert!(
        unknown["detail"].as_str().unwrap().contains("seller_email"),
        "{unknown}"
    );
    let (status, malformed) = create(json!({"seller_email": "not-an-address"})).await;
    assert_eq!(status, 422, "{malformed}");
    assert!(
        malformed["detail"].as_str().unwrap().contains("seller_email"),
        "{malformed}"
    );

    // Exactly one of the two.
    for fields in [json!({}), json!({"seller_id": seller.id, "seller_email": seller.email})] {
        let (status, body) = create(fields).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("exactly one"), "{body}");
    }
}

async fn the_full_escrow_cycle_keeps_exact_balances_and_balanced_books(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;

    deposit(&app, &buyer, 100_000).await;
    assert_eq!(available(&app, &buyer).await, 100_000);
    assert_eq!(assert_books_balance(&app).await, 0);

    let (project, milestones) = active_project(&app, &buyer, &seller, &[40_000, 20_000]).await;
    let hold = hold_milestone(&app, &buyer, &project, &milestones[0]).await;
    assert_eq!(hold["transactions"][0]["fee"], 1_000, "2.5% of 40,000");
    assert_eq!(available(&app, &buyer).await, 59_000);
    assert_eq!(assert_books_balance(&app).await, 40_000);
    // The gauge from the ledger (refreshed in the background).
    crate::metrics::scrape_until(&app, r#"amani_escrow_held_minor_units{currency="NGN"} 40000"#).await;

    let m = &milestones[0];
    let (status, body) = post(
        &app,
        &seller,
        &format!("/api/v1/milestones/{m}/submit"),
        json!({"note": "done"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &app,
        &buyer,
        &format!("/api/v1/milestones/{m}/approve"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    assert_eq!(assert_books_balance(&app).await, 40_000);
    let (status, release) = money_post(
        &app,
        &buyer,
        "/api/v1/escrow/release",
        json!({"project_id": project, "milestone_id": m}),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    assert_eq!(available(&app, &seller).await, 40_000);
    assert_eq!(assert_books_balance(&app).await, 0);

    let destination = bank_destination(&app, &seller).await;
    let (status, withdrawal) = money_post(
        &app,
        &seller,
        "/api/v1/wallet/withdraw",
        json!({"amount": "25000", "currency": "NGN", "destination_id": destination}),
    )
    .await;
    assert_eq!(status, 201, "{withdrawal}");
    assert_eq!(withdrawal["status"], "completed");
    assert_eq!(available(&app, &seller).await, 15_000);
    assert_eq!(assert_books_balance(&app).await, 0);

    // The history: each party sees its own, with the fee on the hold.
    let (_, history) = json(
        app.authed(Method::GET, "/api/v1/escrow/transactions?page_size=10", &seller.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kinds: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["withdrawal", "release", "hold"], "{history}");
    let (_, holds) = json(
        app.authed(
            Method::GET,
            &format!("/api/v1/escrow/transactions?type=hold&project_id={project}"),
            &buyer.token,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(holds["total"], 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"escrow_transactions_total{type="hold",status="succeeded"} 1"#,
        r#"escrow_transactions_total{type="release",status="succeeded"} 1"#,
        r#"escrow_transactions_total{type="withdrawal",status="succeeded"} 1"#,
        r#"escrow_transactions_total{type="deposit",status="succeeded"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}");
    }
}

async fn illegal_transitions_are_refused_and_leave_the_ledger_unchanged(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    let stranger = app.user("client").await;
    let unverified = app.user("client").await;
    deposit(&app, &buyer, 50_000).await;
    deposit(&app, &unverified, 50_000).await;
    let (project, milestones) = active_project(&app, &buyer, &seller, &[10_000, 100_000]).await;
    let m = &milestones[0];
    let (_, elsewhere) = active_project(&app, &buyer, &seller, &[1_000]).await;

    let snapshot = |app: &TestApp| {
        let state = app.state.clone();
        async move {
            let mut conn = state.db.acquire().await.unwrap();
            let report = amani::store::ledger::check(&mut conn).await.unwrap();
            assert!(report.balanced, "{:#?}", report.problems);
            (report.transfers, report.held_in_escrow)
        }
    };
    let before = snapshot(&app).await;
    let cases: Vec<(&TestUser, &str, Value, u16)> = vec![
        // Release before funding/approval.
        (&buyer, "/api/v1/escrow/release", json!({"milestone_id": m}), 409),
        // A stranger cannot see the project at all.
        (&stranger, "/api/v1/escrow/hold", json!({"project_id": project}), 404),
        // The seller does not fund.
        (
            &seller,
            "/api/v1/escrow/hold",
            json!({"project_id": project, "milestone_id": m}),
            403,
        ),
        // More than the balance (100,000 + fee > 50,000).
        (
            &buyer,
            "/api/v1/escrow/hold",
            json!({"project_id": project, "milestone_id": milestones[1]}),
            409,
        ),
        // A milestone of another project is not this project's.
        (
            &buyer,
            "/api/v1/escrow/hold",
            json!({"project_id": project, "milestone_id": elsewhere[0]}),
            404,
        ),
        // A buyer cannot pull money back: that is a dispute.
        (&buyer, "/api/v1/escrow/refund", json!({"project_id": project}), 403),
        // Negative and float amounts.
        (
            &buyer,
            "/api/v1/wallet/withdraw",
            json!({"amount": -5, "currency": "NGN"}),
            422,
        ),
        (
            &buyer,
            "/api/v1/wallet/deposit",
            json!({"amount": 10.5, "currency": "NGN"}),
            422,
        ),
        (
            &buyer,
            "/api/v1/wallet/deposit",
            json!({"amount": 100, "currency": "XYZ"}),
            422,
        ),
    ];
    for (user, path, body, expected) in cases {
        let (status, problem) = money_post(&app, user, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body} → {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    }
    // Unverified buyers cannot fund; on a project they are party to.
    let (unverified_project, _) = active_project(&app, &unverified, &seller, &[1_000]).await;
    let (status, problem) = money_post(
        &app,
        &unverified,
        "/api/v1/escrow/hold",
        json!({"project_id": unverified_project}),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("KYC"));

    // Fund, then try the wrong order of everything else.
    hold_milestone(&app, &buyer, &project, m).await;
    let during = snapshot(&app).await;
    for (user, path, body, expected) in [
        (&buyer, format!("/api/v1/milestones/{m}/submit"), json!({}), 409),
        (
            &seller,
            format!("/api/v1/milestones/{m}/approve"),
            json!({"approve": true}),
            409,
        ),
        (
            &buyer,
            format!("/api/v1/milestones/{m}/approve"),
            json!({"approve": true}),
            409,
        ),
        (
            &buyer,
            format!("/api/v1/milestones/{m}/approve"),
            json!({"approve": false}),
            422,
        ),
        (&buyer, format!("/api/v1/projects/{project}/accept"), json!({}), 409),
        (&stranger, format!("/api/v1/milestones/{m}/submit"), json!({}), 404),
    ] {
        let (status, problem) = post(&app, user, &path, body).await;
        assert_eq!(status, expected, "{path} → {problem}");
    }
    let (status, _) = money_post(
        &app,
        &buyer,
        "/api/v1/escrow/hold",
        json!({"project_id": project, "milestone_id": m}),
    )
    .await;
    assert_eq!(status, 409, "no double funding");
    assert_eq!(snapshot(&app).await, during, "refusals moved no money");
    assert_ne!(before, during);
    let update = app
        .authed(Method::PUT, &format!("/api/v1/projects/{project}"), &buyer.token)
        .json(&json!({"title": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 409, "terms are fixed once active");
    let get = app
        .authed(Method::GET, &format!("/api/v1/projects/{project}"), &stranger.token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
}

async fn idempotency_keys_replay_the_first_response_and_refuse_another_body(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("client").await;
    let body = json!({"amount": 5_000, "currency": "NGN"});
    let first = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .header("idempotency-key", "dep-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .header("idempotency-key", "dep-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(available(&app, &user).await, 5_000, "credited once");

    let (status, problem) = keyed_post(
        &app,
        &user,
        "/api/v1/wallet/deposit",
        "dep-1",
        json!({"amount": 6_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let missing = app
        .authed(Method::POST, "/api/v1/wallet/deposit", &user.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    // Keys are scoped to the user: another user's "dep-1" is theirs.
    let other = app.user("client").await;
    let (status, _) = keyed_post(&app, &other, "/api/v1/wallet/deposit", "dep-1", body).await;
    assert_eq!(status, 201);
    assert_eq!(available(&app, &other).await, 5_000);
    assert_books_balance(&app).await;
}

async fn fifty_concurrent_releases_of_one_milestone_pay_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_for_a_crowd(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 20_000).await;
    let (project, milestones) = active_project(&app, &buyer, &seller, &[10_000]).await;
    let m = milestones[0].clone();
    money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    delivered_and_approved(&app, &seller, &buyer, &m).await;

    let releases = (0..50).map(|_| {
        let (app_client, url, token, m) = (
            app.client.clone(),
            app.url("/api/v1/escrow/release"),
            buyer.token.clone(),
            m.clone(),
        );
        tokio::spawn(async move {
            app_client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .json(&json!({"milestone_id": m}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures_join(releases).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    assert_eq!(available(&app, &seller).await, 10_000);
    assert_eq!(assert_books_balance(&app).await, 0);
}

async fn concurrent_holds_beyond_the_balance_never_overdraw(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_for_a_crowd(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    // 10,250 pays one 10,000 milestone and its fee; 35,000 pays three.
    deposit(&app, &buyer, 35_000).await;
    let mut projects = Vec::new();
    for _ in 0..8 {
        projects.push(active_project(&app, &buyer, &seller, &[10_000]).await.0);
    }
    let holds = projects.into_iter().map(|project| {
        let (client, url, token) = (app.client.clone(), app.url("/api/v1/escrow/hold"), buyer.token.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .json(&json!({"project_id": project}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses = futures_join(holds).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(available(&app, &buyer).await, 35_000 - 3 * 10_250);
    assert_eq!(assert_books_balance(&app).await, 30_000);
}

async fn the_same_key_sent_twenty_times_at_once_moves_money_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_for_a_crowd(&db).await;
    let user = app.user("client").await;
    let deposit = json!({"amount": 7_000, "currency": "NGN"});
    let results = send_at_once(&app, &user, "/api/v1/wallet/deposit", "the-one-key", deposit, 20).await;
    assert!(results.iter().all(|(s, _, _)| *s == 201), "{results:?}");
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|(_, _, body)| body["transaction"]["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same transaction");
    assert_eq!(available(&app, &user).await, 7_000, "one transfer");
    assert_books_balance(&app).await;
}

/// An app whose pool lets a crowd of requests wait for one project.
async fn app_for_a_crowd(db: &TestDb) -> TestApp {
    TestApp::spawn_ready(
        &db.url,
        &[
            ("DATABASE_MAX_CONNECTIONS", "20"),
            ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "30"),
        ],
    )
    .await
}

/// Sends `body` to `path` `times` times at once with one key: each answer's
/// status, whether it says it is a replay, and its body.
async fn send_at_once(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    key: &str,
    body: Value,
    times: usize,
) -> Vec<(u16, bool, Value)> {
    let sends = (0..times).map(|_| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(&user.token)
            .header("idempotency-key", key)
            .json(&body);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (status, replayed, response.json::<Value>().await.unwrap())
        })
    });
    futures_join(sends).await
}

/// Escrow stores its key with the response, after the operation: a
/// duplicate runs the operation too. Here each duplicate waits for the
/// project (its lock, or SQLite's one writer), finds the milestone funded
/// or paid, fails, and is answered with the first response the key stored.
/// Money moves once and is counted once.
async fn the_same_key_sent_at_once_holds_and_releases_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_for_a_crowd(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 100_000).await;
    let (project, milestones) = active_project(&app, &buyer, &seller, &[10_000, 20_000]).await;
    let hold = json!({"project_id": project, "milestone_id": milestones[0]});

    let answers = send_at_once(&app, &buyer, "/api/v1/escrow/hold", "hold-once", hold.clone(), 12).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 201), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|(_, _, body)| *body == answers[0].2),
        "one answer: {answers:?}"
    );
    assert_eq!(available(&app, &buyer).await, 100_000 - 10_250, "held once (fee 2.5%)");

    // Later, the same request again: the hold fails (already funded) and
    // the key answers for it; another body with the key is refused whole.
    let (status, again) = keyed_post(&app, &buyer, "/api/v1/escrow/hold", "hold-once", hold).await;
    assert_eq!((status, &again), (201, &answers[0].2));
    let other = json!({"project_id": project, "milestone_id": milestones[1]});
    let (status, problem) = keyed_post(&app, &buyer, "/api/v1/escrow/hold", "hold-once", other).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("different request"),
        "{problem}"
    );
    assert_eq!(
        available(&app, &buyer).await,
        100_000 - 10_250,
        "the other milestone was not funded"
    );

    let m = &milestones[0];
    delivered_and_approved(&app, &seller, &buyer, m).await;
    let release = json!({"milestone_id": m});
    let answers = send_at_once(&app, &buyer, "/api/v1/escrow/release", "release-once", release, 12).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 201), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(available(&app, &seller).await, 10_000, "paid once");

    let metrics = crate::metrics::scrape(&app).await;
    for line in [
        r#"escrow_transactions_total{type="hold",status="succeeded"} 1"#,
        r#"escrow_transactions_total{type="release",status="succeeded"} 1"#,
        r#"escrow_transactions_total{type="hold",status="failed"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert_eq!(assert_books_balance(&app).await, 0, "nothing left in escrow");
}

async fn a_dispute_is_resolved_by_a_split_and_a_cancel_refunds_the_buyer(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 100_000).await;

    let (project, milestones) = active_project(&app, &buyer, &seller, &[30_000, 10_000]).await;
    money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(available(&app, &buyer).await, 100_000 - 41_000);
    post(
        &app,
        &seller,
        &format!("/api/v1/milestones/{}/submit", milestones[0]),
        json!({}),
    )
    .await;
    let (status, _) = post(&app, &buyer, &format!("/api/v1/projects/{project}/cancel"), json!({})).await;
    assert_eq!(status, 409, "delivered work cannot be cancelled away");
    let (status, disputed) = post(
        &app,
        &buyer,
        &format!("/api/v1/projects/{project}/dispute"),
        json!({"reason": "late"}),
    )
    .await;
    assert_eq!((status, disputed["status"].as_str()), (200, Some("disputed")));
    let (status, _) = post(
        &app,
        &buyer,
        &format!("/api/v1/admin/projects/{project}/resolve"),
        json!({"resolution": "refund"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &app,
        &admin,
        &format!("/api/v1/admin/projects/{project}/resolve"),
        json!({"resolution": "split", "seller_amount": 40_001}),
    )
    .await;
    assert_eq!(status, 422, "more than is held");
    let (status, resolved) = post(
        &app,
        &admin,
        &format!("/api/v1/admin/projects/{project}/resolve"),
        json!({"resolution": "split", "seller_amount": 25_000}),
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["project"]["status"], "completed");
    assert_eq!(available(&app, &seller).await, 25_000);
    assert_eq!(available(&app, &buyer).await, 59_000 + 15_000);
    assert_eq!(assert_books_balance(&app).await, 0);

    // Cancelling before any delivery refunds what was held.
    let (second, _) = active_project(&app, &buyer, &seller, &[20_000]).await;
    money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": second})).await;
    let (status, cancelled) = post(&app, &seller, &format!("/api/v1/projects/{second}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["refunds"][0]["amount"], 20_000);
    assert_eq!(available(&app, &buyer).await, 74_000 - 500, "the fee is not refunded");
    assert_eq!(assert_books_balance(&app).await, 0);
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        results.push(task.await.unwrap());
    }
    results
}

/// PostgreSQL: an operation that waited for a milestone's project reads the
/// milestone as the project's holder left it, not as it was when the
/// operation's statement started. Here the holder submits the milestone
/// (by hand, the project locked) while the buyer's approval waits: the
/// approval then sees a submitted milestone and approves it. (Read as of
/// its start, it would refuse to approve a milestone that is only funded.)
#[tokio::test]
async fn an_operation_that_waited_for_the_project_reads_the_milestone_as_left() {
    let db = TestDb::create(Engine::Postgres).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 100_000).await;
    let (project, milestones) = active_project(&app, &buyer, &seller, &[10_000]).await;
    let milestone = milestones[0].clone();
    hold_milestone(&app, &buyer, &project, &milestone).await;

    let mut holder = project_locked_elsewhere(&db, &project).await;
    let approval = {
        let request = app
            .authed(
                Method::POST,
                &format!("/api/v1/milestones/{milestone}/approve"),
                &buyer.token,
            )
            .json(&json!({"approve": true}));
        tokio::spawn(async move { json(request.send().await.unwrap()).await })
    };
    waiting_to_lock_a_milestone(&db, std::time::Duration::from_secs(10), "the approval").await;
    sqlx::query("update milestones set status = 'submitted' where id = $1")
        .bind(&milestone)
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::raw_sql("commit").execute(&mut holder).await.unwrap();

    let (status, approved) = approval.await.unwrap();
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
}

/// PostgreSQL: a hold that names a milestone of someone else's project is
/// "not found" without touching that project: it does not wait for (or
/// take) the other project's lock.
#[tokio::test]
async fn a_hold_naming_another_projects_milestone_does_not_lock_that_project() {
    let db = TestDb::create(Engine::Postgres).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let other_buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 100_000).await;
    let (project, _) = active_project(&app, &buyer, &seller, &[10_000]).await;
    let (other_project, others) = active_project(&app, &other_buyer, &seller, &[10_000]).await;

    let mut holder = project_locked_elsewhere(&db, &other_project).await;
    let hold = money_post(
        &app,
        &buyer,
        "/api/v1/escrow/hold",
        json!({"project_id": project, "milestone_id": others[0]}),
    );
    let (status, problem) = tokio::time::timeout(std::time::Duration::from_secs(5), hold)
        .await
        .expect("the hold answered without waiting for the other project");
    assert_eq!(status, 404, "{problem}");
    assert_eq!(available(&app, &buyer).await, 100_000, "nothing moved");
    sqlx::raw_sql("rollback").execute(&mut holder).await.unwrap();
}

/// PostgreSQL: a connection of the test's own, in a transaction that holds
/// `project`'s row lock (as another request in the middle of its work
/// would) until it commits or rolls back.
pub async fn project_locked_elsewhere(db: &TestDb, project: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("begin").execute(&mut holder).await.unwrap();
    sqlx::query("select id from projects where id = $1 for update")
        .bind(project)
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

/// PostgreSQL: waits (up to `limit`) until one connection to `db` is
/// waiting for a row lock in the statement that locks and loads a milestone
/// with its project (`who` is blocked, say, behind
/// [`project_locked_elsewhere`]).
pub async fn waiting_to_lock_a_milestone(db: &TestDb, limit: std::time::Duration, who: &str) {
    use sqlx::Connection;
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    crate::server::eventually(limit, &format!("{who} to wait for the project's lock"), async || {
        let (waiting,): (i64,) = sqlx::query_as(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and wait_event_type = 'Lock' and query like '%from milestones m join projects p%'",
        )
        .fetch_one(&mut watcher)
        .await
        .ok()?;
        (waiting == 1).then_some(())
    })
    .await;
}
