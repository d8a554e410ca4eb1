//! Building and running the application, the same way in production and in
//! tests: [`Application::build`] binds (port 0 picks a free one) and returns
//! a server that [`Application::run_until_stopped`] drives to a clean exit.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use secrecy::ExposeSecret;

use crate::auth::seal::Sealer;
use crate::auth::tokens::TokenKeys;
use crate::build_info::BuildInfo;
use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::ratelimit::RateLimiter;
use crate::state::{App, AppState};
use crate::store::Database;
use crate::telemetry::metrics::Metrics;

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("database configuration: {0}")]
    Database(#[from] crate::store::StoreError),
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("KYC encryption key: {0}")]
    Seal(#[from] crate::auth::seal::SealError),
    #[error("payment gateway: {0}")]
    Gateway(String),
}

impl Application {
    /// Binds the listener and builds the state. Does not touch the database:
    /// the service must come up (and answer probes) while it is unreachable.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let build = BuildInfo::current();
        let metrics = Metrics::new(&config, &build);
        let db = Database::new(&config.database, Arc::clone(&metrics))?;
        db.hold_serving_lock();
        let sealer = match &config.kyc_encryption_key {
            Some(key) => Sealer::from_key(key)?,
            None => Sealer::derive(config.secret_key.expose_secret().as_bytes())?,
        };
        let gateway = crate::gateway::build(&config.payments).map_err(StartError::Gateway)?;
        let alerts = crate::alerts::Dispatcher::new(&config, Arc::clone(&metrics));
        let payments = Arc::new(crate::operations::payments::Payments {
            db: Arc::clone(&db),
            gateway: Arc::clone(&gateway),
            metrics: Arc::clone(&metrics),
            alerts: Arc::clone(&alerts),
            environment: config.environment.as_str(),
            reconcile: config.payments.reconcile.clone(),
        });
        let state = AppState::new(App {
            payments,
            alerts,
            gateway,
            tokens: TokenKeys::new(&config.secret_key, config.access_token_expire_minutes),
            limiter: RateLimiter::new(&config.rate_limit)?,
            sealer,
            config,
            db,
            metrics,
            lifecycle: Lifecycle::new(),
            build,
        });
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until [`Lifecycle::begin_shutdown`] is called (the binary calls
    /// it on SIGTERM/SIGINT), then stops accepting, lets in-flight requests
    /// finish for up to `SHUTDOWN_TIMEOUT_SECONDS`, stops background work and
    /// closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application { listener, state } = self;
        let background = spawn_background(&state);
        let router = crate::http::router(state.clone());
        let lifecycle = state.lifecycle.clone();
        let shutdown_timeout = state.config.shutdown_timeout;
        let drain_delay = state.config.shutdown_drain_delay;

        tracing::info!(
            address = %listener.local_addr()?,
            environment = state.config.environment.as_str(),
            version = %state.config.app_version,
            git_sha = state.build.git_sha,
            database = state.db.engine().as_str(),
            "listening"
        );

        let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                lifecycle.stopping().await;
                // Keep accepting while load balancers notice readiness is 503.
                tokio::time::sleep(drain_delay).await;
                tracing::info!("no longer accepting connections; finishing in-flight requests");
            })
            .into_future();
        // When the stop began: the whole shutdown, pool close included, must
        // end by then + drain delay + SHUTDOWN_TIMEOUT_SECONDS.
        let stop_began = Arc::new(std::sync::OnceLock::new());
        {
            let (stop_began, lifecycle) = (Arc::clone(&stop_began), state.lifecycle.clone());
            tokio::spawn(async move {
                lifecycle.stopping().await;
                let _ = stop_began.set(std::time::Instant::now());
            });
        }
        let stopping = state.lifecycle.clone();
        let result = tokio::select! {
            result = server => result,
            () = async {
                stopping.stopping().await;
                tokio::time::sleep(drain_delay + shutdown_timeout).await;
            } => {
                tracing::warn!(timeout_seconds = shutdown_timeout.as_secs(), "in-flight requests still running at the shutdown timeout; exiting anyway");
                Ok(())
            }
        };
        state.lifecycle.begin_shutdown();
        let deadline =
            stop_began.get().copied().unwrap_or_else(std::time::Instant::now) + drain_delay + shutdown_timeout;
        // Closing the pool waits for every checked-out connection; a request
        // abandoned above may still hold one. Past the deadline, exit anyway.
        let remaining = deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(std::time::Duration::from_millis(500));
        let cleanup = async {
            for task in background {
                let _ = task.await;
            }
            state.db.close().await;
        };
        if tokio::time::timeout(remaining, cleanup).await.is_err() {
            tracing::warn!(
                timeout_seconds = shutdown_timeout.as_secs(),
                "background work or database connections still busy at the shutdown timeout; exiting anyway"
            );
        }
        tracing::info!("stopped");
        result
    }
}

fn spawn_background(state: &AppState) -> Vec<JoinHandle<()>> {
    let db = Arc::clone(&state.db);
    let limiter_state = state.clone();
    let mut stop = state.lifecycle.subscribe();
    let mut tasks = vec![
        tokio::spawn(db.run_monitor(state.lifecycle.subscribe())),
        tokio::spawn(Arc::clone(&state.alerts).run(state.lifecycle.subscribe())),
        tokio::spawn(
            crate::alerts::watchdog::Watchdog::new(
                Arc::clone(&state.db),
                Arc::clone(&state.metrics),
                Arc::clone(&state.alerts),
                state.config.environment.as_str(),
                state.config.alerts_channels.clone(),
            )
            .run(state.lifecycle.subscribe()),
        ),
        // Forget idle rate-limit keys so the in-process map stays small.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => limiter_state.limiter.shrink(),
                    _ = stop.changed() => return,
                }
            }
        }),
    ];
    if state.config.payments.reconcile.enabled {
        tasks.push(tokio::spawn(
            Arc::clone(&state.payments).run_reconciliation(state.lifecycle.subscribe()),
        ));
    }
    tasks
}
