//! `TestApp`: the real application on a random loopback port, against a fresh
//! database of either engine, driven over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use amani::config::Config;
use amani::startup::Application;
use amani::state::AppState;
use sqlx::Connection;
use tokio::task::JoinHandle;

pub use super::proxy::TcpProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs one async test body once per engine: `both_engines!(name)` turns
/// `async fn name(engine: Engine)` into `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Engine::Postgres).await
            }
        }
    )+};
}

/// The PostgreSQL server the tests create their databases on
/// (`AMANI_TEST_POSTGRES_URL`, else one the tests start: see `services`).
/// Unreachable means failure, never a skip: a green run must have exercised
/// PostgreSQL.
pub fn postgres_admin_url() -> String {
    crate::services::postgres_url()
}

/// A fresh, empty database: a new SQLite file in a temporary folder, or a new
/// PostgreSQL database dropped when this value is dropped.
pub struct TestDb {
    pub url: String,
    /// For PostgreSQL: the server's address, so a proxy can stand in front.
    pub server: Option<SocketAddr>,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn create(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let path = dir.path().join("data").join("amani.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    server: None,
                    name: None,
                    _dir: Some(dir),
                }
            }
            Engine::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|err| {
                    panic!("PostgreSQL is required for the tests and is not reachable at {admin}: {err}")
                });
                let name = format!("amani_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let mut url = url::Url::parse(&admin).expect("admin URL");
                url.set_path(&name);
                let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
                let port = url.port().unwrap_or(5432);
                let server = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next());
                TestDb {
                    url: url.to_string(),
                    server,
                    name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// The same database reached through `proxy` (PostgreSQL only).
    pub fn url_via(&self, proxy: &TcpProxy) -> String {
        let mut url = url::Url::parse(&self.url).expect("database URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(proxy.addr().port())).expect("port");
        url.to_string()
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("drop database if exists {name} with (force)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// `METRICS_ADDR`'s listener, when the test set one.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub state: AppState,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Variables every test app gets; tests add or override with `spawn_with`.
fn base_vars(database_url: &str) -> Vec<(String, String)> {
    [
        ("ENVIRONMENT", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DATABASE_URL", database_url),
        ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl TestApp {
    /// The app on a fresh database, migrated and ready.
    pub async fn spawn(db: &TestDb) -> TestApp {
        TestApp::spawn_ready(&db.url, &[]).await
    }

    /// The app with extra variables, once it answers ready.
    pub async fn spawn_ready(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
        let app = TestApp::spawn_with(database_url, extra).await;
        app.wait_until_ready().await;
        app
    }

    /// The app with extra variables, not waiting for readiness.
    pub async fn spawn_with(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
        let mut vars = base_vars(database_url);
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(vars).expect("test configuration");
        let app = Application::build(config).await.expect("build application");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            metrics_addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            state,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn status_of(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// Polls readiness until 200, failing the test after 15 s.
    pub async fn wait_until_ready(&self) {
        self.wait_for_status("/api/v1/readiness", 200, Duration::from_secs(15))
            .await;
    }

    /// Polls `path` until it answers `status`; panics with the last body.
    pub async fn wait_for_status(&self, path: &str, status: u16, limit: Duration) {
        let started = Instant::now();
        loop {
            let response = self.get(path).await;
            if response.status().as_u16() == status {
                return;
            }
            if started.elapsed() > limit {
                let got = response.status();
                let body = response.text().await.unwrap_or_default();
                panic!("{path} still {got} after {limit:?} (wanted {status}): {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts shutdown the way SIGTERM does and waits for the server to exit.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.state.lifecycle.begin_shutdown();
        match self.server.take() {
            Some(handle) => handle.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.state.lifecycle.begin_shutdown();
    }
}

/// JSON body of a response, with its status, for assertions.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

/// Runs an installed tool (promtool, amtool, prometheus …), feeding `stdin`,
/// and returns whether it succeeded and what it printed. A missing tool fails
/// the test with the command that installs it.
pub fn run_tool(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{tool} is needed by this test ({err}); run scripts/dev-services.sh"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("write to tool");
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("tool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A free loopback port for a helper server (Prometheus, Alertmanager).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The password every test user gets (it satisfies the policy).
pub const PASSWORD: &str = "correct horse battery";

/// A user created through the API, with a fresh access token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST")
    }

    /// A request with the user's bearer token.
    pub fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn signup(&self, email: &str, role: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/signup",
            &serde_json::json!({ "email": email, "password": PASSWORD, "full_name": "Test User", "role": role }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs up a new user with a unique email and logs in.
    pub async fn user(&self, role: &str) -> TestUser {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, body) = json(self.signup(&email, role).await).await;
        assert_eq!(status, 201, "{body}");
        let (status, login) = json(self.login(&email, PASSWORD).await).await;
        assert_eq!(status, 200, "{login}");
        TestUser {
            id: body["id"].as_str().unwrap().to_owned(),
            email,
            token: login["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// An admin, created the way production creates them (no sign-up path
    /// exists): straight into the store, then a normal login.
    pub async fn admin(&self) -> TestUser {
        use amani::domain::account::{Email, Role};
        let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
        let hash = amani::auth::passwords::hash(secrecy::SecretString::from(PASSWORD))
            .await
            .unwrap();
        let parsed = Email::parse(&email).unwrap();
        let mut conn = self.state.db.acquire().await.unwrap();
        let user = amani::store::users::insert(
            &mut conn,
            amani::store::users::NewUser {
                email: &parsed,
                password_hash: &hash,
                full_name: "Admin",
                role: Role::Admin,
                phone_number: None,
                bio: None,
            },
        )
        .await
        .unwrap();
        let (status, login) = json(self.login(&email, PASSWORD).await).await;
        assert_eq!(status, 200, "{login}");
        TestUser {
            id: user.id,
            email,
            token: login["access_token"].as_str().unwrap().to_owned(),
        }
    }
}
