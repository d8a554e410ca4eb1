//! Start and stop: the draining flag the readiness probe reads, and the
//! signal every background task and the server wait on to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

#[derive(Clone)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle {
            draining: Arc::new(AtomicBool::new(false)),
            stop: watch::Sender::new(false),
        }
    }

    /// True from the moment shutdown was asked for: readiness answers 503 so
    /// load balancers stop sending new work while in-flight requests finish.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts shutdown (idempotent). Called by the signal handler and tests.
    pub fn begin_shutdown(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            tracing::info!("shutdown requested: draining");
        }
        self.stop.send_replace(true);
    }

    /// Resolves once shutdown has been asked for.
    pub async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        // An error means the sender is gone, which only happens at exit.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
