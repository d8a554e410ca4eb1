//! The binary itself: configuration errors, first run, migrate, signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_engines;
use crate::helpers::{Engine, TestDb};

const AMANI: &str = env!("CARGO_BIN_EXE_amani");

/// The binary with an empty environment (no inherited DATABASE_URL etc.),
/// run in `dir` so no stray `.env` is read.
fn amani(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(AMANI);
    command.env_clear().current_dir(dir).envs(vars.iter().copied());
    command
}

#[test]
fn a_bad_environment_value_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (vars, variable) in [
        (vec![("PORT", "eighty")], "PORT"),
        (vec![("AUTO_MIGRATE", "perhaps")], "AUTO_MIGRATE"),
        (vec![("DATABASE_URL", "mysql://db/amani")], "DATABASE_URL"),
        (vec![("ENVIRONMENT", "production")], "SECRET_KEY"),
        (
            vec![("ENVIRONMENT", "production"), ("SECRET_KEY", "too-short")],
            "SECRET_KEY",
        ),
    ] {
        for subcommand in [&["check-config"][..], &["serve"][..], &[][..]] {
            let output = amani(dir.path(), &vars).args(subcommand).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{vars:?} {subcommand:?}: {stderr}");
            assert!(stderr.contains(variable), "{vars:?}: {stderr}");
        }
    }
    // Nothing was created by a refused start.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn check_config_prints_the_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let output = amani(
        dir.path(),
        &[
            ("SECRET_KEY", "a-very-secret-value-that-must-not-print"),
            ("DATABASE_URL", "postgres://amani:hunter2@db.internal:5432/amani"),
        ],
    )
    .arg("check-config")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("configuration OK"));
    assert!(stdout.contains("db.internal"));
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains("must-not-print"), "{stdout}");
}

/// Reads JSON log lines from the child's stdout until one says "listening",
/// and returns the address it names.
pub fn wait_for_listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                && log["message"] == "listening"
            {
                let _ = tx.send(log["address"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the server logged its address")
}

/// `cargo run` on a fresh clone: no configuration, an empty directory. The
/// SQLite file and its folder appear, the schema is migrated, the probes say
/// ready, and SIGTERM ends the process with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_in_an_empty_directory_creates_and_migrates_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = amani(dir.path(), &[("PORT", "0")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = wait_for_listening(&mut child);

    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let response = client
            .get(format!("http://{address}/api/v1/readiness"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir.path().join("data/amani.db").is_file());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

both_engines!(migrate_applies_every_migration_and_is_idempotent);

async fn migrate_applies_every_migration_and_is_idempotent(engine: Engine) {
    let db = TestDb::create(engine).await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = amani(dir.path(), &[("DATABASE_URL", &db.url)])
            .arg("migrate")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("0 pending"), "{stdout}");
        // A command's stdout is its report; its log lines go to stderr.
        assert!(!stdout.contains("\"level\""), "{stdout}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("database reachable"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Admins come only from the CLI, with the password on standard input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_reads_the_password_from_stdin_and_the_admin_can_log_in() {
    use std::io::Write;
    let db = TestDb::create(Engine::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = amani(dir.path(), &[("DATABASE_URL", &db.url)])
        .args(["admin", "create", "--email", "Root@Example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"an admin passphrase\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("admin created: root@example.com"));

    let app = crate::helpers::TestApp::spawn(&db).await;
    let (status, login) = crate::helpers::json(app.login("root@example.com", "an admin passphrase").await).await;
    assert_eq!(status, 200);
    let token = login["access_token"].as_str().unwrap();
    let queue = app
        .authed(reqwest::Method::GET, "/api/v1/admin/kyc", token)
        .send()
        .await
        .unwrap();
    assert_eq!(queue.status(), 200, "the CLI-made account is an admin");

    // A weak password is refused and nothing is created.
    let mut weak = amani(dir.path(), &[("DATABASE_URL", &db.url)])
        .args(["admin", "create", "--email", "weak@example.com"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    weak.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let output = weak.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 10"));
}

both_engines!(ledger_check_passes_on_good_books_and_fails_on_a_broken_one);

async fn ledger_check_passes_on_good_books_and_fails_on_a_broken_one(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = crate::helpers::TestApp::spawn(&db).await;
    let user = app.user("client").await;
    crate::escrow::deposit(&app, &user, 12_345).await;
    let dir = tempfile::tempdir().unwrap();
    let check = || {
        amani(dir.path(), &[("DATABASE_URL", &db.url)])
            .args(["ledger", "check"])
            .output()
            .unwrap()
    };
    // `--json`: stdout is one JSON document, nothing else (logs go to stderr).
    let check_json = || {
        let output = amani(dir.path(), &[("DATABASE_URL", &db.url)])
            .args(["ledger", "check", "--json"])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
        (output.status.code(), report)
    };
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ledger balanced"), "{stdout}");
    assert!(!stdout.contains("held in escrow"), "nothing held yet: {stdout}");
    let (code, report) = check_json();
    assert_eq!(
        (code, &report["balanced"]),
        (Some(0), &serde_json::json!(true)),
        "{report}"
    );
    // A usage mistake is exit 2, as the README says.
    let usage = amani(dir.path(), &[("DATABASE_URL", &db.url)])
        .args(["ledger", "check", "--jsn"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));

    // Break the books on purpose: money from nowhere.
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    obs.run(
        "test.corrupt",
        sqlx::query("update ledger_accounts set balance = balance + 1 where kind = 'user_available'").execute(conn_ref),
    )
    .await
    .unwrap();
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("balances sum to 1"), "{stdout}");
    assert!(
        stdout.contains("stored balance 12346 but its transfers add up to 12345"),
        "{stdout}"
    );
    let (code, report) = check_json();
    assert_eq!(
        (code, &report["balanced"]),
        (Some(1), &serde_json::json!(false)),
        "{report}"
    );
    assert_eq!(report["totals"]["NGN"], 1, "{report}");
}

both_engines!(reconcile_reports_what_it_finds_and_settles_only_without_dry_run);

/// `amani reconcile`: a deposit whose checkout the gateway never heard of
/// is reported (dry run changes nothing), then failed once expired.
async fn reconcile_reports_what_it_finds_and_settles_only_without_dry_run(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = crate::helpers::TestApp::spawn_ready(
        &db.url,
        &[("SANDBOX_OUTCOME", "pending"), ("RECONCILE_ENABLED", "false")],
    )
    .await;
    let user = app.user("client").await;
    let (status, body) = crate::escrow::money_post(
        &app,
        &user,
        "/api/v1/wallet/deposit",
        serde_json::json!({"amount": 5_000, "currency": "NGN"}),
    )
    .await;
    assert_eq!(
        (status, body["transaction"]["status"].as_str()),
        (201, Some("pending")),
        "{body}"
    );
    let reference = body["transaction"]["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    // A new process's sandbox has no record of the checkout: "not found".
    let run = |args: &[&str], expiry: &str| {
        amani(
            dir.path(),
            &[
                ("DATABASE_URL", &db.url),
                ("RECONCILE_MIN_AGE_SECONDS", "0"),
                ("DEPOSIT_EXPIRY_SECONDS", expiry),
            ],
        )
        .arg("reconcile")
        .args(args)
        .output()
        .unwrap()
    };
    let output = run(&["--dry-run"], "60");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&reference))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("not_found") && line.contains("still_pending"), "{line}");
    assert!(stdout.contains("(dry run) examined 1, settled 0"), "{stdout}");

    // Aged past the expiry, the real pass fails it; the dry run said
    // nothing would change and nothing did.
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    obs.run(
        "test.age",
        sqlx::query("update escrow_transactions set created_at = '2020-01-01T00:00:00.000000Z' where id = $1")
            .bind(&reference)
            .execute(conn_ref),
    )
    .await
    .unwrap();
    drop(conn);
    let output = run(&["--dry-run"], "60");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("would_failed"), "{stdout}");
    let output = run(&[], "60");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("examined 1, settled 1"), "{stdout}");
    let output = run(&[], "60");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("examined 0"),
        "settled once"
    );
    assert_eq!(crate::escrow::available(&app, &user).await, 0);
}

/// Runs `amani` in `dir` against `url` with `--json` and returns its exit
/// code and stdout parsed as one JSON document (failing on anything else).
fn json_report(dir: &std::path::Path, url: &str, args: &[&str], stdin: &str) -> (Option<i32>, serde_json::Value) {
    use std::io::Write;
    let mut child = amani(dir, &[("DATABASE_URL", url)])
        .args(args)
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), report)
}

/// Scripts read every report with `--json`: stdout is one JSON document and
/// nothing else, whatever the command (logs go to stderr).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_command_prints_one_json_document_with_json() {
    let db = TestDb::create(Engine::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let backups = backups.to_string_lossy();
    let run = |args: &[&str], stdin: &str| json_report(dir.path(), &db.url, args, stdin);

    let (code, migrated) = run(&["migrate"], "");
    assert_eq!(
        (code, &migrated["pending"]),
        (Some(0), &serde_json::json!(0)),
        "{migrated}"
    );
    assert!(migrated["schema_version"].as_i64().is_some(), "{migrated}");

    let (code, settings) = run(&["check-config"], "");
    assert_eq!(code, Some(0));
    assert_eq!(settings["DATABASE_URL"], serde_json::json!(db.url), "{settings}");

    let (code, admin) = run(
        &["admin", "create", "--email", "ops@example.com"],
        "a long admin passphrase\n",
    );
    assert_eq!(
        (code, &admin["email"], &admin["role"]),
        (
            Some(0),
            &serde_json::json!("ops@example.com"),
            &serde_json::json!("admin")
        ),
        "{admin}"
    );

    let (code, ledger) = run(&["ledger", "check"], "");
    assert_eq!(
        (code, &ledger["balanced"]),
        (Some(0), &serde_json::json!(true)),
        "{ledger}"
    );

    let (code, reconciled) = run(&["reconcile", "--dry-run"], "");
    assert_eq!(
        (code, &reconciled["examined"]),
        (Some(0), &serde_json::json!(0)),
        "{reconciled}"
    );

    let (code, backup) = run(&["backup", "--out", &backups], "");
    assert_eq!(code, Some(0), "{backup}");
    let file = backup["file"].as_str().unwrap().to_owned();
    assert_eq!(
        backup["manifest"]["row_counts"]["users"], 1,
        "the admin is in it: {backup}"
    );

    let (code, verified) = run(&["backup", "verify", &file], "");
    assert_eq!(
        (code, &verified["ledger_balanced"]),
        (Some(0), &serde_json::json!(true)),
        "{verified}"
    );

    let (code, restored) = run(&["restore", &file, "--yes"], "");
    assert_eq!(code, Some(0), "{restored}");
    assert_eq!(restored["report"]["migrations_pending"], 0, "{restored}");

    // A failed operation keeps stdout empty and says why on stderr, exit 1.
    let failed = amani(dir.path(), &[("DATABASE_URL", &db.url)])
        .args(["backup", "verify", "no-such-file.db.gz", "--json"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stdout.is_empty(), "{}", String::from_utf8_lossy(&failed.stdout));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("verify FAILED"));
}

/// On a terminal `admin create` asks for the password twice and the
/// terminal does not echo it. `script` (util-linux) gives the command a
/// pseudo-terminal and copies everything the terminal shows to our stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_prompts_without_echo_on_a_terminal() {
    use std::io::{Read, Write};
    let db = TestDb::create(Engine::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let passphrase = "terminal-typed passphrase";
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{AMANI} admin create --email tty@example.com"))
        .arg("/dev/null")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Everything the terminal shows, read as it comes.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let wait_for = |text: &str, screen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {text:?} on the terminal: {screen:?}"),
            }
        }
    };
    wait_for("Password for the new admin", &mut screen);
    // The prompt is written just before echo goes off: let that happen.
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(format!("{passphrase}\n").as_bytes()).unwrap();
    wait_for("The same password again", &mut screen);
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(format!("{passphrase}\n").as_bytes()).unwrap();
    wait_for("admin created: tty@example.com", &mut screen);
    assert!(child.wait().unwrap().success(), "{screen}");
    assert!(!screen.contains(passphrase), "the password was echoed: {screen:?}");

    let app = crate::helpers::TestApp::spawn(&db).await;
    let (status, _) = crate::helpers::json(app.login("tty@example.com", passphrase).await).await;
    assert_eq!(status, 200, "the typed password is the admin's");
}
