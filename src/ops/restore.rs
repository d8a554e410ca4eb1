//! Verifying a backup in a scratch database, and restoring one.
//!
//! A restore never overwrites in place. PostgreSQL: the backup goes into a
//! fresh database, is checked there, and only then swapped in by renaming
//! (the old database is kept, renamed, until an operator drops it). SQLite:
//! into a temporary file beside the target, checked, then renamed over it
//! atomically — and refused while a running server holds the file. A failed
//! restore leaves the old data as it was.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use serde::Serialize;

use super::backup::{
    BackupError, Manifest, decompress, open, pg_connection, read_manifest, row_counts, run_pg_tool, sha256_file,
};
use crate::config::Config;
use crate::store::{Database, Engine};
use crate::telemetry::metrics::Metrics;

/// What the checks of a restored database found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: Option<i64>,
    pub migrations_pending: usize,
    pub ledger_balanced: bool,
    pub ledger_problems: Vec<String>,
    /// Tables whose row count differs from the manifest: (table, manifest, restored).
    pub count_mismatches: Vec<(String, i64, i64)>,
    /// Money figures that differ from the manifest: (what, manifest, restored),
    /// e.g. ("held_in_escrow NGN", 5000, 4000).
    pub money_mismatches: Vec<(String, i64, i64)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.migrations_pending == 0
            && self.ledger_balanced
            && self.count_mismatches.is_empty()
            && self.money_mismatches.is_empty()
    }
}

/// Every currency figure of `expected` and `found` that differs (a currency
/// missing on one side counts as 0 there).
fn money_differences(
    what: &str,
    expected: &std::collections::BTreeMap<String, i64>,
    found: &std::collections::BTreeMap<String, i64>,
) -> Vec<(String, i64, i64)> {
    let currencies: std::collections::BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    currencies
        .into_iter()
        .filter_map(|currency| {
            let (e, f) = (
                expected.get(currency).copied().unwrap_or(0),
                found.get(currency).copied().unwrap_or(0),
            );
            (e != f).then(|| (format!("{what} {currency}"), e, f))
        })
        .collect()
}

/// Migrations current, ledger balanced, row counts and money totals equal
/// to the manifest (a manifest whose figures were edited fails here).
pub async fn check(db: &Database, manifest: &Manifest) -> Result<Report, BackupError> {
    let status = db.check().await?;
    let mut conn = db.acquire_for_ops().await?;
    let counts = row_counts(&mut conn).await?;
    let ledger = crate::store::ledger::check(&mut conn).await?;
    let count_mismatches = manifest
        .row_counts
        .iter()
        .filter_map(|(table, expected)| {
            let got = counts.get(table).copied().unwrap_or(-1);
            (got != *expected).then(|| (table.clone(), *expected, got))
        })
        .collect();
    let mut money_mismatches = money_differences("ledger_totals", &manifest.ledger_totals, &ledger.totals);
    money_mismatches.extend(money_differences(
        "held_in_escrow",
        &manifest.held_in_escrow,
        &ledger.held_in_escrow,
    ));
    Ok(Report {
        schema_version: status.current_version,
        migrations_pending: status.pending,
        ledger_balanced: ledger.balanced,
        ledger_problems: ledger.problems,
        count_mismatches,
        money_mismatches,
    })
}

fn check_checksum(file: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    if sha256_file(file)? != manifest.sha256 {
        return Err(BackupError::Verification(format!(
            "{} does not match the checksum in its manifest: damaged or replaced",
            file.display()
        )));
    }
    Ok(())
}

fn with_database(url: &str, name: &str) -> Result<String, BackupError> {
    let mut parsed = url::Url::parse(url).map_err(|_| BackupError::Io("not a URL".into()))?;
    parsed.set_path(name);
    Ok(parsed.to_string())
}

fn database_name(url: &str) -> Result<String, BackupError> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .ok_or_else(|| BackupError::Io("the PostgreSQL URL must name a database of letters, digits, _ or -".into()))
}

async fn admin_execute(url: &str, sql: String) -> Result<(), BackupError> {
    use sqlx::Connection;
    crate::store::install_drivers();
    let maintenance = with_database(url, "postgres")?;
    let mut conn = sqlx::AnyConnection::connect(&maintenance)
        .await
        .map_err(|e| BackupError::Io(format!("cannot reach the PostgreSQL server: {e}")))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| BackupError::Io(e.to_string()))?;
    let _ = conn.close().await;
    Ok(())
}

/// Whether the server has a database called `name`.
async fn database_exists(url: &str, name: &str) -> Result<bool, BackupError> {
    use sqlx::Connection;
    crate::store::install_drivers();
    let maintenance = with_database(url, "postgres")?;
    let mut conn = sqlx::AnyConnection::connect(&maintenance)
        .await
        .map_err(|e| BackupError::Io(format!("cannot reach the PostgreSQL server: {e}")))?;
    let found: Option<(i64,)> = sqlx::query_as("select cast(1 as bigint) from pg_database where datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| BackupError::Io(e.to_string()))?;
    let _ = conn.close().await;
    Ok(found.is_some())
}

/// Restores `file` into a scratch database, checks it, and drops it.
pub async fn verify(config: &Config, file: &Path) -> Result<Report, BackupError> {
    let manifest = read_manifest(file)?;
    check_checksum(file, &manifest)?;
    let metrics = Metrics::new(config, &crate::build_info::BuildInfo::current());
    match manifest.engine.as_str() {
        "sqlite" => {
            let scratch = tempfile::tempdir()?;
            let path = scratch.path().join("verify.db");
            decompress(file, &path)?;
            let db = open(&format!("sqlite://{}", path.display()), metrics)?;
            let report = check(&db, &manifest).await;
            db.close().await;
            report
        }
        _ => {
            let url = config.database.url.expose_secret();
            let scratch = format!("amani_verify_{}", uuid::Uuid::new_v4().simple());
            admin_execute(url, format!("create database {scratch}")).await?;
            let result = async {
                pg_restore(url, &scratch, file)?;
                let db = open(&with_database(url, &scratch)?, metrics)?;
                let report = check(&db, &manifest).await;
                db.close().await;
                report
            }
            .await;
            admin_execute(url, format!("drop database if exists {scratch} with (force)")).await?;
            result
        }
    }
}

fn pg_restore(url: &str, database: &str, file: &Path) -> Result<(), BackupError> {
    let (without_password, password) = pg_connection(&with_database(url, database)?)?;
    let dbname = format!("--dbname={without_password}");
    let file = file.to_string_lossy().into_owned();
    run_pg_tool(
        "pg_restore",
        &["--no-owner", "--exit-on-error", "--single-transaction", &dbname, &file],
        password.as_deref(),
    )?;
    Ok(())
}

/// Where a restore will write, named for the operator to confirm.
pub fn describe_target(url: &str) -> String {
    match Engine::from_url(url) {
        Engine::Sqlite => format!("SQLite file {}", sqlite_path(url).display()),
        Engine::Postgres => format!("PostgreSQL database {}", crate::config::redact_url_password(url)),
    }
}

/// The name an operator must type back to confirm.
pub fn confirmation_word(url: &str) -> String {
    match Engine::from_url(url) {
        Engine::Sqlite => sqlite_path(url)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Engine::Postgres => database_name(url).unwrap_or_default(),
    }
}

fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub target: String,
    /// PostgreSQL: the previous database, kept under this name.
    pub previous_kept_as: Option<String>,
    pub report: Report,
}

/// Restores `file` over the database at `target` (already confirmed).
pub async fn restore(config: &Config, file: &Path, target: &str) -> Result<Restored, BackupError> {
    let manifest = read_manifest(file)?;
    check_checksum(file, &manifest)?;
    if manifest.engine != Engine::from_url(target).as_str() {
        return Err(BackupError::Verification(format!(
            "this is a {} backup; the target is {}",
            manifest.engine,
            describe_target(target)
        )));
    }
    let metrics = Metrics::new(config, &crate::build_info::BuildInfo::current());
    match Engine::from_url(target) {
        Engine::Sqlite => restore_sqlite(file, &manifest, target, metrics).await,
        Engine::Postgres => restore_postgres(file, &manifest, target, metrics).await,
    }
}

/// A SQLite staging file (and its `-wal`/`-shm`), removed when dropped
/// unless kept: every failure path, early return or `?` cleans up.
struct Staging(PathBuf);

impl Staging {
    /// The staging file became the database: nothing to remove.
    fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut side = self.0.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
    }
}

async fn restore_sqlite(
    file: &Path,
    manifest: &Manifest,
    target: &str,
    metrics: std::sync::Arc<Metrics>,
) -> Result<Restored, BackupError> {
    let path = sqlite_path(target);
    let _lock = crate::store::lock_sqlite_exclusively(&path).map_err(BackupError::Verification)?;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let staging = Staging(folder.join(format!(".restore-{}.db", uuid::Uuid::new_v4().simple())));
    decompress(file, &staging.0)?;
    let db = open(&format!("sqlite://{}", staging.0.display()), metrics)?;
    let report = check(&db, manifest).await;
    db.close().await;
    let report = match report {
        Ok(report) if report.ok() => report,
        other => {
            return match other {
                Ok(report) => Err(BackupError::Verification(format!(
                    "the restored copy fails its checks: {report:?}"
                ))),
                Err(err) => Err(err),
            };
        }
    };
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    std::fs::rename(&staging.0, &path)?;
    staging.keep();
    Ok(Restored {
        target: describe_target(target),
        previous_kept_as: None,
        report,
    })
}

async fn restore_postgres(
    file: &Path,
    manifest: &Manifest,
    target: &str,
    metrics: std::sync::Arc<Metrics>,
) -> Result<Restored, BackupError> {
    let name = database_name(target)?;
    // A target that does not exist yet is simply created by the final rename
    // (nothing to keep aside). Asked before any work is done.
    let target_exists = database_exists(target, &name).await?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let staging = format!("{name}_restore_{stamp}");
    let previous = format!("{name}_before_restore_{stamp}");
    admin_execute(target, format!("create database \"{staging}\"")).await?;
    let checked = async {
        pg_restore(target, &staging, file)?;
        let db = open(&with_database(target, &staging)?, metrics)?;
        let report = check(&db, manifest).await;
        db.close().await;
        report
    }
    .await;
    let report = match checked {
        Ok(report) if report.ok() => report,
        other => {
            admin_execute(target, format!("drop database if exists \"{staging}\" with (force)")).await?;
            return match other {
                Ok(report) => Err(BackupError::Verification(format!(
                    "the restored copy fails its checks: {report:?}"
                ))),
                Err(err) => Err(err),
            };
        }
    };
    // Swap: stop other connections to the target, keep it under a new name,
    // give the restored database its name.
    let swap = if target_exists {
        format!(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}' and pid <> pg_backend_pid(); \
             alter database \"{name}\" rename to \"{previous}\"; \
             alter database \"{staging}\" rename to \"{name}\";"
        )
    } else {
        format!("alter database \"{staging}\" rename to \"{name}\";")
    };
    if let Err(err) = admin_execute(target, swap).await {
        let _ = admin_execute(target, format!("drop database if exists \"{staging}\" with (force)")).await;
        return Err(err);
    }
    Ok(Restored {
        target: describe_target(target),
        previous_kept_as: target_exists.then_some(previous),
        report,
    })
}
