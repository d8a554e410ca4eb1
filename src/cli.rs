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
    about = "Escrow backend: API server and operations commands",
    long_about = "Escrow backend: the API server (`amani serve`, the default) and the commands \
an operator runs beside it. Configuration comes from the environment (and a .env file in \
the working directory), as for the server.\n\n\
Only `serve` logs to stdout; every other command logs to stderr and prints its report on \
stdout, as lines for people or, with --json, as one JSON document.\n\n\
Exit codes: 0 done (or the check passed), 1 the operation failed or the check found a \
problem, 2 a usage or configuration error (nothing was done).",
    after_help = "Examples:\n  \
amani                                  # run the server (SQLite in ./data, sandbox payments)\n  \
DATABASE_URL=postgres://amani@db/amani amani migrate\n  \
amani ledger check --json 2>/dev/null | jq .balanced\n  \
amani <command> --help                 # each command's manual, with examples"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--json`, on every command that prints a report.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Format {
    /// Print the report as one JSON document on stdout, and nothing else
    /// there (logs and errors stay on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    ///
    /// Listens on HOST:PORT (127.0.0.1:8000 by default), migrates the
    /// database unless AUTO_MIGRATE=false, runs the background workers
    /// (reconciliation, watchdogs) and logs JSON lines to stdout. SIGTERM or
    /// SIGINT drains and exits 0.
    #[command(after_help = "Examples:\n  \
amani serve\n  \
PORT=8080 LOG_FORMAT=pretty amani serve\n  \
DATABASE_URL=postgres://amani:secret@db:5432/amani ENVIRONMENT=production SECRET_KEY=... amani serve")]
    Serve,
    /// Apply pending database migrations and print the schema version.
    ///
    /// Safe to run again (applies only what is missing) and while servers
    /// run. Exit 1 if the database cannot be reached or a migration fails.
    #[command(after_help = "Examples:\n  \
amani migrate\n  \
DATABASE_URL=postgres://amani@db/amani amani migrate --json | jq .pending")]
    Migrate {
        #[command(flatten)]
        format: Format,
    },
    /// Validate the configuration and print what would be used.
    ///
    /// Every setting is shown by its variable's name; secrets are shown as
    /// set or unset with their length, never their value. Exit 2 (with the
    /// variable named on stderr) when the service would refuse to start.
    #[command(after_help = "Examples:\n  \
amani check-config\n  \
ENVIRONMENT=production amani check-config --json | jq .METRICS_TOKEN")]
    CheckConfig {
        #[command(flatten)]
        format: Format,
    },
    /// Print the OpenAPI 3.1 document (the one served at
    /// /api-docs/openapi.json), e.g. for a client generator.
    #[command(after_help = "Examples:\n  \
amani openapi > openapi.json\n  \
amani openapi | jq '.paths | keys'")]
    Openapi,
    /// Take a verified, compressed, checksummed backup (or verify one).
    ///
    /// Writes amani-<engine>-<time>.<ext> and its .manifest.json (row counts,
    /// ledger totals, SHA-256) to --out, checks it, optionally uploads both,
    /// then prunes backups older than the retention (never the newest).
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  \
amani backup --out /var/backups/amani\n  \
amani backup --upload s3://my-bucket/amani --json | jq .file\n  \
amani backup verify /var/backups/amani/amani-postgres-20261207T010000Z.dump"
    )]
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
        #[command(flatten)]
        format: Format,
    },
    /// Restore a backup over the database, after checking it.
    ///
    /// The backup is restored beside the live data, checked (migrations,
    /// ledger, row counts and money totals against its manifest) and only
    /// then swapped in; on PostgreSQL the previous database is kept under a
    /// new name. Asks for the target's name on a terminal unless --yes.
    #[command(after_help = "Examples:\n  \
amani restore backups/amani-sqlite-20261207T010000Z.db.gz\n  \
amani restore amani-postgres-20261207T010000Z.dump --yes --target postgres://postgres@db/amani_restored")]
    Restore {
        file: std::path::PathBuf,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
        /// The database to overwrite (default DATABASE_URL).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Ledger operations.
    #[command(after_help = "Examples:\n  \
amani ledger check")]
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Ask the payment provider about deposits and withdrawals still pending
    /// after RECONCILE_MIN_AGE_SECONDS and settle them from its answer (one
    /// pass of the worker `serve` runs). Exit 1 if the provider could not be
    /// asked about some of them.
    #[command(after_help = "Examples:\n  \
amani reconcile --dry-run          # what a pass would do; changes nothing\n  \
amani reconcile --json | jq '.items[] | select(.action != \"still_pending\")'")]
    Reconcile {
        /// Ask and report, change nothing (no payout is sent again).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        format: Format,
    },
    /// The service's own alerting.
    #[command(after_help = "Examples:\n  \
amani alert test --channel slack --severity warning")]
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Administration from the command line.
    #[command(after_help = "Examples:\n  \
amani admin create --email root@example.com")]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Restore FILE into a scratch database, check migrations, the ledger,
    /// the row counts and the money totals against its manifest, then drop
    /// it. Exit 1 if anything differs.
    #[command(after_help = "Examples:\n  \
amani backup verify backups/amani-sqlite-20261207T010000Z.db.gz\n  \
amani backup verify amani-postgres-20261207T010000Z.dump --json | jq .ledger_balanced")]
    Verify {
        file: std::path::PathBuf,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test alert through the real delivery path (retries included)
    /// and print what each channel answered. Exit 1 if any failed.
    #[command(after_help = "Examples:\n  \
SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... amani alert test --channel slack\n  \
amani alert test --severity critical --json")]
    Test {
        /// slack, pagerduty or all.
        #[arg(long, default_value = "all")]
        channel: String,
        /// info, warning, error or critical.
        #[arg(long, default_value = "critical")]
        severity: String,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Prove the books: balances sum to zero per currency, no account but the
    /// gateway's is negative, balances equal their transfers, escrow equals
    /// what milestones hold. Exit 1 on any break.
    #[command(after_help = "Examples:\n  \
amani ledger check\n  \
amani ledger check --json 2>/dev/null | jq .balanced")]
    Check {
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account (sign-up never makes one).
    ///
    /// The password is never taken from the command line: on a terminal it
    /// is asked for twice without echo; otherwise it is read as one line of
    /// standard input, or from AMANI_ADMIN_PASSWORD when that is set.
    #[command(after_help = "Examples:\n  \
amani admin create --email root@example.com            # prompts for the password\n  \
printf '%s\\n' \"$PASSWORD\" | amani admin create --email root@example.com --json")]
    Create {
        /// The admin's email address: their login.
        #[arg(long)]
        email: String,
        /// The name shown for the admin.
        #[arg(long, default_value = "Administrator")]
        full_name: String,
        #[command(flatten)]
        format: Format,
    },
}

impl Format {
    /// Prints a command's report: `report` as JSON with `--json`, else the
    /// lines `text` makes for a person.
    fn print<T: serde::Serialize>(self, report: &T, text: impl FnOnce(&T) -> String) -> Result<(), String> {
        if self.json {
            let document = serde_json::to_string_pretty(report).map_err(|e| format!("cannot print the report: {e}"))?;
            println!("{document}");
        } else {
            let lines = text(report);
            println!("{}", lines.trim_end());
        }
        Ok(())
    }
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
        Command::CheckConfig { format } => exit_code(check_config(&config, format)),
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
        Command::Migrate { format } => run_async(config, move |config| migrate(config, format)),
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    full_name,
                    format,
                },
        } => {
            // Asked before anything starts, so the prompt is the first thing
            // on the terminal.
            let password = match read_admin_password() {
                Ok(password) => password,
                Err(message) => {
                    eprintln!("amani: {message}");
                    return ExitCode::FAILURE;
                }
            };
            run_async(config, move |config| {
                create_admin(config, email, full_name, password, format)
            })
        }
        Command::Ledger {
            command: LedgerCommand::Check { format },
        } => run_async(config, move |config| ledger_check(config, format)),
        Command::Reconcile { dry_run, format } => run_async(config, move |config| reconcile(config, dry_run, format)),
        Command::Alert {
            command:
                AlertCommand::Test {
                    channel,
                    severity,
                    format,
                },
        } => run_async(config, move |config| alert_test(config, channel, severity, format)),
        Command::Backup {
            command: Some(BackupCommand::Verify { file, format }),
            ..
        } => run_async(config, move |config| backup_verify(config, file, format)),
        Command::Backup {
            command: None,
            out,
            retention_days,
            upload,
            format,
        } => run_async(config, move |config| {
            backup(config, out, retention_days, upload, format)
        }),
        Command::Restore {
            file,
            yes,
            target,
            format,
        } => {
            let target =
                target.unwrap_or_else(|| secrecy::ExposeSecret::expose_secret(&config.database.url).to_owned());
            if let Err(message) = confirm_restore(&target, yes) {
                eprintln!("amani: {message}");
                return ExitCode::from(EXIT_CONFIG);
            }
            run_async(config, move |config| restore(config, file, target, format))
        }
    }
}

fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("amani: {message}");
            ExitCode::FAILURE
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

fn check_config(config: &Config, format: Format) -> Result<(), String> {
    let settings = config.masked();
    format.print(&settings, |settings| {
        let mut lines = String::new();
        for (name, value) in settings.as_object().into_iter().flatten() {
            let shown = match value {
                serde_json::Value::Null => "<unset>".to_owned(),
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            lines.push_str(&format!("{name}={shown}\n"));
        }
        lines.push_str(&format!("configuration OK ({})", config.environment.as_str()));
        lines
    })
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

async fn migrate(config: Config, format: Format) -> Result<(), String> {
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    let status = db.migrate().await.map_err(|e| format!("migration failed: {e}"))?;
    db.close().await;
    let report = serde_json::json!({ "schema_version": status.current_version, "pending": status.pending });
    format.print(&report, |_| {
        let version = status.current_version.map_or("none".to_owned(), |v| v.to_string());
        format!(
            "migrations applied; schema version {version}, {} pending",
            status.pending
        )
    })
}

/// The new admin's password, never from the command line:
/// AMANI_ADMIN_PASSWORD when set; on a terminal, asked twice without echo;
/// otherwise one line of standard input.
fn read_admin_password() -> Result<String, String> {
    use std::io::IsTerminal;
    if let Ok(password) = std::env::var("AMANI_ADMIN_PASSWORD")
        && !password.is_empty()
    {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password from the terminal: {e}"))
        };
        let first = ask("Password for the new admin (at least 10 characters): ")?;
        let second = ask("The same password again: ")?;
        if first != second {
            return Err("the two passwords differ; nothing was created".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

async fn create_admin(
    config: Config,
    email: String,
    full_name: String,
    password: String,
    format: Format,
) -> Result<(), String> {
    use crate::domain::account::{Email, Role, bounded_text, check_password_policy};
    use crate::store::users::{self, NewUser};
    use secrecy::SecretString;

    let email = Email::parse(&email).map_err(|e| e.to_string())?;
    let full_name = bounded_text("full_name", &full_name, 120).map_err(|e| e.to_string())?;
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
    tx.audit(crate::store::audit::AuditEvent {
        actor_id: None,
        action: "user.admin_created",
        target_type: "user",
        target_id: Some(&user.id),
        request_id: None,
        details: serde_json::json!({ "via": "cli" }),
    });
    tx.commit().await.map_err(|e| e.to_string())?;
    db.close().await;
    let report = serde_json::json!({ "id": user.id, "email": user.email, "role": "admin" });
    format.print(&report, |_| format!("admin created: {} ({})", user.email, user.id))
}

async fn ledger_check(config: Config, format: Format) -> Result<(), String> {
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    db.check().await.map_err(|e| format!("database not reachable: {e}"))?;
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let report = crate::store::ledger::check(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    db.close().await;
    format.print(&report, |report| {
        let mut lines = String::new();
        for problem in &report.problems {
            lines.push_str(&format!("problem: {problem}\n"));
        }
        for (currency, held) in &report.held_in_escrow {
            lines.push_str(&format!("held in escrow: {held} {currency} (minor units)\n"));
        }
        for (currency, fees) in &report.platform_fees {
            lines.push_str(&format!("platform fees: {fees} {currency} (minor units)\n"));
        }
        if report.balanced {
            lines.push_str(&format!(
                "ledger balanced: {} accounts, {} transfers",
                report.accounts, report.transfers
            ));
        }
        lines
    })?;
    if report.balanced {
        Ok(())
    } else {
        Err(format!("ledger NOT balanced: {} problems", report.problems.len()))
    }
}

async fn reconcile(config: Config, dry_run: bool, format: Format) -> Result<(), String> {
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
    format.print(&report, |report| {
        let mut lines = String::new();
        for item in &report.items {
            lines.push_str(&format!(
                "{:<28} {:<10} {:>14} {} {:>7}s  provider: {:<24} -> {}\n",
                item.reference,
                item.kind,
                item.amount,
                item.currency,
                item.age_seconds,
                item.provider_says,
                item.action
            ));
        }
        lines.push_str(&format!(
            "{}examined {}, settled {}, still pending {}, errors {}; {} pending past the stuck limit",
            if dry_run { "(dry run) " } else { "" },
            report.examined,
            report.settled,
            report.still_pending,
            report.errors,
            report.stuck
        ));
        lines
    })?;
    if report.errors > 0 {
        return Err(format!("{} record(s) could not be reconciled", report.errors));
    }
    Ok(())
}

async fn alert_test(mut config: Config, channel: String, severity: String, format: Format) -> Result<(), String> {
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
    let answers: Vec<serde_json::Value> = dispatcher
        .deliver(&alert)
        .await
        .into_iter()
        .map(|(name, outcome)| match outcome {
            Ok(delivery) => serde_json::json!({
                "channel": name, "delivered": true, "status": delivery.status, "body": delivery.body.trim(),
            }),
            Err(err) => serde_json::json!({ "channel": name, "delivered": false, "error": err.to_string() }),
        })
        .collect();
    let failed = answers.iter().any(|answer| answer["delivered"] == false);
    format.print(&answers, |answers| {
        let mut lines = String::new();
        for answer in answers {
            let name = answer["channel"].as_str().unwrap_or_default();
            if answer["delivered"] == true {
                let body = answer["body"].as_str().unwrap_or_default();
                lines.push_str(&format!("{name}: delivered (HTTP {}) {body}\n", answer["status"]));
            } else {
                let error = answer["error"].as_str().unwrap_or_default();
                lines.push_str(&format!("{name}: FAILED ({error})\n"));
            }
        }
        lines
    })?;
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
    format: Format,
) -> Result<(), String> {
    use crate::ops::backup;
    let dir = out.unwrap_or_else(|| config.backup_dir.clone());
    let metrics = Metrics::new(&config, &BuildInfo::current());
    let db = Database::new(&config.database, metrics).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let result = backup::backup(&config, &db, &dir).await;
    db.close().await;
    let manifest = result.map_err(|e| format!("backup FAILED: {e}"))?;
    let mut uploaded = Vec::new();
    if let Some(destination) = &upload {
        // The object-store credentials are the providers' own variables,
        // read here at the edge like every other setting.
        let options = std::env::vars()
            .filter(|(k, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        uploaded = backup::upload(&dir.join(&manifest.file), destination, options)
            .await
            .map_err(|e| format!("backup written, but the upload FAILED: {e}"))?;
    }
    let pruned = backup::prune(&dir, retention_days.unwrap_or(config.backup_retention_days))
        .map_err(|e| format!("backup written, but pruning failed: {e}"))?;
    let report = serde_json::json!({
        "file": dir.join(&manifest.file),
        "seconds": started.elapsed().as_secs_f64(),
        "uploaded": uploaded,
        "pruned": pruned,
        "manifest": manifest,
    });
    format.print(&report, |_| {
        let mut lines = String::new();
        for location in &uploaded {
            lines.push_str(&format!("uploaded {location}\n"));
        }
        for file in &pruned {
            lines.push_str(&format!("pruned {file}\n"));
        }
        let rows: i64 = manifest.row_counts.values().sum();
        lines.push_str(&format!(
            "backup ok: {} ({} bytes, sha256 {}, {rows} rows, schema {}) in {:.1}s; {} pruned",
            dir.join(&manifest.file).display(),
            manifest.size_bytes,
            manifest.sha256.get(..16).unwrap_or_default(),
            manifest.schema_version.map_or("none".into(), |v| v.to_string()),
            started.elapsed().as_secs_f64(),
            pruned.len()
        ));
        lines
    })
}

async fn backup_verify(config: Config, file: std::path::PathBuf, format: Format) -> Result<(), String> {
    let report = crate::ops::restore::verify(&config, &file)
        .await
        .map_err(|e| format!("verify FAILED: {e}"))?;
    format.print(&report, |report| {
        let mut lines = restore_report_lines(report);
        if report.ok() {
            lines.push_str(&format!(
                "verify ok: {} restores with current migrations, a balanced ledger and matching row counts and money totals",
                file.display()
            ));
        }
        lines
    })?;
    if report.ok() {
        Ok(())
    } else {
        Err(format!("verify FAILED: {} does not restore cleanly", file.display()))
    }
}

/// A restored database's checks, one line each, problems first.
fn restore_report_lines(report: &crate::ops::restore::Report) -> String {
    let mut lines = String::new();
    for problem in &report.ledger_problems {
        lines.push_str(&format!("ledger problem: {problem}\n"));
    }
    for (table, manifest, restored) in &report.count_mismatches {
        lines.push_str(&format!("rows in {table}: manifest {manifest}, restored {restored}\n"));
    }
    for (what, manifest, restored) in &report.money_mismatches {
        lines.push_str(&format!("{what}: manifest {manifest}, restored {restored}\n"));
    }
    let version = report.schema_version.map_or("none".to_owned(), |v| v.to_string());
    lines.push_str(&format!(
        "schema version {version}, {} migrations pending, ledger {}\n",
        report.migrations_pending,
        if report.ledger_balanced {
            "balanced"
        } else {
            "NOT balanced"
        }
    ));
    lines
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

async fn restore(config: Config, file: std::path::PathBuf, target: String, format: Format) -> Result<(), String> {
    let started = std::time::Instant::now();
    let restored = crate::ops::restore::restore(&config, &file, &target)
        .await
        .map_err(|e| format!("restore FAILED (the old data is untouched): {e}"))?;
    format.print(&restored, |restored| {
        let mut lines = restore_report_lines(&restored.report);
        lines.push_str(&format!(
            "restore ok: {} from {} in {:.1}s\n",
            restored.target,
            file.display(),
            started.elapsed().as_secs_f64()
        ));
        if let Some(previous) = &restored.previous_kept_as {
            lines.push_str(&format!(
                "the previous database is kept as {previous}; drop it once you are satisfied"
            ));
        }
        lines
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command, at every depth, with its path (`amani backup verify`).
    fn commands(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            out.push((sub_path.clone(), sub.clone()));
            commands(sub, sub_path, out);
        }
    }

    #[test]
    fn every_command_has_a_manual_with_an_example() {
        let mut all = Vec::new();
        commands(&Cli::command(), "amani".into(), &mut all);
        assert!(all.len() >= 12, "{}", all.len());
        for (path, command) in all {
            let help = command.get_after_help().map(ToString::to_string).unwrap_or_default();
            let leaf_name = path.rsplit(' ').next().unwrap_or_default();
            assert!(help.starts_with("Examples:\n"), "{path} has no examples");
            assert!(help.contains(leaf_name), "{path}'s examples do not use it: {help}");
            assert!(command.get_about().is_some(), "{path} has no description");
        }
    }

    #[test]
    fn every_command_that_prints_a_report_takes_json() {
        let mut all = Vec::new();
        commands(&Cli::command(), "amani".into(), &mut all);
        let reports: Vec<&str> = all
            .iter()
            .filter(|(_, c)| c.get_subcommands().next().is_none())
            .filter(|(_, c)| !matches!(c.get_name(), "serve" | "openapi"))
            .map(|(path, c)| {
                assert!(c.get_arguments().any(|a| a.get_id() == "json"), "{path} has no --json");
                path.as_str()
            })
            .collect();
        assert!(reports.len() >= 8, "{reports:?}");
    }
}
