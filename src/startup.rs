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
    /// `METRICS_ADDR`'s listener, serving only `/metrics`.
    metrics_listener: Option<TcpListener>,
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
    #[error("webhook client: {0}")]
    Webhooks(String),
}

impl Application {
    /// Binds the listener and builds the state. Does not touch the database:
    /// the service must come up (and answer probes) while it is unreachable.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics_listener = match config.metrics_addr.filter(|_| config.metrics_enabled) {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let build = BuildInfo::current();
        let metrics = Metrics::new(&config, &build);
        let db = Database::new(&config.database, Arc::clone(&metrics))?;
        db.hold_serving_lock();
        let sealer = Arc::new(match &config.kyc_encryption_key {
            Some(key) => Sealer::from_key(key)?,
            None => Sealer::derive(config.secret_key.expose_secret().as_bytes())?,
        });
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
        let deliverer = Arc::new(
            crate::operations::deliveries::Deliverer::new(
                Arc::clone(&db),
                Arc::clone(&metrics),
                Arc::clone(&alerts),
                Arc::clone(&sealer),
                &config,
            )
            .map_err(StartError::Webhooks)?,
        );
        let scheduler = Arc::new(crate::operations::scheduler::Scheduler::new(
            Arc::clone(&db),
            Arc::clone(&metrics),
            config.schedule.lease,
        ));
        let state = AppState::new(App {
            payments,
            deliverer,
            scheduler,
            alerts,
            gateway,
            history: Arc::new(crate::telemetry::history::History::new(
                config.console.chart_interval,
                crate::telemetry::history::SPAN,
            )),
            tokens: TokenKeys::new(&config.secret_key, config.access_token_expire_minutes),
            limiter: RateLimiter::new(&config.rate_limit)?,
            sealer,
            config,
            db,
            metrics,
            lifecycle: Lifecycle::new(),
            build,
        });
        Ok(Application {
            listener,
            metrics_listener,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The address `/metrics` is served on when `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until [`Lifecycle::begin_shutdown`] is called (the binary calls
    /// it on SIGTERM/SIGINT), then stops accepting, lets in-flight requests
    /// finish for up to `SHUTDOWN_TIMEOUT_SECONDS`, stops background work and
    /// closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
        } = self;
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

        let limits = || ConnectionLimits {
            header_read_timeout: state.config.header_read_timeout,
            max_connections: state.config.max_connections,
        };
        let metrics_server = metrics_listener.map(|metrics_listener| {
            if let Ok(address) = metrics_listener.local_addr() {
                tracing::info!(%address, "serving /metrics on its own listener (METRICS_ADDR)");
            }
            let router = crate::http::metrics_router(state.clone());
            tokio::spawn(serve(
                metrics_listener,
                router,
                limits(),
                lifecycle.clone(),
                drain_delay,
            ))
        });
        let main_server = serve(listener, router, limits(), lifecycle, drain_delay);
        let server = async move {
            main_server.await;
            if let Some(metrics_server) = metrics_server {
                let _ = metrics_server.await;
            }
        };
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
        let result: std::io::Result<()> = tokio::select! {
            () = server => Ok(()),
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

/// What one connection may cost.
struct ConnectionLimits {
    /// The whole head of a request must arrive within this; it also closes a
    /// keep-alive connection that sends nothing for this long (hyper starts
    /// the clock whenever it waits for a head).
    header_read_timeout: std::time::Duration,
    /// Connections open at once; past it new ones are closed at accept.
    max_connections: usize,
}

/// Accepts connections until the stop (plus the drain delay, during which
/// load balancers see readiness 503), then waits for in-flight requests.
/// A hand-written loop over hyper-util rather than `axum::serve`, which
/// offers neither a header-read timeout nor a connection cap: one client
/// sending a header byte every few seconds, or thousands of idle
/// connections, must not hold the service's resources.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    lifecycle: Lifecycle,
    drain_delay: std::time::Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let stop = async {
        lifecycle.stopping().await;
        tokio::time::sleep(drain_delay).await;
    };
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection closed at accept: at the connection cap"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client hanging up or timing out is routine, not an error.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("no longer accepting connections; finishing in-flight requests");
    graceful.shutdown().await;
}

fn spawn_background(state: &AppState) -> Vec<JoinHandle<()>> {
    let db = Arc::clone(&state.db);
    let limiter_state = state.clone();
    let mut stop = state.lifecycle.subscribe();
    let mut tasks = vec![
        tokio::spawn(Arc::clone(&db).run_monitor(state.lifecycle.subscribe())),
        tokio::spawn(db.run_checkpointer(state.lifecycle.subscribe())),
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
    if state.config.metrics_enabled {
        tasks.push(tokio::spawn(crate::http::metrics::refresh_stored_gauges(
            state.clone(),
            state.lifecycle.subscribe(),
        )));
        let metrics = Arc::clone(&state.metrics);
        tasks.push(tokio::spawn(crate::telemetry::history::run_sampler(
            Arc::clone(&state.history),
            move || metrics.render_openmetrics(),
            state.lifecycle.subscribe(),
        )));
    }
    if state.config.webhooks.delivery_enabled {
        tasks.push(tokio::spawn(
            Arc::clone(&state.deliverer).run(state.lifecycle.subscribe()),
        ));
    }
    if state.config.schedule.enabled {
        tasks.push(tokio::spawn(
            Arc::clone(&state.scheduler).run(state.lifecycle.subscribe()),
        ));
    }
    if state.config.payments.reconcile.enabled {
        tasks.push(tokio::spawn(
            Arc::clone(&state.payments).run_reconciliation(state.lifecycle.subscribe()),
        ));
    }
    tasks
}
