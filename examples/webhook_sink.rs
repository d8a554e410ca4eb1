//! A webhook receiver for benchmarks: `cargo run --release --example
//! webhook_sink -- PORT`. Answers every POST with 204 and counts it;
//! `GET /count` answers the count, `POST /reset` sets it to zero.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a failed bind is a crash

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18095);
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/count",
            get(|State(c): State<Arc<AtomicU64>>| async move { c.load(Ordering::Relaxed).to_string() }),
        )
        .route(
            "/reset",
            post(|State(c): State<Arc<AtomicU64>>| async move {
                c.store(0, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(|State(c): State<Arc<AtomicU64>>| async move {
            c.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        })
        .with_state(count);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
