//! Each probe's status code in each state of the database and the process.

use std::time::{Duration, Instant};

use crate::both_engines;
use crate::helpers::{Engine, TcpProxy, TestApp, TestDb, json};

both_engines!(
    a_healthy_service_answers_every_probe_with_200,
    a_database_unreachable_at_start_is_reported_then_recovered_without_restart,
    pending_migrations_keep_readiness_at_503_until_applied,
);

async fn a_healthy_service_answers_every_probe_with_200(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;

    assert_eq!(app.status_of("/api/v1/ping").await, 200);
    let (status, health) = json(app.get("/api/v1/health").await).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["checks"]["database"]["status"], "healthy");
    let expected_engine = if engine == Engine::Sqlite {
        "sqlite"
    } else {
        "postgresql"
    };
    assert_eq!(health["checks"]["database"]["engine"], expected_engine);
    assert_eq!(health["checks"]["migrations"]["pending"], 0);
    assert_eq!(
        health["checks"]["migrations"]["current_version"],
        health["checks"]["migrations"]["latest_version"]
    );
    let (status, ready) = json(app.get("/api/v1/readiness").await).await;
    assert_eq!((status, &ready["ready"]), (200, &serde_json::json!(true)));
}

/// SQLite is "unreachable" when its folder cannot be created (a file stands
/// where the folder should be); PostgreSQL when a proxy in front refuses.
async fn a_database_unreachable_at_start_is_reported_then_recovered_without_restart(engine: Engine) {
    let db = TestDb::create(engine).await;
    let (url, proxy, blocker) = match engine {
        Engine::Sqlite => {
            let path = db.sqlite_path().expect("sqlite path");
            let folder = path.parent().expect("folder").to_path_buf();
            std::fs::write(&folder, b"not a folder").expect("block the data folder");
            (db.url.clone(), None, Some(folder))
        }
        Engine::Postgres => {
            let proxy = TcpProxy::start(db.server.expect("server address")).await;
            proxy.cut();
            (db.url_via(&proxy), Some(proxy), None)
        }
    };
    let app = TestApp::spawn_with(&url, &[]).await;

    // It started and answers, but says the database is not there.
    assert_eq!(app.status_of("/api/v1/ping").await, 200);
    let (status, health) = json(app.get("/api/v1/health").await).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["checks"]["database"]["status"], "unhealthy");
    let (status, ready) = json(app.get("/api/v1/readiness").await).await;
    assert_eq!(status, 503);
    assert_eq!(ready["ready"], false);

    // The database arrives: the background monitor connects and migrates.
    if let Some(folder) = blocker {
        std::fs::remove_file(&folder).expect("unblock the data folder");
    }
    if let Some(proxy) = &proxy {
        proxy.restore();
    }
    app.wait_for_status("/api/v1/readiness", 200, Duration::from_secs(15))
        .await;
    assert_eq!(app.status_of("/api/v1/health").await, 200);
}

async fn pending_migrations_keep_readiness_at_503_until_applied(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_with(&db.url, &[("AUTO_MIGRATE", "false")]).await;
    // Give the monitor time to connect: the database is there, only the
    // schema is missing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, ready) = json(app.get("/api/v1/readiness").await).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready["reason"].as_str().unwrap_or("").contains("pending"), "{ready}");
    let (status, health) = json(app.get("/api/v1/health").await).await;
    assert_eq!(status, 503);
    assert_eq!(health["checks"]["database"]["status"], "healthy", "{health}");
    assert_eq!(health["checks"]["migrations"]["status"], "unhealthy");
    assert!(health["checks"]["migrations"]["pending"].as_u64().unwrap_or(0) >= 1);
    assert!(health["checks"]["migrations"]["current_version"].is_null());

    app.state.db.migrate().await.expect("migrate");
    let (status, ready) = json(app.get("/api/v1/readiness").await).await;
    assert_eq!(status, 200, "{ready}");
}

/// Needs a database that can be cut mid-flight, so PostgreSQL behind a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_while_serving_fails_fast_with_503_and_recovers() {
    let db = TestDb::create(Engine::Postgres).await;
    let proxy = TcpProxy::start(db.server.expect("server address")).await;
    let app = TestApp::spawn_ready(&db.url_via(&proxy), &[]).await;

    proxy.cut();
    let started = Instant::now();
    let (status, health) = json(app.get("/api/v1/health").await).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(app.status_of("/api/v1/readiness").await, 503);
    // Not a hang: the pool gives up after DATABASE_ACQUIRE_TIMEOUT_SECONDS (1 s here).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Once known down, requests that need the database are refused at once.
    let fast = Instant::now();
    let err = app.state.db.ensure_usable().expect_err("database known to be down");
    assert!(err.is_unavailable());
    assert!(fast.elapsed() < Duration::from_millis(50));
    assert_eq!(app.status_of("/api/v1/ping").await, 200);

    proxy.restore();
    app.wait_for_status("/api/v1/readiness", 200, Duration::from_secs(15))
        .await;
    assert!(app.state.db.ensure_usable().is_ok());
}

/// Shutdown while a request is in flight: readiness turns 503 at once, the
/// in-flight request still completes with 200, and the server exits cleanly.
/// The in-flight request is a health check slowed by a delaying proxy in
/// front of PostgreSQL: a real request waiting on a real (slow) dependency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_turns_readiness_503_while_in_flight_requests_complete() {
    let db = TestDb::create(Engine::Postgres).await;
    let proxy = TcpProxy::start(db.server.expect("server address")).await;
    let app = TestApp::spawn_ready(&db.url_via(&proxy), &[("SHUTDOWN_DRAIN_DELAY_SECONDS", "2")]).await;

    proxy.set_delay(Duration::from_millis(300));
    let slow = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/v1/health");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.state.lifecycle.begin_shutdown();

    let (status, ready) = json(app.get("/api/v1/readiness").await).await;
    assert_eq!(status, 503);
    assert!(ready["reason"].as_str().unwrap_or("").contains("draining"), "{ready}");
    assert_eq!(slow.await.expect("task").expect("in-flight request"), 200);
    let started = Instant::now();
    app.shutdown().await.expect("clean exit");
    assert!(started.elapsed() < Duration::from_secs(10));
}
