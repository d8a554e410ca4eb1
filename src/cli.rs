//! The command line: `serve` (the default), `migrate`, `check-config`.
//! `main.rs` only parses and calls [`run`]; every command lives here so it
//! can be tested as a library call.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::build_info::BuildInfo;
use crate::config::Config;
use crate::startup::Application;
use crate::store::Database;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, Parser)]
#[command(
    name = "amani",
    version,
    about = "Escrow backend: API server and operations commands"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Apply pending database migrations and print the schema version.
    Migrate,
    /// Validate the configuration and print what would be used (secrets masked).
    CheckConfig,
    /// Print the OpenAPI 3.1 document (the one served at
    /// /api-docs/openapi.json), e.g. for a client generator:
    /// `amani openapi > openapi.json`.
    Openapi,
    /// Take a verified, compressed, checksummed backup (or verify one).
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        /// Folder to write to (default BACKUP_DIR).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Delete backups older than this many days, never the newest
        /// (default BACKUP_RETENTION_DAYS).
        #[arg(long)]
        retention_days: Option<u32>,
        /// Also copy the backup and its manifest to object storage:
        /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or
        /// file:///path (credentials from the provider's usual variables).
        #[arg(long)]
        upload: Option<String>,
    },
    /// Restore a backup over the database, after checking it.
    Restore {
        file: std::path::PathBuf,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
        /// The database to overwrite (default DATABASE_URL).
        #[arg(long)]
        target: Option<String>,
    },
    /// Ledger operations.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Ask the payment provider about deposits and withdrawals still pending
    /// after RECONCILE_MIN_AGE_SECONDS and settle them from its answer (one
    /// pass of the worker `serve` runs). Exit 1 if the provider could not be
    /// asked about some of them.
    ///
    /// Example: `amani reconcile --dry-run` shows what a pass would do.
    Reconcile {
        /// Ask and report, change nothing (no payout is sent again).
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The service's own alerting.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Restore FILE into a scratch database, check migrations, the ledger
    /// and the row counts against its manifest, then drop it.
    Verify { file: std::path::PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test alert through the real delivery path (retries included)
    /// and print what each channel answered. Exit 1 if any failed.
    Test {
        /// slack, pagerduty or all.
        #[arg(long, default_value = "all")]
        channel: String,
        /// info, warning, error or critical.
        #[arg(long, default_value = "critical")]
        severity: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Prove the books: balances sum to zero per currency, no account but the
    /// gateway's is negative, balances equal their transfers, escrow equals
    /// what milestones hold. Exit 1 on any break.
    ///
    /// Example: `amani ledger check --json 2>/dev/null | jq .balanced`
    Check {
        /// Print the report as one JSON document (and nothing else).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account. The password is read from standard input
    /// (one line) or from AMANI_ADMIN_PASSWORD, never from the command line.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        full_name: String,
    },
}

/// Exit code for a configuration the service refuses to start with.
pub const EXIT_CONFIG: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("amani: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => check_config(&config),
        Command::Openapi => match serde_json::to_string_pretty(&crate::http::openapi_document(&config.app_version)) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("amani: cannot render the OpenAPI document: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve => run_with_logs(config, crate::telemetry::LogOutput::Stdout, serve),
        Command::Migrate => run_async(config, migrate),
        Command::Admin {
            command: AdminCommand::Create { email, full_name },
        } => run_async(config, move |config| create_admin(config, email, full_name)),
        Command::Ledger {
            command: LedgerCommand::Check { json },
        } => run_async(config, move |config| ledger_check(config, json)),
        Command::Reconcile { dry_run, json } => run_async(config, move |config| reconcile(config, dry_run, json)),
        Command::Alert {
            command: AlertCommand::Test { channel, severity },
        } => run_async(config, move |config| alert_test(config, channel, severity)),
        Command::Backup {
            command: Some(BackupCommand::Verify { file }),
            ..
        } => run_async(config, move |config| backup_verify(config, file)),
        Command::Backup {
            command: None,
            out,
            retention_days,
            upload,
        } => run_async(config, move |config| backup(config, out, retention_days, upload)),
        Command::Restore { file, yes, target } => {
            let target =
                target.unwrap_or_else(|| secrecy::ExposeSecret::expose_secret(&config.database.url).to_owned());
            if let Err(message) = confirm_restore(&target, yes) {
                eprintln!("amani: {message}");
                return ExitCode::from(EXIT_CONFIG);
            }
            run_async(config, move |config| restore(config, file, target))
        }
    }
}

/// Starts telemetry and the runtime, runs `command`, and turns its result
/// into an exit code (the message goes to the log and to stderr).
fn run_async<F, Fut>(config: Config, command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    run_with_logs(config, crate::telemetry::LogOutput::Stderr, command)
}

fn run_with_logs<F, Fut>(config: Config, logs: crate::telemetry::LogOutput, command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    // Sentry first, before any thread exists, so its panic hook sees them all.
    crate::telemetry::install_panic_log_hook();
    let _sentry = crate::telemetry::error_tracking::init(&config, &BuildInfo::current());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("amani: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = {
        let _inside = runtime.enter();
        match crate::telemetry::init(&config, logs) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("amani: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    let result = runtime.block_on(command(config));
    if let Err(message) = &result {
        tracing::error!(error = %message, "command failed");
        eprintln!("amani: {message}");
    }
    // Flush spans while the runtime still drives the exporter's I/O.
    drop(telemetry);
    drop(runtime);
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_config(config: &Config) -> ExitCode {
    match serde_json::to_string_pretty(&config.masked()) {
        Ok(text) => {
            println!("{text}");
            println!("configuration OK ({})", config.environment.as_str());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("amani: cannot print the configuration: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let app = Application::build(config).await.map_err(|e| e.to_string())?;
    let lifecycle = app.state().lifecycle.clone();
    tokio::spawn(async move {
        crate::lifecycle::termination_signal().await;
        lifecycle.begin_shutdown();
    });
    app.run_until_stopped().await.map_err(|e| format!("server error: {e}"))
}

async fn migrate(config: Config) -> Result<(), String> {
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    let status = db.migrate().await.map_err(|e| format!("migration failed: {e}"))?;
    db.close().await;
    let version = status.current_version.map_or("none".to_owned(), |v| v.to_string());
    println!(
        "migrations applied; schema version {version}, {} pending",
        status.pending
    );
    Ok(())
}

async fn create_admin(config: Config, email: String, full_name: String) -> Result<(), String> {
    use crate::domain::account::{Email, Role, bounded_text, check_password_policy};
    use crate::store::users::{self, NewUser};
    use secrecy::SecretString;

    let email = Email::parse(&email).map_err(|e| e.to_string())?;
    let full_name = bounded_text("full_name", &full_name, 120).map_err(|e| e.to_string())?;
    let password = match std::env::var("AMANI_ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    check_password_policy(&password, &email).map_err(|e| e.to_string())?;
    let hash = crate::auth::passwords::hash(SecretString::from(password))
        .await
        .map_err(|e| e.to_string())?;

    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| format!("database not ready: {e}"))?;
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    let user = users::insert(
        &mut tx,
        NewUser {
            email: &email,
            password_hash: &hash,
            full_name: &full_name,
            role: Role::Admin,
            phone_number: None,
            bio: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    crate::store::audit::record(
        &mut tx,
        crate::store::audit::AuditEvent {
            actor_id: None,
            action: "user.admin_created",
            target_type: "user",
            target_id: Some(&user.id),
            request_id: None,
            details: serde_json::json!({ "via": "cli" }),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    db.close().await;
    println!("admin created: {} ({})", user.email, user.id);
    Ok(())
}

async fn ledger_check(config: Config, json: bool) -> Result<(), String> {
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    db.check().await.map_err(|e| format!("database not reachable: {e}"))?;
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let report = crate::store::ledger::check(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    db.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        for problem in &report.problems {
            println!("problem: {problem}");
        }
        for (currency, held) in &report.held_in_escrow {
            println!("held in escrow: {held} {currency} (minor units)");
        }
        if report.balanced {
            println!(
                "ledger balanced: {} accounts, {} transfers",
                report.accounts, report.transfers
            );
        }
    }
    if report.balanced {
        Ok(())
    } else {
        Err(format!("ledger NOT balanced: {} problems", report.problems.len()))
    }
}

async fn reconcile(config: Config, dry_run: bool, json: bool) -> Result<(), String> {
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, std::sync::Arc::clone(&metrics)).map_err(|e| e.to_string())?;
    db.check().await.map_err(|e| format!("database not reachable: {e}"))?;
    let gateway = crate::gateway::build(&config.payments)?;
    let payments = crate::operations::payments::Payments {
        db: std::sync::Arc::clone(&db),
        gateway,
        alerts: crate::alerts::Dispatcher::new(&config, std::sync::Arc::clone(&metrics)),
        metrics,
        environment: config.environment.as_str(),
        reconcile: config.payments.reconcile.clone(),
    };
    let report = payments.reconcile_once(dry_run).await.map_err(|e| e.to_string())?;
    db.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        for item in &report.items {
            println!(
                "{:<28} {:<10} {:>14} {} {:>7}s  provider: {:<24} -> {}",
                item.reference,
                item.kind,
                item.amount,
                item.currency,
                item.age_seconds,
                item.provider_says,
                item.action
            );
        }
        println!(
            "{}examined {}, settled {}, still pending {}, errors {}; {} pending past the stuck limit",
            if dry_run { "(dry run) " } else { "" },
            report.examined,
            report.settled,
            report.still_pending,
            report.errors,
            report.stuck
        );
    }
    if report.errors > 0 {
        return Err(format!("{} record(s) could not be reconciled", report.errors));
    }
    Ok(())
}

async fn alert_test(mut config: Config, channel: String, severity: String) -> Result<(), String> {
    use crate::alerts::{Alert, Dispatcher, Severity};
    let severity: Severity = severity.parse().map_err(|e| format!("--severity: expected {e}"))?;
    match channel.as_str() {
        "all" => {}
        "slack" => config.alerts_channels.pagerduty_routing_key = None,
        "pagerduty" => config.alerts_channels.slack_webhook_url = None,
        other => return Err(format!("--channel: expected slack, pagerduty or all, not {other:?}")),
    }
    // A test alert reaches every chosen channel whatever its minimum.
    config.alerts.min_severity_slack = Severity::Info;
    config.alerts.min_severity_pagerduty = Severity::Info;
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let dispatcher = Dispatcher::new(&config, metrics);
    if dispatcher.channel_names().is_empty() {
        return Err("no alert channel configured (set SLACK_WEBHOOK_URL and/or PAGERDUTY_API_KEY)".into());
    }
    let alert = Alert::trigger(
        config.environment.as_str(),
        &format!("alert-test-{}", uuid::Uuid::new_v4()),
        "AlertTest",
        severity,
        "a test alert sent by `amani alert test`",
    );
    let mut failed = false;
    for (name, outcome) in dispatcher.deliver(&alert).await {
        match outcome {
            Ok(delivery) => println!("{name}: delivered (HTTP {}) {}", delivery.status, delivery.body.trim()),
            Err(err) => {
                failed = true;
                println!("{name}: FAILED ({err})");
            }
        }
    }
    if failed {
        Err("at least one channel failed".into())
    } else {
        Ok(())
    }
}

async fn backup(
    config: Config,
    out: Option<std::path::PathBuf>,
    retention_days: Option<u32>,
    upload: Option<String>,
) -> Result<(), String> {
    use crate::ops::backup;
    let dir = out.unwrap_or_else(|| config.backup_dir.clone());
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let result = backup::backup(&config, &db, &dir).await;
    db.close().await;
    let manifest = result.map_err(|e| format!("backup FAILED: {e}"))?;
    if let Some(destination) = &upload {
        // The object-store credentials are the providers' own variables,
        // read here at the edge like every other setting.
        let options = std::env::vars()
            .filter(|(k, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        let uploaded = backup::upload(&dir.join(&manifest.file), destination, options)
            .await
            .map_err(|e| format!("backup written, but the upload FAILED: {e}"))?;
        for location in uploaded {
            println!("uploaded {location}");
        }
    }
    let pruned = backup::prune(&dir, retention_days.unwrap_or(config.backup_retention_days))
        .map_err(|e| format!("backup written, but pruning failed: {e}"))?;
    for file in &pruned {
        println!("pruned {file}");
    }
    let rows: i64 = manifest.row_counts.values().sum();
    println!(
        "backup ok: {} ({} bytes, sha256 {}, {rows} rows, schema {}) in {:.1}s; {} pruned",
        dir.join(&manifest.file).display(),
        manifest.size_bytes,
        &manifest.sha256[..16],
        manifest.schema_version.map_or("none".into(), |v| v.to_string()),
        started.elapsed().as_secs_f64(),
        pruned.len()
    );
    Ok(())
}

async fn backup_verify(config: Config, file: std::path::PathBuf) -> Result<(), String> {
    let report = crate::ops::restore::verify(&config, &file)
        .await
        .map_err(|e| format!("verify FAILED: {e}"))?;
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    if report.ok() {
        println!(
            "verify ok: {} restores with current migrations, a balanced ledger and matching row counts",
            file.display()
        );
        Ok(())
    } else {
        Err(format!("verify FAILED: {} does not restore cleanly", file.display()))
    }
}

/// `--yes`, or on a terminal the target's name typed back; never silently.
fn confirm_restore(target: &str, yes: bool) -> Result<(), String> {
    use std::io::IsTerminal;
    let description = crate::ops::restore::describe_target(target);
    eprintln!("amani restore will overwrite {description}");
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err("refusing to restore without --yes when not on a terminal".into());
    }
    let word = crate::ops::restore::confirmation_word(target);
    eprint!("Type {word:?} to overwrite it: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| e.to_string())?;
    if answer.trim() == word {
        Ok(())
    } else {
        Err("not confirmed; nothing was changed".into())
    }
}

async fn restore(config: Config, file: std::path::PathBuf, target: String) -> Result<(), String> {
    let started = std::time::Instant::now();
    let restored = crate::ops::restore::restore(&config, &file, &target)
        .await
        .map_err(|e| format!("restore FAILED (the old data is untouched): {e}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&restored).map_err(|e| e.to_string())?
    );
    println!(
        "restore ok: {} from {} in {:.1}s",
        restored.target,
        file.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(previous) = restored.previous_kept_as {
        println!("the previous database is kept as {previous}; drop it once you are satisfied");
    }
    Ok(())
}
