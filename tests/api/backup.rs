//! The disaster-recovery drill, on both engines: money in escrow, a write
//! load running, a backup taken in the middle of it, the database wiped,
//! the backup restored — and everything committed before the backup began
//! is there, the ledger balances, the counts match the manifest.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_engines;
use crate::escrow::{active_project, assert_books_balance, deposit, money_post, verified_user};
use crate::helpers::{Engine, TestApp, TestDb};

fn amani(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amani"))
        .env_clear()
        .env("DATABASE_URL", database_url)
        .args(args)
        .output()
        .unwrap()
}

async fn committed_deposits(app: &TestApp) -> Vec<(String, String)> {
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
    obs.run(
        "test.deposits",
        sqlx::query_as(
            "select id, updated_at from escrow_transactions where type = 'deposit' and status = 'completed'",
        )
        .fetch_all(conn),
    )
    .await
    .unwrap()
}

both_engines!(the_backup_and_restore_drill_loses_nothing_committed_before_the_backup);

async fn the_backup_and_restore_drill_loses_nothing_committed_before_the_backup(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    deposit(&app, &buyer, 500_000).await;
    let (project, _) = active_project(&app, &buyer, &seller, &[50_000, 70_000]).await;
    let (status, _) = money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201);
    assert_eq!(assert_books_balance(&app).await, 120_000);

    // A write load: deposits, one after another, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, url, token, stop) = (
            app.client.clone(),
            app.url("/api/v1/wallet/deposit"),
            buyer.token.clone(),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"amount": 100, "currency": "NGN"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                done += 1;
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before_backup = committed_deposits(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_string_lossy().into_owned();
    let backup_started = Instant::now();
    let backup = {
        let url = db.url.clone();
        let out = out.clone();
        tokio::task::spawn_blocking(move || amani(&url, &["backup", "--out", &out]))
            .await
            .unwrap()
    };
    let backup_time = backup_started.elapsed();
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(stdout.contains("backup ok:"), "{stdout}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = load.await.unwrap();
    assert!(writes > 0, "the load ran during the backup");

    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| !p.to_string_lossy().ends_with(".manifest.json"))
        .expect("a backup file");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.manifest.json", file.display())).unwrap()).unwrap();
    let file = file.to_string_lossy().into_owned();

    // A verify in a scratch database.
    let verify = amani(&db.url, &["backup", "verify", &file]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // SQLite: no restore while a server holds the file.
    if engine == Engine::Sqlite {
        let refused = amani(&db.url, &["restore", &file, "--yes"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by a running Amani server"));
    }

    // Disaster: the server stops and the data is gone.
    app.shutdown().await.unwrap();
    match engine {
        Engine::Sqlite => {
            let path = db.sqlite_path().unwrap();
            std::fs::remove_file(&path).unwrap();
        }
        Engine::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            sqlx::raw_sql("drop schema public cascade; create schema public")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    let restore_started = Instant::now();
    let restored = {
        let url = db.url.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || amani(&url, &["restore", &file, "--yes"]))
            .await
            .unwrap()
    };
    let restore_time = restore_started.elapsed();
    let stdout = String::from_utf8_lossy(&restored.stdout).into_owned();
    assert!(
        restored.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(stdout.contains("restore ok"), "{stdout}");
    println!("drill ({engine:?}): backup {backup_time:?}, restore {restore_time:?}, {writes} writes during the backup");

    // Back up again on the restored data: everything committed before the
    // backup started is there, the books balance, the counts match.
    let app = TestApp::spawn(&db).await;
    let after = committed_deposits(&app).await;
    for (id, _) in &before_backup {
        assert!(
            after.iter().any(|(a, _)| a == id),
            "deposit {id} committed before the backup is missing"
        );
    }
    assert_eq!(assert_books_balance(&app).await, 120_000, "the escrow is intact");
    let mut conn = app.state.db.acquire().await.unwrap();
    let counts = amani::ops::backup::row_counts(&mut conn).await.unwrap();
    for (table, count) in manifest["row_counts"].as_object().unwrap() {
        assert_eq!(counts[table.as_str()], count.as_i64().unwrap(), "{table}");
    }
    drop(conn);

    if engine == Engine::Postgres {
        // The previous (wiped) database was kept under another name.
        let marker = "the previous database is kept as ";
        let start = stdout.find(marker).expect("the kept database is named") + marker.len();
        let previous = stdout[start..].split(';').next().unwrap().to_owned();
        assert!(previous.contains("_before_restore_"), "{previous}");
        let admin_url = crate::helpers::postgres_admin_url();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "drop database if exists \"{previous}\" with (force)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn retention_prunes_old_backups_by_manifest_time_and_never_the_newest() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_string_lossy().into_owned();
    for _ in 0..2 {
        let backup = amani(&db.url, &["backup", "--out", &out]);
        assert!(backup.status.success());
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct file names
    }
    // Age the older one by its manifest (file times are not trusted).
    let backups = amani::ops::backup::list(dir.path());
    assert_eq!(backups.len(), 2);
    let (old_path, mut old) = backups[0].clone();
    old.created_at = "2000-01-01T00:00:00.000000Z".into();
    std::fs::write(
        amani::ops::backup::manifest_path(&old_path),
        serde_json::to_string(&old).unwrap(),
    )
    .unwrap();

    let third = amani(&db.url, &["backup", "--out", &out, "--retention-days", "30"]);
    let stdout = String::from_utf8_lossy(&third.stdout);
    assert!(stdout.contains(&format!("pruned {}", old.file)), "{stdout}");
    assert_eq!(amani::ops::backup::list(dir.path()).len(), 2);
    assert!(!old_path.exists());

    // Even a retention of one day keeps the newest backup.
    for (path, mut manifest) in amani::ops::backup::list(dir.path()) {
        manifest.created_at = "2000-01-01T00:00:00.000000Z".into();
        std::fs::write(
            amani::ops::backup::manifest_path(&path),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
    }
    let pruned = amani::ops::backup::prune(dir.path(), 1).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(amani::ops::backup::list(dir.path()).len(), 1);

    // The newest backup's time is exported for the BackupMissing alert.
    let app_dir = TestApp::spawn_ready(&db.url, &[("BACKUP_DIR", &out)]).await;
    // (The aged newest manifest's time, read in the background.)
    crate::metrics::scrape_until(&app_dir, "backup_last_success_timestamp_seconds 946684800.0").await;
    drop(app);
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_the_old_data_kept() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("client").await;
    deposit(&app, &user, 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = amani(&db.url, &["backup", "--out", &dir.path().to_string_lossy()]);
    assert!(backup.status.success());
    app.shutdown().await.unwrap();
    let (file, _) = amani::ops::backup::list(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let before = std::fs::read(db.sqlite_path().unwrap()).unwrap();

    let restored = amani(&db.url, &["restore", &file.to_string_lossy(), "--yes"]);
    assert_eq!(restored.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&restored.stderr).contains("checksum"));
    assert_eq!(
        std::fs::read(db.sqlite_path().unwrap()).unwrap(),
        before,
        "the old data is untouched"
    );
    let verify = amani(&db.url, &["backup", "verify", &file.to_string_lossy()]);
    assert_eq!(verify.status.code(), Some(1));
}

/// `--upload` copies the backup and its manifest to object storage: an
/// S3-compatible server (moto, from PyPI) on loopback, and a local path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_upload_to_s3_compatible_storage_and_local_paths() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("client").await;
    deposit(&app, &user, 4_200).await;

    let port = crate::helpers::free_port();
    // scripts/dev-services.sh installs it into its tools venv.
    let venv = std::env::var("AMANI_TOOLS_VENV").unwrap_or_else(|_| "/var/tmp/amani-tools-venv".into());
    let in_venv = std::path::Path::new(&venv).join("bin/moto_server");
    let moto_server = if in_venv.is_file() {
        in_venv
    } else {
        "moto_server".into()
    };
    let mut moto = Command::new(moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server is needed by this test; run scripts/dev-services.sh");
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .put(format!("{endpoint}/amani-backups"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(started.elapsed() < Duration::from_secs(30), "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let mirror = tempfile::tempdir().unwrap();
    let run = |destination: String| {
        Command::new(env!("CARGO_BIN_EXE_amani"))
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .args([
                "backup",
                "--out",
                &dir.path().to_string_lossy(),
                "--upload",
                &destination,
            ])
            .output()
            .unwrap()
    };
    let output = run("s3://amani-backups/nightly".into());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (file, manifest) = amani::ops::backup::list(dir.path()).pop().unwrap();
    assert!(
        stdout.contains(&format!("uploaded s3://amani-backups/nightly/{}", manifest.file)),
        "{stdout}"
    );
    // What the storage holds is byte for byte the local backup and manifest
    // (read back with a signed client, as any S3 consumer would).
    use object_store::ObjectStoreExt;
    let options = [
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
    ];
    let (store, _) = object_store::parse_url_opts(&url::Url::parse("s3://amani-backups").unwrap(), options).unwrap();
    let stored = store
        .get(&object_store::path::Path::from(format!("nightly/{}", manifest.file)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), std::fs::read(&file).unwrap().as_slice());
    let stored_manifest = store
        .get(&object_store::path::Path::from(format!(
            "nightly/{}.manifest.json",
            manifest.file
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let stored_manifest: Value = serde_json::from_slice(&stored_manifest).unwrap();
    assert_eq!(stored_manifest["sha256"], manifest.sha256.as_str());
    let _ = moto.kill();
    let _ = moto.wait();
    tokio::time::sleep(Duration::from_millis(1100)).await; // a distinct file name

    // A local path works the same way (and lets us compare the bytes).
    let output = run(format!("file://{}", mirror.path().display()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (file, manifest) = amani::ops::backup::list(dir.path()).pop().unwrap();
    let copied = std::fs::read(mirror.path().join(&manifest.file)).unwrap();
    assert_eq!(copied, std::fs::read(&file).unwrap());
    let copied_manifest: Value =
        serde_json::from_slice(&std::fs::read(mirror.path().join(format!("{}.manifest.json", manifest.file))).unwrap())
            .unwrap();
    assert_eq!(copied_manifest["sha256"], manifest.sha256.as_str());
}

/// A manifest whose money figures were edited does not pass `verify` or
/// `restore`, and a failed SQLite restore leaves no staging files behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_manifest_fails_verify_and_restore_and_leaves_nothing_behind() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("client").await;
    deposit(&app, &user, 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    assert!(
        amani(&db.url, &["backup", "--out", &dir.path().to_string_lossy()])
            .status
            .success()
    );
    app.shutdown().await.unwrap();
    let (file, mut manifest) = amani::ops::backup::list(dir.path()).pop().unwrap();
    // Claim more money was held than the books show.
    manifest.held_in_escrow.insert("NGN".into(), 999_999);
    std::fs::write(
        amani::ops::backup::manifest_path(&file),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let verify = amani(&db.url, &["backup", "verify", &file.to_string_lossy()]);
    assert_eq!(verify.status.code(), Some(1));
    let restored = amani(&db.url, &["restore", &file.to_string_lossy(), "--yes"]);
    assert_eq!(restored.status.code(), Some(1));
    let said = String::from_utf8_lossy(&restored.stderr);
    assert!(said.contains("held_in_escrow NGN"), "{said}");
    let folder = db.sqlite_path().unwrap().parent().unwrap().to_owned();
    let leftovers: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Restoring into a PostgreSQL database that does not exist yet creates it
/// (and leaves no staging database behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_missing_postgres_database_creates_it() {
    let db = TestDb::create(Engine::Postgres).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("client").await;
    deposit(&app, &user, 2_500).await;
    let dir = tempfile::tempdir().unwrap();
    assert!(
        amani(&db.url, &["backup", "--out", &dir.path().to_string_lossy()])
            .status
            .success()
    );
    app.shutdown().await.unwrap();
    let (file, _) = amani::ops::backup::list(dir.path()).pop().unwrap();
    let name = format!("amani_new_{}", uuid::Uuid::new_v4().simple());
    let mut target = url::Url::parse(&db.url).unwrap();
    target.set_path(&name);
    let restored = amani(
        &db.url,
        &["restore", &file.to_string_lossy(), "--yes", "--target", target.as_str()],
    );
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&crate::helpers::postgres_admin_url())
        .await
        .unwrap();
    let names: Vec<(String,)> = sqlx::query_as("select datname from pg_database where datname like $1")
        .bind(format!("{name}%"))
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(names, vec![(name.clone(),)], "created, with no staging left");
    let mut restored_db = <sqlx::PgConnection as sqlx::Connection>::connect(target.as_str())
        .await
        .unwrap();
    let (balance,): (i64,) = sqlx::query_as("select balance from ledger_accounts where kind = 'user_available'")
        .fetch_one(&mut restored_db)
        .await
        .unwrap();
    assert_eq!(balance, 2_500);
    drop(restored_db);
    sqlx::query(sqlx::AssertSqlSafe(format!("drop database \"{name}\" with (force)")))
        .execute(&mut admin)
        .await
        .unwrap();
}
