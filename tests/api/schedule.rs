//! Time in escrow: inspection periods that end in an automatic release,
//! funding deadlines that expire a project, and the scheduler that does
//! both once on any number of replicas. The clock is the scheduler's `pass`
//! argument: tests move it instead of sleeping.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::both_engines;
use crate::escrow::{active_project, assert_books_balance, available, deposit, money_post, post, verified_user};
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};
use crate::metrics::{samples, scrape};

/// The app with its own scheduler off: each test runs passes itself.
async fn app_without_scheduler(db: &TestDb) -> TestApp {
    TestApp::spawn_ready(&db.url, &[("SCHEDULER_ENABLED", "false")]).await
}

struct Deal {
    buyer: TestUser,
    seller: TestUser,
    project: String,
    milestones: Vec<String>,
}

/// An active project with every milestone funded.
async fn funded_deal(app: &TestApp, admin: &TestUser, amounts: &[i64]) -> Deal {
    let buyer = verified_user(app, "client", admin).await;
    let seller = verified_user(app, "freelancer", admin).await;
    deposit(app, &buyer, 1_000_000).await;
    let (project, milestones) = active_project(app, &buyer, &seller, amounts).await;
    let (status, held) = money_post(app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{held}");
    Deal {
        buyer,
        seller,
        project,
        milestones,
    }
}

/// Sends a draft, has the seller accept it, and funds every milestone.
async fn accept_and_fund(app: &TestApp, buyer: &TestUser, seller: &TestUser, project: &str) {
    for (path, user) in [("send", buyer), ("accept", seller)] {
        let (status, body) = post(app, user, &format!("/api/v1/projects/{project}/{path}"), json!({})).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, held) = money_post(app, buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{held}");
}

/// The ids of a created project's milestones, in order.
fn milestone_ids(project: &Value) -> Vec<String> {
    project["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn submit(app: &TestApp, seller: &TestUser, milestone: &str) -> Value {
    let (status, body) = post(
        app,
        seller,
        &format!("/api/v1/milestones/{milestone}/submit"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A GET that must answer 200.
async fn get(app: &TestApp, user: &TestUser, path: &str) -> Value {
    let (status, body) = json(app.authed(Method::GET, path, &user.token).send().await.unwrap()).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn milestone(app: &TestApp, user: &TestUser, id: &str) -> Value {
    get(app, user, &format!("/api/v1/milestones/{id}")).await
}

async fn project(app: &TestApp, user: &TestUser, id: &str) -> Value {
    get(app, user, &format!("/api/v1/projects/{id}")).await
}

fn at(stamp: &Value) -> OffsetDateTime {
    amani::timestamp::parse(stamp.as_str().expect("a timestamp")).expect("one of our timestamps")
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// Release transactions of a milestone, as its seller's history shows them.
async fn releases_of(app: &TestApp, seller: &TestUser, milestone: &str) -> Vec<Value> {
    let page = get(app, seller, "/api/v1/escrow/transactions?type=release&page_size=100").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["milestone_id"] == milestone)
        .cloned()
        .collect()
}

/// The audit rows of `action`: (actor id, details).
async fn audit_of(app: &TestApp, action: &str) -> Vec<(Option<String>, Value)> {
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
    let rows: Vec<(Option<String>, String)> = obs
        .run(
            "test.audit",
            sqlx::query_as("select actor_id, details from audit_events where action = $1")
                .bind(action)
                .fetch_all(conn),
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|(actor, details)| (actor, serde_json::from_str(&details).unwrap()))
        .collect()
}

both_engines!(
    an_unanswered_delivery_is_released_once_when_its_inspection_period_ends,
    an_answer_a_rejection_or_a_dispute_before_the_deadline_stops_the_clock,
    two_schedulers_on_one_database_release_each_milestone_once,
    a_job_whose_replica_died_is_done_once_after_its_lease,
    a_project_not_funded_by_its_deadline_expires_and_refunds_what_is_held,
    inspection_periods_are_bounded_and_the_milestones_own_wins,
    late_scheduled_work_shows_on_metrics,
);

async fn an_unanswered_delivery_is_released_once_when_its_inspection_period_ends(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[30_000, 10_000]).await;
    let before = OffsetDateTime::now_utc();
    let submitted = submit(&app, &deal.seller, &deal.milestones[0]).await;
    let deadline = at(&submitted["inspection_deadline"]);
    let week = secs(7 * 86_400);
    assert!(
        deadline >= before + week && deadline <= OffsetDateTime::now_utc() + week,
        "the platform's 7 days from the submission: {deadline}"
    );

    let early = app.state.scheduler.pass(deadline - secs(1)).await.unwrap();
    assert_eq!(early.done, 0, "a second early is too early");
    assert_eq!(
        milestone(&app, &deal.buyer, &deal.milestones[0]).await["status"],
        "submitted"
    );

    let report = app.state.scheduler.pass(deadline + secs(1)).await.unwrap();
    assert_eq!((report.done, report.obsolete, report.failed), (1, 0, 0));
    let released = milestone(&app, &deal.buyer, &deal.milestones[0]).await;
    assert_eq!(released["status"], "released");
    assert_eq!(released["inspection_deadline"], Value::Null);
    assert_eq!(available(&app, &deal.seller).await, 30_000);
    assert_eq!(
        assert_books_balance(&app).await,
        10_000,
        "the other milestone is still held"
    );
    let transactions = releases_of(&app, &deal.seller, &deal.milestones[0]).await;
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0]["notes"], "inspection period elapsed");

    let again = app.state.scheduler.pass(deadline + secs(3600)).await.unwrap();
    assert_eq!(again.done + again.obsolete, 0, "nothing left to do");
    assert_eq!(available(&app, &deal.seller).await, 30_000, "released once");

    let audit = audit_of(&app, "escrow.auto_release").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, None, "no user did it");
    assert_eq!(audit[0].1["actor"], "system");
    assert_eq!(audit[0].1["reason"], "inspection period elapsed");
    assert_eq!(audit[0].1["amount"], 30_000);

    let events = get(
        &app,
        &deal.seller,
        &format!("/api/v1/events?project_id={}", deal.project),
    )
    .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object"]["id"] == deal.milestones[0].as_str() || e["type"] == "escrow.released")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "milestone.funded",
            "milestone.submitted",
            "milestone.auto_released",
            "milestone.released",
            "escrow.released"
        ]
    );
    let metrics = scrape(&app).await;
    assert_eq!(
        samples(&metrics, "amani_milestones_auto_released_total"),
        ["amani_milestones_auto_released_total 1"]
    );
    assert!(
        samples(&metrics, "amani_scheduled_jobs_total")
            .contains(&r#"amani_scheduled_jobs_total{kind="milestone.inspection_elapsed",outcome="done"} 1"#),
        "{metrics}"
    );
}

async fn an_answer_a_rejection_or_a_dispute_before_the_deadline_stops_the_clock(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[10_000, 20_000, 40_000]).await;
    let [approved, rejected, _] = &deal.milestones[..] else {
        unreachable!()
    };
    let first = at(&submit(&app, &deal.seller, approved).await["inspection_deadline"]);
    let first_of_rejected = at(&submit(&app, &deal.seller, rejected).await["inspection_deadline"]);

    // The buyer approves (before the deadline, as any answer through the API
    // is) and releases; the scheduler then finds nothing to do.
    let (status, _) = post(
        &app,
        &deal.buyer,
        &format!("/api/v1/milestones/{approved}/approve"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = money_post(
        &app,
        &deal.buyer,
        "/api/v1/escrow/release",
        json!({"milestone_id": approved}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A rejection clears the deadline; the resubmission starts a new one.
    let (status, body) = post(
        &app,
        &deal.buyer,
        &format!("/api/v1/milestones/{rejected}/approve"),
        json!({"approve": false, "reason": "the logo is missing"}),
    )
    .await;
    assert_eq!((status, &body["inspection_deadline"]), (200, &Value::Null), "{body}");

    let report = app.state.scheduler.pass(first_of_rejected + secs(1)).await.unwrap();
    assert_eq!((report.done, report.obsolete), (0, 2), "both answered in time");
    assert_eq!(available(&app, &deal.seller).await, 10_000, "the buyer's release, once");
    assert_eq!(releases_of(&app, &deal.seller, approved).await.len(), 1);

    let second = at(&submit(&app, &deal.seller, rejected).await["inspection_deadline"]);
    assert!(second > first);
    let report = app.state.scheduler.pass(second - secs(1)).await.unwrap();
    assert_eq!(report.done, 0, "the new clock has not run out");
    let report = app.state.scheduler.pass(second + secs(1)).await.unwrap();
    assert_eq!(report.done, 1);
    assert_eq!(available(&app, &deal.seller).await, 30_000);

    // A dispute freezes the project: its submitted milestone is not released.
    let third = at(&submit(&app, &deal.seller, &deal.milestones[2]).await["inspection_deadline"]);
    let (status, _) = post(
        &app,
        &deal.buyer,
        &format!("/api/v1/projects/{}/dispute", deal.project),
        json!({"reason": "not what we agreed"}),
    )
    .await;
    assert_eq!(status, 200);
    let report = app.state.scheduler.pass(third + secs(1)).await.unwrap();
    assert_eq!((report.done, report.obsolete), (0, 1));
    assert_eq!(
        milestone(&app, &deal.buyer, &deal.milestones[2]).await["status"],
        "submitted"
    );
    assert_eq!(available(&app, &deal.seller).await, 30_000);
    assert_eq!(assert_books_balance(&app).await, 40_000);
}

async fn two_schedulers_on_one_database_release_each_milestone_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let first = app_without_scheduler(&db).await;
    let second = app_without_scheduler(&db).await;
    let admin = first.admin().await;
    let amounts = [1_000; 20];
    let deal = funded_deal(&first, &admin, &amounts).await;
    let mut latest = OffsetDateTime::UNIX_EPOCH;
    for id in &deal.milestones {
        latest = latest.max(at(&submit(&first, &deal.seller, id).await["inspection_deadline"]));
    }
    let now = latest + secs(1);
    let mut passes = Vec::new();
    for app in [&first, &second, &first, &second] {
        let scheduler = std::sync::Arc::clone(&app.state.scheduler);
        passes.push(tokio::spawn(async move { scheduler.pass(now).await.unwrap() }));
    }
    let mut done = 0;
    for pass in passes {
        let report = pass.await.unwrap();
        assert_eq!(report.failed, 0, "{report:?}");
        done += report.done;
    }
    assert_eq!(done, 20, "each job done by exactly one pass");
    assert_eq!(available(&first, &deal.seller).await, 20_000);
    for id in &deal.milestones {
        assert_eq!(releases_of(&first, &deal.seller, id).await.len(), 1, "{id}");
    }
    assert_eq!(assert_books_balance(&first).await, 0);
}

async fn a_job_whose_replica_died_is_done_once_after_its_lease(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[5_000]).await;
    let deadline = at(&submit(&app, &deal.seller, &deal.milestones[0]).await["inspection_deadline"]);

    // A replica takes the job, then is killed before its transaction
    // commits: what stays in the database is the lease alone.
    let taken_at = deadline + secs(1);
    {
        let mut conn = app.state.db.acquire().await.unwrap();
        let stamp = amani::timestamp::format(taken_at);
        let due = amani::store::jobs::due(&mut conn, &stamp, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let lease = amani::timestamp::format(taken_at + app.state.config.schedule.lease);
        let claimed = amani::store::jobs::claim(&mut conn, &due[0].id, &stamp, &lease)
            .await
            .unwrap();
        assert!(claimed.is_some());
    }
    let lease = time::Duration::try_from(app.state.config.schedule.lease).unwrap();
    let report = app.state.scheduler.pass(taken_at + lease - secs(1)).await.unwrap();
    assert_eq!(report.done, 0, "the dead replica's lease still holds");
    assert_eq!(available(&app, &deal.seller).await, 0);
    let report = app.state.scheduler.pass(taken_at + lease + secs(1)).await.unwrap();
    assert_eq!(report.done, 1, "taken again once the lease ran out");
    assert_eq!(available(&app, &deal.seller).await, 5_000);
    let report = app.state.scheduler.pass(taken_at + lease * 3).await.unwrap();
    assert_eq!(report.done + report.obsolete, 0);
    assert_eq!(releases_of(&app, &deal.seller, &deal.milestones[0]).await.len(), 1);
    assert_eq!(assert_books_balance(&app).await, 0);
}

async fn a_project_not_funded_by_its_deadline_expires_and_refunds_what_is_held(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 1_000_000).await;

    // Sent, never accepted.
    let (status, created) = post(
        &app,
        &buyer,
        "/api/v1/projects",
        json!({"title": "Logo", "seller_id": seller.id, "currency": "NGN",
               "milestones": [{"title": "Logo", "amount": 10_000}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let unaccepted = created["id"].as_str().unwrap().to_owned();
    let (status, sent) = post(&app, &buyer, &format!("/api/v1/projects/{unaccepted}/send"), json!({})).await;
    assert_eq!(status, 200, "{sent}");
    // Accepted and half funded, nothing delivered: refunded and cancelled.
    let (half, half_milestones) = active_project(&app, &buyer, &seller, &[20_000, 30_000]).await;
    crate::escrow::hold_milestone(&app, &buyer, &half, &half_milestones[0]).await;
    // Fully funded: kept.
    let (full, _) = active_project(&app, &buyer, &seller, &[40_000]).await;
    money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": full})).await;
    // Half funded but the work delivered: kept (a dispute is the way out).
    let (delivered, delivered_milestones) = active_project(&app, &buyer, &seller, &[5_000, 6_000]).await;
    money_post(
        &app,
        &buyer,
        "/api/v1/escrow/hold",
        json!({"project_id": delivered, "milestone_id": delivered_milestones[0]}),
    )
    .await;
    submit(&app, &seller, &delivered_milestones[0]).await;
    let buyer_before = available(&app, &buyer).await;
    let mut latest = OffsetDateTime::UNIX_EPOCH;
    for id in [&unaccepted, &half, &full, &delivered] {
        let deadline = at(&project(&app, &buyer, id).await["funding_deadline"]);
        let month = secs(30 * 86_400);
        assert!(deadline > OffsetDateTime::now_utc() + month - secs(600), "{deadline}");
        latest = latest.max(deadline);
    }

    let report = app.state.scheduler.pass(latest + secs(1)).await.unwrap();
    assert_eq!(project(&app, &buyer, &unaccepted).await["status"], "cancelled");
    assert_eq!(project(&app, &buyer, &half).await["status"], "cancelled");
    assert_eq!(project(&app, &buyer, &full).await["status"], "active");
    assert_eq!(project(&app, &buyer, &delivered).await["status"], "active");
    // Done: two expiries, and the delivered milestone's inspection period
    // (7 days) ran out long before: released.
    assert_eq!((report.done, report.obsolete, report.failed), (3, 2, 0), "{report:?}");
    assert_eq!(
        milestone(&app, &buyer, &delivered_milestones[0]).await["status"],
        "released"
    );
    assert_eq!(
        available(&app, &buyer).await,
        buyer_before + 20_000,
        "the held milestone comes back (the fee does not)"
    );
    let refunded = milestone(&app, &buyer, &half_milestones[0]).await;
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(assert_books_balance(&app).await, 40_000);
    let audit = audit_of(&app, "project.expired").await;
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|(actor, d)| actor.is_none() && d["reason"] == "funding deadline passed")
    );
    let events = get(&app, &seller, "/api/v1/events?type=project.expired").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2, "{events}");
}

async fn inspection_periods_are_bounded_and_the_milestones_own_wins(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    for (bad, project_level) in [(0, true), (-5, false), (7_776_001, true)] {
        let mut body = json!({"title": "Logo", "seller_id": seller.id, "currency": "NGN",
                               "milestones": [{"title": "Logo", "amount": 10_000}]});
        if project_level {
            body["inspection_period_seconds"] = json!(bad);
        } else {
            body["milestones"][0]["inspection_period_seconds"] = json!(bad);
        }
        let (status, problem) = post(&app, &buyer, "/api/v1/projects", body).await;
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("inspection_period_seconds must be from 1 to 7776000"),
            "{problem}"
        );
    }
    deposit(&app, &buyer, 100_000).await;
    let (status, created) = post(
        &app,
        &buyer,
        "/api/v1/projects",
        json!({"title": "Site", "seller_id": seller.id, "currency": "NGN", "inspection_period_seconds": 3600,
               "milestones": [{"title": "Design", "amount": 10_000, "inspection_period_seconds": 60},
                              {"title": "Build", "amount": 20_000}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["inspection_period_seconds"], 3600);
    accept_and_fund(&app, &buyer, &seller, created["id"].as_str().unwrap()).await;
    for (milestone, period) in milestone_ids(&created).iter().zip([60, 3600]) {
        let before = OffsetDateTime::now_utc();
        let submitted = submit(&app, &seller, milestone).await;
        let deadline = at(&submitted["inspection_deadline"]);
        let after = OffsetDateTime::now_utc();
        assert!(
            deadline >= before + secs(period) && deadline <= after + secs(period),
            "{period}: {deadline}"
        );
    }
}

async fn late_scheduled_work_shows_on_metrics(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[1_000]).await;
    let due_line = r#"amani_scheduled_jobs_due{kind="milestone.inspection_elapsed"}"#;
    let metrics = scrape(&app).await;
    assert!(
        samples(&metrics, "amani_scheduled_jobs_due").contains(&format!("{due_line} 0").as_str()),
        "{metrics}"
    );
    assert_eq!(
        samples(&metrics, "amani_scheduled_jobs_late_seconds"),
        ["amani_scheduled_jobs_late_seconds 0"]
    );

    // A one-second inspection period (allowed outside production) and no
    // scheduler running: the job is due and grows late.
    let id = &deal.milestones[0];
    {
        let mut conn = app.state.db.acquire().await.unwrap();
        let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
        obs.run(
            "test.shorten",
            sqlx::query("update milestones set inspection_period_seconds = 1 where id = $1")
                .bind(id)
                .execute(conn),
        )
        .await
        .unwrap();
    }
    submit(&app, &deal.seller, id).await;
    let late = crate::server::eventually(Duration::from_secs(20), "the job to show as due and late", async || {
        let metrics = scrape(&app).await;
        let due = samples(&metrics, "amani_scheduled_jobs_due").contains(&format!("{due_line} 1").as_str());
        let late: i64 = samples(&metrics, "amani_scheduled_jobs_late_seconds")
            .first()?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (due && late >= 1).then_some(late)
    })
    .await;
    assert!(late < 60, "{late}");
    let report = app.state.scheduler.pass(OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(report.done, 1);
    assert_eq!(available(&app, &deal.seller).await, 1_000);
}

both_engines!(
    partial_releases_and_a_partial_refund_settle_a_milestone_exactly,
    concurrent_partial_releases_never_exceed_the_amount,
    a_milestone_dispute_leaves_the_others_free_and_a_split_moves_exactly_the_stated_amounts,
    an_unanswered_dispute_is_settled_for_the_party_who_opened_it,
);

async fn release(app: &TestApp, buyer: &TestUser, milestone: &str, amount: Option<i64>) -> (u16, Value) {
    let mut body = json!({"milestone_id": milestone});
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    money_post(app, buyer, "/api/v1/escrow/release", body).await
}

async fn partial_releases_and_a_partial_refund_settle_a_milestone_exactly(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[10_000]).await;
    let id = &deal.milestones[0];

    let (status, body) = release(&app, &deal.buyer, id, Some(3_000)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["transactions"][0]["amount"], 3_000);
    let part = milestone(&app, &deal.buyer, id).await;
    assert_eq!(
        (&part["status"], &part["released_amount"], &part["held_amount"]),
        (&json!("funded"), &json!(3_000), &json!(7_000))
    );
    for bad in [0, -1, 7_001] {
        let (status, problem) = release(&app, &deal.buyer, id, Some(bad)).await;
        assert_eq!(status, 422, "{bad}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("from 1 to 7000"),
            "{problem}"
        );
    }
    let (status, _) = release(&app, &deal.buyer, id, None).await;
    assert_eq!(status, 409, "the whole remainder waits for the approval");
    assert_eq!(available(&app, &deal.seller).await, 3_000, "refusals moved nothing");
    assert_eq!(assert_books_balance(&app).await, 7_000);

    let (status, _) = release(&app, &deal.buyer, id, Some(4_000)).await;
    assert_eq!(status, 201);
    let (status, problem) = money_post(
        &app,
        &deal.seller,
        "/api/v1/escrow/refund",
        json!({"project_id": deal.project, "amount": 1_000}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, body) = money_post(
        &app,
        &deal.seller,
        "/api/v1/escrow/refund",
        json!({"project_id": deal.project, "milestone_id": id, "amount": 3_000}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let settled = milestone(&app, &deal.buyer, id).await;
    assert_eq!(
        settled["status"], "split",
        "never 'released' when the buyer got some back"
    );
    assert_eq!(
        (
            &settled["released_amount"],
            &settled["refunded_amount"],
            &settled["held_amount"]
        ),
        (&json!(7_000), &json!(3_000), &json!(0))
    );
    assert_eq!(project(&app, &deal.buyer, &deal.project).await["status"], "completed");
    assert_eq!(available(&app, &deal.seller).await, 7_000);
    assert_eq!(available(&app, &deal.buyer).await, 1_000_000 - 10_250 + 3_000);
    assert_eq!(assert_books_balance(&app).await, 0);
    let events = get(
        &app,
        &deal.buyer,
        &format!("/api/v1/events?project_id={}&type=milestone.split", deal.project),
    )
    .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
}

async fn concurrent_partial_releases_never_exceed_the_amount(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = std::sync::Arc::new(app_without_scheduler(&db).await);
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[10_000]).await;
    let buyer = std::sync::Arc::new(deal.buyer);
    let mut tasks = Vec::new();
    for _ in 0..25 {
        let (app, buyer, id) = (app.clone(), buyer.clone(), deal.milestones[0].clone());
        tasks.push(tokio::spawn(
            async move { release(&app, &buyer, &id, Some(1_000)).await.0 },
        ));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let paid = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(paid, 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| [201, 409, 422].contains(s)), "{statuses:?}");
    assert_eq!(available(&app, &deal.seller).await, 10_000);
    assert_eq!(milestone(&app, &buyer, &deal.milestones[0]).await["status"], "released");
    assert_eq!(assert_books_balance(&app).await, 0);
}

async fn dispute(app: &TestApp, user: &TestUser, milestone: &str) -> Value {
    let (status, body) = post(
        app,
        user,
        &format!("/api/v1/milestones/{milestone}/dispute"),
        json!({"reason": "not as agreed", "evidence": "The brief asked for three pages; one was delivered."}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn a_milestone_dispute_leaves_the_others_free_and_a_split_moves_exactly_the_stated_amounts(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[30_000, 20_000]).await;
    let [disputed, other] = &deal.milestones[..] else {
        unreachable!()
    };
    let deadline = at(&submit(&app, &deal.seller, disputed).await["inspection_deadline"]);
    let opened = dispute(&app, &deal.buyer, disputed).await;
    assert_eq!(opened["status"], "disputed");
    assert_eq!(opened["disputed_by"], "buyer");
    assert_eq!(opened["inspection_deadline"], Value::Null, "the clock stopped");
    let respond_by = at(&opened["dispute_respond_by"]);
    let (status, _) = release(&app, &deal.buyer, disputed, Some(1_000)).await;
    assert_eq!(status, 409, "a disputed milestone waits for its resolution");

    // The other milestone goes on.
    submit(&app, &deal.seller, other).await;
    let (status, _) = post(
        &app,
        &deal.buyer,
        &format!("/api/v1/milestones/{other}/approve"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = release(&app, &deal.buyer, other, None).await;
    assert_eq!(status, 201);
    assert_eq!(available(&app, &deal.seller).await, 20_000);

    let answer = json!({"response": "Pages two and three were sent by email."});
    let path = format!("/api/v1/milestones/{disputed}/dispute/answer");
    let (status, _) = post(&app, &deal.buyer, &path, answer.clone()).await;
    assert_eq!(status, 403, "the party who opened it does not answer it");
    let (status, answered) = post(&app, &deal.seller, &path, answer.clone()).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["dispute_response"], answer["response"]);
    let (status, _) = post(&app, &deal.seller, &path, answer).await;
    assert_eq!(status, 409, "answered once");
    // Past both the inspection deadline the submission had and the time to
    // answer: neither the clock (stopped by the dispute) nor the default
    // outcome (answered in time) does anything; an admin decides. (The
    // third obsolete job: the other milestone's inspection, released.)
    let report = app
        .state
        .scheduler
        .pass(deadline.max(respond_by) + secs(1))
        .await
        .unwrap();
    assert_eq!((report.done, report.obsolete), (0, 3), "{report:?}");
    assert_eq!(milestone(&app, &deal.buyer, disputed).await["status"], "disputed");

    let resolve = format!("/api/v1/admin/milestones/{disputed}/resolve");
    let (status, _) = post(&app, &deal.buyer, &resolve, json!({"resolution": "refund"})).await;
    assert_eq!(status, 403);
    let (status, problem) = post(
        &app,
        &admin,
        &resolve,
        json!({"resolution": "split", "seller_amount": 30_001}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        available(&app, &deal.seller).await,
        20_000,
        "a refused resolution moved nothing"
    );
    let (status, resolved) = post(
        &app,
        &admin,
        &resolve,
        json!({"resolution": "split", "seller_amount": 12_345}),
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["milestone"]["status"], "split");
    assert_eq!(
        (
            &resolved["milestone"]["released_amount"],
            &resolved["milestone"]["refunded_amount"]
        ),
        (&json!(12_345), &json!(17_655))
    );
    let moved: Vec<(&str, i64)> = resolved["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap(), t["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(moved, [("release", 12_345), ("refund", 17_655)]);
    let (status, _) = post(&app, &admin, &resolve, json!({"resolution": "release"})).await;
    assert_eq!(status, 409, "resolved once");
    assert_eq!(available(&app, &deal.seller).await, 20_000 + 12_345);
    assert_eq!(available(&app, &deal.buyer).await, 1_000_000 - 51_250 + 17_655);
    assert_eq!(project(&app, &deal.buyer, &deal.project).await["status"], "completed");
    assert_eq!(assert_books_balance(&app).await, 0);
}

async fn an_unanswered_dispute_is_settled_for_the_party_who_opened_it(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[10_000, 20_000]).await;
    let [by_buyer, by_seller] = &deal.milestones[..] else {
        unreachable!()
    };
    let first = at(&dispute(&app, &deal.buyer, by_buyer).await["dispute_respond_by"]);
    submit(&app, &deal.seller, by_seller).await;
    let second = at(&dispute(&app, &deal.seller, by_seller).await["dispute_respond_by"]);
    let days = secs(3 * 86_400);
    assert!(first > OffsetDateTime::now_utc() + days - secs(600), "{first}");

    let report = app.state.scheduler.pass(first - secs(1)).await.unwrap();
    assert_eq!(report.done, 0, "the other party still has time");
    let report = app.state.scheduler.pass(second + secs(1)).await.unwrap();
    assert_eq!((report.done, report.failed), (2, 0), "{report:?}");
    assert_eq!(milestone(&app, &deal.buyer, by_buyer).await["status"], "refunded");
    assert_eq!(milestone(&app, &deal.buyer, by_seller).await["status"], "released");
    assert_eq!(available(&app, &deal.seller).await, 20_000);
    assert_eq!(available(&app, &deal.buyer).await, 1_000_000 - 30_750 + 10_000);
    assert_eq!(assert_books_balance(&app).await, 0);
    let audit = audit_of(&app, "dispute.settled_unanswered").await;
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|(actor, d)| actor.is_none() && d["reason"] == "dispute unanswered")
    );
}

both_engines!(a_milestone_past_its_due_date_is_listed_overdue_and_announced_once);

async fn a_milestone_past_its_due_date_is_listed_overdue_and_announced_once(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 100_000).await;
    let (status, problem) = post(
        &app,
        &buyer,
        "/api/v1/projects",
        json!({"title": "Site", "seller_id": seller.id, "currency": "NGN",
               "milestones": [{"title": "Late", "amount": 1_000, "due_date": "next week"}]}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, created) = post(
        &app,
        &buyer,
        "/api/v1/projects",
        json!({"title": "Site", "seller_id": seller.id, "currency": "NGN", "due_date": "2100-01-01T00:00:00Z",
               "milestones": [{"title": "Late", "amount": 1_000, "due_date": "2020-01-01T00:00:00Z"},
                              {"title": "Later", "amount": 2_000, "due_date": "2100-01-01T00:00:00+01:00"},
                              {"title": "Delivered", "amount": 3_000, "due_date": "2020-01-01T00:00:00Z"}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["due_date"], "2100-01-01T00:00:00.000000Z");
    let id = created["id"].as_str().unwrap();
    let ids = milestone_ids(&created);
    assert_eq!(created["milestones"][1]["due_date"], "2099-12-31T23:00:00.000000Z");
    // A draft's milestones are not watched yet.
    let report = app.state.scheduler.pass(OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(report.done + report.obsolete, 0);
    accept_and_fund(&app, &buyer, &seller, id).await;
    submit(&app, &seller, &ids[2]).await;

    let listed = |overdue: bool| {
        let path = format!("/api/v1/projects/{id}/milestones?overdue={overdue}");
        let (app, buyer) = (&app, &buyer);
        async move {
            let page = get(app, buyer, &path).await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(true).await, ["Late"]);
    assert_eq!(listed(false).await, ["Later", "Delivered"]);
    assert_eq!(milestone(&app, &buyer, &ids[0]).await["overdue"], true);

    let report = app.state.scheduler.pass(OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(
        (report.done, report.obsolete),
        (1, 1),
        "Late announced; Delivered was delivered"
    );
    let report = app
        .state
        .scheduler
        .pass(OffsetDateTime::now_utc() + secs(86_400))
        .await
        .unwrap();
    assert_eq!(report.done + report.obsolete, 0, "announced once");
    let events = get(
        &app,
        &seller,
        &format!("/api/v1/events?project_id={id}&type=milestone.overdue"),
    )
    .await;
    let announced: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(announced, [ids[0].as_str()]);
}

/// Real processes on one PostgreSQL: a replica killed (SIGKILL) in the
/// middle of a scheduled release, its job transaction open and blocked,
/// commits nothing; two replicas started after it release that milestone and
/// ten more, each exactly once.
#[tokio::test]
async fn replicas_killed_mid_release_or_running_side_by_side_release_each_milestone_once() {
    use sqlx::Connection;
    let db = TestDb::create(Engine::Postgres).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 1_000_000).await;
    let milestones: Vec<Value> = (0..11)
        .map(|i| json!({"title": format!("Part {i}"), "amount": 1_000}))
        .collect();
    let (status, created) = post(
        &app,
        &buyer,
        "/api/v1/projects",
        json!({"title": "Site", "seller_id": seller.id, "currency": "NGN",
               "inspection_period_seconds": 1, "milestones": milestones}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let project_id = created["id"].as_str().unwrap().to_owned();
    accept_and_fund(&app, &buyer, &seller, &project_id).await;
    let ids = milestone_ids(&created);

    // The test holds the project's row lock, so a replica's release blocks
    // inside its transaction (the job already marked done there).
    submit(&app, &seller, &ids[0]).await;
    let mut blocker = crate::escrow::project_locked_elsewhere(&db, &project_id).await;
    let replica = || {
        crate::server::Server::start(&[
            ("DATABASE_URL", db.url.as_str()),
            ("SCHEDULER_LEASE_SECONDS", "2"),
            ("WEBHOOK_DELIVERY_ENABLED", "false"),
            ("RECONCILE_ENABLED", "false"),
        ])
    };
    let doomed = replica();
    crate::escrow::waiting_to_lock_a_milestone(&db, Duration::from_secs(30), "the replica's release").await;
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    drop(doomed); // SIGKILL, its transaction open
    sqlx::raw_sql("rollback").execute(&mut blocker).await.unwrap();
    let (done, attempts): (Option<String>, i64) =
        sqlx::query_as("select done_at, attempts from scheduled_jobs where target_id = $1")
            .bind(&ids[0])
            .fetch_one(&mut watcher)
            .await
            .unwrap();
    assert_eq!((done, attempts), (None, 1), "taken once, finished never");
    assert_eq!(milestone(&app, &buyer, &ids[0]).await["status"], "submitted");
    assert_eq!(available(&app, &seller).await, 0, "the killed release moved nothing");

    let first = replica();
    let second = replica();
    for id in &ids[1..] {
        submit(&app, &seller, id).await;
    }
    crate::server::eventually(Duration::from_secs(60), "every milestone released", async || {
        (available(&app, &seller).await == 11_000).then_some(())
    })
    .await;
    for id in &ids {
        assert_eq!(releases_of(&app, &seller, id).await.len(), 1, "{id}");
    }
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "select outcome, count(*) from scheduled_jobs where kind = 'milestone.inspection_elapsed' group by outcome",
    )
    .fetch_all(&mut watcher)
    .await
    .unwrap();
    assert_eq!(outcomes, [("done".to_owned(), 11)]);
    assert_eq!(assert_books_balance(&app).await, 0);
    drop((first, second));
}

both_engines!(dispute_files_are_checked_by_content_bounded_and_shown_to_the_parties_only);

async fn upload(app: &TestApp, user: &TestUser, milestone: &str, bytes: Vec<u8>, name: &str) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("image/png")
        .unwrap();
    json(
        app.authed(
            Method::POST,
            &format!("/api/v1/milestones/{milestone}/dispute/files"),
            &user.token,
        )
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap(),
    )
    .await
}

async fn dispute_files_are_checked_by_content_bounded_and_shown_to_the_parties_only(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = app_without_scheduler(&db).await;
    let admin = app.admin().await;
    let deal = funded_deal(&app, &admin, &[10_000, 5_000]).await;
    let id = &deal.milestones[0];
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), b"screenshot of the brief"].concat();
    let (status, _) = upload(&app, &deal.buyer, id, png.clone(), "brief.png").await;
    assert_eq!(status, 409, "only a disputed milestone takes evidence");
    dispute(&app, &deal.buyer, id).await;

    let (status, problem) = upload(&app, &deal.buyer, id, b"<script>alert(1)</script>".to_vec(), "x.png").await;
    assert_eq!(status, 415, "{problem}");
    let (status, _) = upload(&app, &deal.buyer, id, vec![0xFF; 5 * 1024 * 1024 + 1], "big.jpg").await;
    assert_eq!(status, 413);
    let (status, stored) = upload(&app, &deal.buyer, id, png.clone(), "brief.png").await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        (&stored["content_type"], &stored["size_bytes"], &stored["uploaded_by"]),
        (&json!("image/png"), &json!(png.len()), &json!(deal.buyer.id))
    );
    let (status, _) = upload(
        &app,
        &deal.seller,
        id,
        b"%PDF-1.7 the delivery".to_vec(),
        "delivery.pdf",
    )
    .await;
    assert_eq!(status, 201, "the other party answers with files too");

    let listed = get(&app, &deal.seller, &format!("/api/v1/milestones/{id}/dispute/files")).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let file_id = stored["id"].as_str().unwrap();
    let path = format!("/api/v1/milestones/{id}/dispute/files/{file_id}");
    let download = app.authed(Method::GET, &path, &admin.token).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        download.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        png.as_slice(),
        "the bytes as uploaded"
    );

    let stranger = app.user("client").await;
    for path in [path.clone(), format!("/api/v1/milestones/{id}/dispute/files")] {
        let response = app.authed(Method::GET, &path, &stranger.token).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let elsewhere = format!("/api/v1/milestones/{}/dispute/files/{file_id}", deal.milestones[1]);
    let response = app
        .authed(Method::GET, &elsewhere, &deal.buyer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "a file is reached through its own milestone");

    for n in 2..10 {
        let (status, _) = upload(&app, &deal.buyer, id, png.clone(), &format!("{n}.png")).await;
        assert_eq!(status, 201);
    }
    let (status, problem) = upload(&app, &deal.buyer, id, png, "11.png").await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("at most 10 files"));
}
