//! The servers the tests talk to, independent of how this machine is set up.
//!
//! `AMANI_TEST_POSTGRES_URL` / `AMANI_TEST_REDIS_URL` name servers to use.
//! When they are unset, the tests start their own: a PostgreSQL cluster
//! (trust authentication, its own data directory under the build folder —
//! under /tmp when running as root — a free loopback port, no Unix socket) and a Redis (no persistence), each
//! once per test run, from the binaries the PostgreSQL and Redis packages
//! install. They stop when the test process exits (the parent-death signal),
//! so nothing is left running; a data directory left by a killed run is
//! removed by the next one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// PostgreSQL to create test databases on (a superuser's URL).
pub fn postgres_url() -> String {
    given("AMANI_TEST_POSTGRES_URL").unwrap_or_else(|| {
        static OWN: OnceLock<Result<String, String>> = OnceLock::new();
        own(&OWN, start_postgres)
    })
}

/// Redis for the shared rate limits.
pub fn redis_url() -> String {
    given("AMANI_TEST_REDIS_URL").unwrap_or_else(|| {
        static OWN: OnceLock<Result<String, String>> = OnceLock::new();
        own(&OWN, start_redis)
    })
}

fn given(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|v| !v.is_empty())
}

fn own(cell: &OnceLock<Result<String, String>>, start: fn() -> Result<String, String>) -> String {
    match cell.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// Where the tests keep their servers' files: under the build folder; as
/// root, under the system's temporary folder instead, because PostgreSQL
/// then runs as the `postgres` user, who may not be able to enter the build
/// folder (a checkout under /root, say).
fn state_dir(name: &str, as_other_user: bool) -> PathBuf {
    let temp = std::env::temp_dir();
    let base = if as_other_user {
        temp.as_path()
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR"))
    };
    // Directories of earlier runs whose process is gone.
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = file_name.strip_prefix(&format!("{name}-"))
                && pid
                    .parse::<u32>()
                    .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    base.join(format!("{name}-{}", std::process::id()))
}

/// The folder holding `initdb` and `postgres`: on PATH, else the newest
/// under Debian's /usr/lib/postgresql/<version>/bin.
fn postgres_bin_dir() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    if let Some(dir) = on_path {
        // A symlink's folder may hold only some of the tools (pg_isready):
        // use the folder the server really lives in.
        let real = std::fs::canonicalize(dir.join("initdb")).ok();
        return Ok(real.and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "the tests need PostgreSQL's server binaries (initdb, postgres) to start their own cluster: \
         run scripts/dev-services.sh, or set AMANI_TEST_POSTGRES_URL to a server to use"
            .to_owned()
    })
}

/// PostgreSQL refuses to run as root: as root, its processes run as the
/// `postgres` user the package creates.
fn unprivileged_user() -> Result<Option<(libc::uid_t, libc::gid_t)>, String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: a NUL-terminated name; the returned record is read at once,
    // before any other getpw* call.
    let record = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if record.is_null() {
        return Err("running as root, and there is no `postgres` user to run the tests' PostgreSQL as".into());
    }
    // SAFETY: non-null, points to a static passwd record.
    Ok(Some(unsafe { ((*record).pw_uid, (*record).pw_gid) }))
}

/// A command that runs as `user` (when given) and gets SIGQUIT (PostgreSQL's
/// and Redis's "stop now") when the thread that started it ends.
fn command(program: &Path, user: Option<(libc::uid_t, libc::gid_t)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Runs `start` on a thread that lives as long as the test process, so the
/// parent-death signal fires only when the process ends.
fn keep_running(start: impl FnOnce() -> std::io::Result<std::process::Child> + Send + 'static) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || match start() {
        Ok(mut child) => {
            let _ = tx.send(Ok(()));
            let _ = child.wait();
        }
        Err(err) => {
            let _ = tx.send(Err(err.to_string()));
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

fn wait_until(what: &str, log: &Path, ready: impl Fn() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    Err(format!("the tests' own {what} did not start within 60 s:\n{log}"))
}

fn start_postgres() -> Result<String, String> {
    let bin = postgres_bin_dir()?;
    let user = unprivileged_user()?;
    let dir = state_dir("amani-test-postgres", user.is_some());
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    if let Some((uid, gid)) = user {
        for path in [&dir, &data] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let initdb = command(&bin.join("initdb"), user)
        .args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "--pgdata",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.join("initdb").display()))?;
    if !initdb.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr)));
    }
    let port = crate::helpers::free_port();
    let log = dir.join("postgres.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let postgres = bin.join("postgres");
    keep_running(move || {
        command(&postgres, user)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
            // A throwaway cluster: durability buys nothing here.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
    })?;
    let pg_isready = bin.join("pg_isready");
    wait_until("PostgreSQL", &log, || {
        Command::new(&pg_isready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .status()
            .is_ok_and(|s| s.success())
    })?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn start_redis() -> Result<String, String> {
    let server = Path::new("/usr/bin/redis-server");
    let server = if server.is_file() {
        server.to_owned()
    } else {
        PathBuf::from("redis-server")
    };
    let dir = state_dir("amani-test-redis", false);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port = crate::helpers::free_port();
    let log = dir.join("redis.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    keep_running(move || {
        command(&server, None)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(log_file)
            .stderr(Stdio::null())
            .spawn()
    })
    .map_err(|e| {
        format!("cannot start redis-server ({e}): run scripts/dev-services.sh, or set AMANI_TEST_REDIS_URL")
    })?;
    wait_until("Redis", &log, || {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    })?;
    Ok(format!("redis://127.0.0.1:{port}"))
}
