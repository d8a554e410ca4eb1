//! Backups: a timestamped, compressed, checksummed archive and a JSON
//! manifest beside it, verified after writing, with retention.
//!
//! - SQLite: `vacuum into` takes a consistent copy while the service keeps
//!   writing (it reads one snapshot), then gzip.
//! - PostgreSQL: `pg_dump --format=custom` (already compressed). The
//!   password goes to `pg_dump` through `PGPASSWORD`, never argv; every other
//!   part of `DATABASE_URL` (TLS mode, options) is passed as is.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::build_info::BuildInfo;
use crate::config::Config;
use crate::store::{Borrowed, Database, DbHandle, Engine, REQUIRED_TABLES, StoreError};

pub const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(String),
    #[error(
        "{tool} is needed and was not found; install the PostgreSQL client tools matching the server (e.g. apt-get install postgresql-client)"
    )]
    MissingTool { tool: &'static str },
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("verification failed: {0}")]
    Verification(String),
}

impl From<std::io::Error> for BackupError {
    fn from(err: std::io::Error) -> BackupError {
        BackupError::Io(err.to_string())
    }
}

/// What a backup holds, written beside it as `<file>.manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub file: String,
    pub engine: String,
    pub format: String,
    pub schema_version: Option<i64>,
    pub app_version: String,
    pub git_sha: String,
    pub created_at: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub row_counts: BTreeMap<String, i64>,
    /// Per currency, the sum of all ledger balances (0 when balanced) and the
    /// money held in escrow.
    pub ledger_totals: BTreeMap<String, i64>,
    pub held_in_escrow: BTreeMap<String, i64>,
}

pub fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let mut file = std::fs::File::open(path)?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Row counts of the service's tables.
pub async fn row_counts(db: &mut impl DbHandle) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut counts = BTreeMap::new();
    for table in REQUIRED_TABLES {
        // The table names are our own constants, never input.
        let sql = format!("select count(*) from {table}");
        let (conn, obs) = db.parts();
        let (count,): (i64,) = obs
            .run("backup.count", sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(conn))
            .await?;
        counts.insert((*table).to_owned(), count);
    }
    Ok(counts)
}

/// The parts of `pg_dump`'s environment that carry the connection: the URL
/// without its password, and the password apart.
pub fn pg_connection(url: &str) -> Result<(String, Option<String>), BackupError> {
    let mut parsed = url::Url::parse(url).map_err(|_| BackupError::Io("DATABASE_URL is not a URL".into()))?;
    let password = parsed.password().map(percent_decode);
    let _ = parsed.set_password(None);
    Ok((parsed.to_string(), password))
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// Runs a PostgreSQL client tool with the password in its environment.
pub fn run_pg_tool(tool: &'static str, args: &[&str], password: Option<&str>) -> Result<String, BackupError> {
    let mut command = Command::new(tool);
    command.args(args);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => BackupError::MissingTool { tool },
        _ => BackupError::Io(err.to_string()),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let hint = if stderr.contains("server version mismatch") {
            " — the client tools are older than the server; install the matching major version"
        } else {
            ""
        };
        return Err(BackupError::Tool {
            tool,
            message: format!("{stderr}{hint}"),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn timestamp_for_file() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// What the copy itself holds, read from the copy (SQLite) or from the very
/// snapshot `pg_dump` copied (PostgreSQL), so a backup taken under a write
/// load still matches its manifest exactly.
struct Contents {
    schema_version: Option<i64>,
    row_counts: BTreeMap<String, i64>,
    ledger: crate::store::ledger::LedgerReport,
}

/// A database handle on another URL (a copy, a scratch database).
pub fn open(
    url: &str,
    metrics: std::sync::Arc<crate::telemetry::metrics::Metrics>,
) -> Result<std::sync::Arc<Database>, BackupError> {
    let config = crate::config::DatabaseConfig {
        url: secrecy::SecretString::from(url.to_owned()),
        max_connections: 2,
        min_connections: 0,
        acquire_timeout: std::time::Duration::from_secs(30),
        auto_migrate: false,
    };
    Ok(Database::new(&config, metrics)?)
}

async fn contents(db: &Database) -> Result<Contents, BackupError> {
    let status = db.check().await?;
    let mut conn = db.acquire().await?;
    Ok(Contents {
        schema_version: status.current_version,
        row_counts: row_counts(&mut conn).await?,
        ledger: crate::store::ledger::check(&mut conn).await?,
    })
}

/// Takes, verifies and describes one backup in `dir`; returns its manifest.
pub async fn backup(config: &Config, db: &Database, dir: &Path) -> Result<Manifest, BackupError> {
    std::fs::create_dir_all(dir)?;
    db.check().await?;
    let stamp = timestamp_for_file();
    let created_at = crate::store::timestamp::now();
    let metrics = crate::telemetry::metrics::Metrics::new(config, &BuildInfo::current());
    let (file, format, contents) = match db.engine() {
        Engine::Sqlite => {
            let target = dir.join(format!("amani-{stamp}.sqlite.gz"));
            let contents = backup_sqlite(db, &target, metrics).await?;
            (target, "sqlite+gzip", contents)
        }
        Engine::Postgres => {
            let target = dir.join(format!("amani-{stamp}.pgdump"));
            let contents = backup_postgres(config, db, &target).await?;
            (target, "pg_dump custom", contents)
        }
    };
    let manifest = Manifest {
        file: file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        engine: db.engine().as_str().to_owned(),
        format: format.to_owned(),
        schema_version: contents.schema_version,
        app_version: config.app_version.clone(),
        git_sha: BuildInfo::current().git_sha.to_owned(),
        created_at,
        size_bytes: std::fs::metadata(&file)?.len(),
        sha256: sha256_file(&file)?,
        row_counts: contents.row_counts,
        ledger_totals: contents.ledger.totals,
        held_in_escrow: contents.ledger.held_in_escrow,
    };
    let manifest = verify_written(config, &file, manifest)?;
    write_manifest(&file, &manifest)?;
    Ok(manifest)
}

async fn backup_postgres(config: &Config, db: &Database, target: &Path) -> Result<Contents, BackupError> {
    let (url, password) = pg_connection(config.database.url.expose_secret())?;
    // One snapshot for the counts and the dump: export it from a
    // repeatable-read transaction and hand it to pg_dump while it is open.
    let mut tx = db
        .raw_pool()
        .begin_with("begin isolation level repeatable read read only")
        .await
        .map_err(StoreError::from)?;
    let (snapshot,): (String,) = sqlx::query_as("select pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let status = db.check().await?;
    let (row_counts, ledger) = {
        let mut borrowed = Borrowed {
            conn: &mut tx,
            obs: db.observer(),
        };
        (
            row_counts(&mut borrowed).await?,
            crate::store::ledger::check(&mut borrowed).await?,
        )
    };
    let file_arg = format!("--file={}", target.display());
    let snapshot_arg = format!("--snapshot={snapshot}");
    let dumped = run_pg_tool(
        "pg_dump",
        &["--format=custom", "--no-owner", &snapshot_arg, &file_arg, &url],
        password.as_deref(),
    );
    tx.rollback().await.map_err(StoreError::from)?;
    dumped?;
    Ok(Contents {
        schema_version: status.current_version,
        row_counts,
        ledger,
    })
}

async fn backup_sqlite(
    db: &Database,
    target: &Path,
    metrics: std::sync::Arc<crate::telemetry::metrics::Metrics>,
) -> Result<Contents, BackupError> {
    let raw = target.with_extension("tmp");
    let _ = std::fs::remove_file(&raw);
    let path = raw.to_string_lossy().replace('\'', "''");
    {
        let mut conn = db.acquire().await?;
        let (conn, obs) = conn.parts();
        // The path is ours (the backup folder and a timestamp), quoted.
        obs.run(
            "backup.vacuum_into",
            sqlx::query(sqlx::AssertSqlSafe(format!("vacuum into '{path}'"))).execute(conn),
        )
        .await?;
    }
    let copy = open(&format!("sqlite://{}", raw.display()), metrics)?;
    let contents = contents(&copy).await;
    copy.close().await;
    let contents = contents?;
    let input = std::fs::File::open(&raw)?;
    let output = std::fs::File::create(target)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    std::io::copy(&mut std::io::BufReader::new(input), &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(&raw)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = raw.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    Ok(contents)
}

/// Re-reads the checksum and lists the archive (pg_restore --list, or an
/// integrity check of the decompressed SQLite copy).
fn verify_written(config: &Config, file: &Path, manifest: Manifest) -> Result<Manifest, BackupError> {
    if sha256_file(file)? != manifest.sha256 {
        return Err(BackupError::Verification("the checksum changed after writing".into()));
    }
    match manifest.engine.as_str() {
        "sqlite" => {
            let scratch = tempfile::Builder::new().suffix(".db").tempfile()?;
            decompress(file, scratch.path())?;
            let result = std::process::Command::new("sqlite3")
                .arg(scratch.path())
                .arg("pragma integrity_check;")
                .output();
            // sqlite3 is optional; without it the decompression (CRC-checked)
            // and the later `backup verify` stand in.
            if let Ok(output) = result {
                let text = String::from_utf8_lossy(&output.stdout);
                if output.status.success() && text.trim() != "ok" {
                    return Err(BackupError::Verification(format!("integrity check: {}", text.trim())));
                }
            }
        }
        _ => {
            let (_, password) = pg_connection(config.database.url.expose_secret())?;
            let file_arg = file.to_string_lossy().into_owned();
            run_pg_tool("pg_restore", &["--list", &file_arg], password.as_deref())?;
        }
    }
    Ok(manifest)
}

pub fn decompress(file: &Path, target: &Path) -> Result<(), BackupError> {
    let mut decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(std::fs::File::open(file)?));
    let mut output = std::fs::File::create(target)?;
    std::io::copy(&mut decoder, &mut output)?;
    output.flush()?;
    output.sync_all()?;
    Ok(())
}

pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(MANIFEST_SUFFIX);
    PathBuf::from(name)
}

fn write_manifest(file: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let text = serde_json::to_string_pretty(manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    std::fs::write(manifest_path(file), text)?;
    Ok(())
}

pub fn read_manifest(file: &Path) -> Result<Manifest, BackupError> {
    let text = std::fs::read_to_string(manifest_path(file))
        .map_err(|e| BackupError::Io(format!("cannot read the manifest beside {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| BackupError::Io(format!("bad manifest: {e}")))
}

/// Every backup in `dir` with its manifest, oldest first.
pub fn list(dir: &Path) -> Vec<(PathBuf, Manifest)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut backups: Vec<(PathBuf, Manifest)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(MANIFEST_SUFFIX))
        .filter_map(|manifest| {
            let text = std::fs::read_to_string(&manifest).ok()?;
            let parsed: Manifest = serde_json::from_str(&text).ok()?;
            Some((dir.join(&parsed.file), parsed))
        })
        .collect();
    backups.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
    backups
}

/// Deletes backups older than `days` by their manifest time (never by file
/// time, which copies and restores change), always keeping the newest.
pub fn prune(dir: &Path, days: u32) -> Result<Vec<String>, BackupError> {
    let cutoff =
        crate::store::timestamp::format(time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)));
    let backups = list(dir);
    let Some(newest) = backups.last().map(|(p, _)| p.clone()) else {
        return Ok(Vec::new());
    };
    let mut pruned = Vec::new();
    for (path, manifest) in backups {
        if path != newest && manifest.created_at < cutoff {
            let _ = std::fs::remove_file(&path);
            std::fs::remove_file(manifest_path(&path))?;
            pruned.push(manifest.file);
        }
    }
    Ok(pruned)
}

/// Unix time of the newest backup in `dir`, for
/// `backup_last_success_timestamp_seconds` (0 when there is none).
pub fn last_success(dir: &Path) -> f64 {
    list(dir)
        .last()
        .and_then(|(_, m)| {
            let format = time::format_description::well_known::Rfc3339;
            time::OffsetDateTime::parse(&m.created_at, &format).ok()
        })
        .map_or(0.0, |t| t.unix_timestamp() as f64)
}

/// Copies a backup and its manifest to object storage: `s3://bucket/prefix`,
/// `gs://…`, `az://…` (or `abfs://…`), or `file:///path`. Credentials and
/// endpoints come from the provider's usual variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME` …),
/// passed in by the caller. Returns the uploaded locations.
pub async fn upload(
    file: &Path,
    destination: &str,
    options: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, BackupError> {
    use object_store::ObjectStoreExt;
    let url = url::Url::parse(destination).map_err(|_| {
        BackupError::Io(format!(
            "--upload: {destination:?} is not a URL (s3://bucket/prefix, file:///path …)"
        ))
    })?;
    let (store, prefix) =
        object_store::parse_url_opts(&url, options).map_err(|e| BackupError::Io(format!("--upload: {e}")))?;
    let mut uploaded = Vec::new();
    for local in [file.to_path_buf(), manifest_path(file)] {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| BackupError::Io("backup file has no name".into()))?;
        let location = prefix.clone().join(name.as_str());
        let bytes = std::fs::read(&local)?;
        store
            .put(&location, bytes.into())
            .await
            .map_err(|e| BackupError::Io(format!("upload of {name} failed: {e}")))?;
        uploaded.push(format!("{}/{}", destination.trim_end_matches('/'), name));
    }
    Ok(uploaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_taken_out_of_the_url_and_the_rest_kept() {
        let (url, password) = pg_connection("postgres://amani:p%40ss@db:5432/amani?sslmode=require").unwrap();
        assert_eq!(url, "postgres://amani@db:5432/amani?sslmode=require");
        assert_eq!(password.as_deref(), Some("p@ss"));
    }
}
