//! The `amani` binary as a child process, for what is global to a process:
//! the tracing subscriber, the OpenTelemetry exporter, the Sentry client,
//! signals. Its stdout (JSON log lines) is captured for assertions.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary in a fresh folder (SQLite there unless `vars` say
    /// otherwise) with an empty environment plus `vars`, and waits until it
    /// logs that it is listening.
    pub fn start(vars: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_amani"))
            .env_clear()
            .current_dir(dir.path())
            .env("PORT", "0")
            .env("ENVIRONMENT", "test")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = Arc::clone(&lines);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                        && log["message"] == "listening"
                    {
                        let _ = tx.send(log["address"].as_str().unwrap_or_default().to_owned());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let address = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the server did not start:\n{}", lines.lock().unwrap().join("\n")));
        Server {
            addr: address.parse().unwrap(),
            child,
            lines,
            _dir: dir,
        }
    }

    /// Polls readiness until 200 (the database is migrated in the
    /// background after "listening"), failing after 20 s.
    pub async fn wait_until_ready(&self) {
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(20), "readiness", async || {
            let response = client.get(self.url("/api/v1/readiness")).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything printed so far (stdout and stderr), one entry a line.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The JSON log lines printed so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.output()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends SIGTERM and waits for the exit code (flushing telemetry).
    pub fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns Some, failing after `limit`.
pub async fn eventually<T>(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
