//! Embeds the git SHA, build time and rustc version for `GET /api/v1/version`
//! and the `amani_app_info` metric. `GIT_SHA` / `BUILD_TIME` in the build
//! environment win (Docker builds have no .git); otherwise git and date are
//! asked, and "unknown" is used if they cannot answer.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    println!("cargo:rerun-if-env-changed=BUILD_TIME");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let sha = std::env::var("GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let built = std::env::var("BUILD_TIME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AMANI_GIT_SHA={sha}");
    println!("cargo:rustc-env=AMANI_BUILD_TIME={built}");
    println!("cargo:rustc-env=AMANI_RUSTC_VERSION={rustc_version}");
}
