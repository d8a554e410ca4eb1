//! The README's walkthrough, run verbatim: what a newcomer pastes must work.

use std::process::{Command, Stdio};

/// The first ```sh block after `heading` in README.md.
fn readme_block(heading: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + section[start..].find("```\n").expect("the block's end");
    section[start..end].to_owned()
}

/// The service exactly as `cargo run --release` starts it (no
/// configuration: SQLite in ./data, the sandbox gateway), in an empty
/// folder, on a free port; then the walkthrough in that folder with
/// `amani` on PATH and BASE pointing at the service.
#[test]
fn the_readme_walkthrough_runs_verbatim_on_a_fresh_service() {
    let script = readme_block("### A first deal in five minutes");
    assert!(script.contains("amani admin create"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let amani = env!("CARGO_BIN_EXE_amani");
    let mut server = Command::new(amani)
        .env_clear()
        .env("PORT", "0")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = crate::cli::wait_for_listening(&mut server);
    let bin_dir = std::path::Path::new(amani).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", path)
        .env("BASE", format!("http://{address}/api/v1"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    // The outcome the README states after the block.
    let wallets: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with("{\"balances\""))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        wallets,
        [
            serde_json::json!({"balances": [{"currency": "NGN", "available": 295_000, "reserved": 0}]}),
            serde_json::json!({"balances": [{"currency": "NGN", "available": 0, "reserved": 0}]}),
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("\"type\":\"withdrawal\",\"status\":\"completed\""),
        "{stdout}"
    );
    assert!(stdout.contains("ledger balanced"), "{stdout}");
}
