//! The one state type every handler receives.

use std::ops::Deref;
use std::sync::Arc;

use crate::alerts::Dispatcher;
use crate::auth::seal::Sealer;
use crate::auth::tokens::TokenKeys;
use crate::build_info::BuildInfo;
use crate::config::Config;
use crate::gateway::PaymentGateway;
use crate::lifecycle::Lifecycle;
use crate::ratelimit::RateLimiter;
use crate::store::Database;
use crate::telemetry::metrics::Metrics;

/// Cheap to clone: one `Arc` around everything the service shares.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub config: Config,
    pub db: Arc<Database>,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Lifecycle,
    pub build: BuildInfo,
    pub tokens: TokenKeys,
    pub sealer: Arc<Sealer>,
    pub limiter: RateLimiter,
    pub gateway: Arc<dyn PaymentGateway>,
    pub alerts: Arc<Dispatcher>,
    /// Deposits, withdrawals, destinations and reconciliation.
    pub payments: Arc<crate::operations::payments::Payments>,
    /// The outbound webhook worker (run by `serve` unless
    /// `WEBHOOK_DELIVERY_ENABLED=false`).
    pub deliverer: Arc<crate::operations::deliveries::Deliverer>,
    /// Timed work: auto-releases, funding deadlines (run by `serve` unless
    /// `SCHEDULER_ENABLED=false`).
    pub scheduler: Arc<crate::operations::scheduler::Scheduler>,
    /// The last hour of this process's metrics, for the console's charts
    /// (sampled by `serve` while metrics are enabled).
    pub history: Arc<crate::telemetry::history::History>,
}

impl AppState {
    pub fn new(app: App) -> AppState {
        AppState(Arc::new(app))
    }
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
