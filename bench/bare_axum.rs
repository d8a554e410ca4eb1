//! The floor `bench/compare.sh` measures Amani against: the same `/ping`
//! answer from a bare axum router on the same runtime, with nothing else
//! (no logs, metrics, traces, middleware).
//!
//!     cargo run --release --example bare_axum -- 18100

use axum::{Json, Router, routing::get};

#[derive(serde::Serialize)]
struct Pong {
    status: &'static str,
}

async fn ping() -> Json<Pong> {
    Json(Pong { status: "pong" })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18100);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, Router::new().route("/api/v1/ping", get(ping))).await
}
