//! What only SQLite needs: its file created on first use, the URL that
//! creates it, the lock file that keeps a restore from running under a
//! serving process, and the checkpointer of its write-ahead log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Database, StoreError};

/// How often the checkpointer looks at the write-ahead log.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

fn lock_file_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn flock(path: &Path, operation: libc::c_int) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let lock = lock_file_for(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| format!("cannot open {}: {e}", lock.display()))?;
    // SAFETY: flock on a file descriptor we own; released when it closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "{} is in use by a running Amani server; stop it before restoring",
            path.display()
        ));
    }
    Ok(file)
}

/// Takes the SQLite file's lock exclusively (restore), or fails at once if a
/// running server holds it.
pub fn lock_sqlite_exclusively(path: &Path) -> Result<std::fs::File, String> {
    flock(path, libc::LOCK_EX)
}

/// Returns the URL sqlx should open (creating the file if missing) and the
/// file's path, or `None` for an in-memory database.
pub(super) fn sqlite_url(raw: &str) -> (String, Option<PathBuf>) {
    let rest = raw.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return (raw.to_owned(), None);
    }
    let url = if query.contains("mode=") {
        raw.to_owned()
    } else if query.is_empty() {
        format!("{raw}?mode=rwc")
    } else {
        format!("{raw}&mode=rwc")
    };
    (url, Some(Path::new(path).to_path_buf()))
}

impl Database {
    /// Marks the SQLite file as served by this process (a shared lock that
    /// a restore cannot take exclusively). Best effort: the folder may not
    /// exist yet, in which case no restore can target it either.
    pub fn hold_serving_lock(&self) {
        let Some(path) = &self.sqlite_path else { return };
        if self.prepare_sqlite_file().is_err() {
            return;
        }
        if let Ok(file) = flock(path, libc::LOCK_SH)
            && let Ok(mut slot) = self.sqlite_lock.lock()
        {
            *slot = Some(file);
        }
    }

    /// The SQLite file and its folder are created on first use, so a fresh
    /// clone runs with no set-up. Failure here is "database unavailable".
    pub(super) fn prepare_sqlite_file(&self) -> Result<(), StoreError> {
        let Some(path) = &self.sqlite_path else { return Ok(()) };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        Ok(())
    }
}

impl Database {
    /// SQLite file only: copies the write-ahead log's pages into the
    /// database file once a second if the log changed, which the writer
    /// connection does not do when it commits. First beside the writers
    /// (the bulk of the copying and its fsync), then in the writer's turn
    /// for the moment it takes to catch up with what they wrote meanwhile:
    /// the next write then starts the log over from its beginning. (Under
    /// constant writes a checkpoint that never catches up would let the
    /// log grow without end.) The two steps are timed as the statements
    /// `sqlite.checkpoint` and `sqlite.checkpoint_catch_up` (writers wait
    /// for the second).
    pub async fn run_checkpointer(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (Some(path), Some(_)) = (&self.sqlite_path, &self.sqlite_write_pool) else {
            return;
        };
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        let log = PathBuf::from(log);
        let mut checkpointed: Option<SystemTime> = None;
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                _ = stop.changed() => return,
            }
            let written = std::fs::metadata(&log).and_then(|m| m.modified()).ok();
            if written.is_none() || written == checkpointed {
                continue;
            }
            match self.checkpoint().await {
                Ok(()) => {
                    checkpointed = written;
                    last_error = None;
                }
                Err(err) => {
                    let message = err.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(error = %message, "the SQLite log could not be checkpointed; retrying");
                        last_error = Some(message);
                    }
                }
            }
        }
    }

    /// (Whatever the schema's state: a checkpoint copies pages, and is as
    /// safe during a migration as after it.)
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let obs = &self.observer;
        let mut conn = obs.acquire(self.pool.acquire()).await?;
        let statement = "pragma wal_checkpoint(passive)";
        obs.run("sqlite.checkpoint", sqlx::query(statement).execute(&mut *conn))
            .await?;
        let _turn = self.sqlite_writer.lock().await;
        obs.run("sqlite.checkpoint_catch_up", sqlx::query(statement).execute(&mut *conn))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_given() {
        assert_eq!(
            sqlite_url("sqlite://data/amani.db"),
            (
                "sqlite://data/amani.db?mode=rwc".to_owned(),
                Some(PathBuf::from("data/amani.db"))
            )
        );
        assert_eq!(sqlite_url("sqlite:///tmp/a.db?mode=ro").0, "sqlite:///tmp/a.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:").1, None);
    }
}
