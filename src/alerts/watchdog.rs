//! Watchdogs: checks that run on an interval and turn transitions into
//! alerts — trigger when a condition turns bad, resolve when it clears. The
//! database state is the one the probes and the request path use (kept by
//! the database monitor), and the ledger check is `amani ledger check`'s, so
//! an alert and a probe never disagree.
//!
//! | condition | alert | severity |
//! |---|---|---|
//! | the database cannot be reached | DatabaseUnreachable | critical |
//! | migrations pending on a running instance | MigrationsPending | warning |
//! | the ledger check finds a break | LedgerImbalance | critical |
//! | payment-gateway calls failing above the ratio | PaymentGatewayFailing | error |
//! | a burst of 5xx responses in one interval | ErrorBurst | error |

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Alert, Severity};
use std::sync::Arc;

use super::Dispatcher;
use crate::config::AlertChannelsConfig;
use crate::store::Database;
use crate::telemetry::metrics::Metrics;

/// What one check concluded.
enum Verdict {
    Healthy,
    Unhealthy(Alert),
}

pub struct Watchdog {
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    alerts: Arc<Dispatcher>,
    environment: &'static str,
    settings: AlertChannelsConfig,
    /// Conditions currently firing, with the alert that fired (to resolve).
    firing: HashMap<&'static str, Alert>,
    last_ledger_check: Option<Instant>,
    last_server_errors: u64,
    last_gateway: (u64, u64),
    /// Ledger checks in a row that could not run (not counting outages).
    ledger_check_errors: u32,
}

impl Watchdog {
    pub fn new(
        db: Arc<Database>,
        metrics: Arc<Metrics>,
        alerts: Arc<Dispatcher>,
        environment: &'static str,
        settings: AlertChannelsConfig,
    ) -> Watchdog {
        let last_server_errors = metrics.server_errors.load(Ordering::Relaxed);
        let last_gateway = (
            metrics.gateway_calls.load(Ordering::Relaxed),
            metrics.gateway_failures.load(Ordering::Relaxed),
        );
        Watchdog {
            db,
            metrics,
            alerts,
            environment,
            settings,
            firing: HashMap::new(),
            last_ledger_check: None,
            last_server_errors,
            last_gateway,
            ledger_check_errors: 0,
        }
    }

    fn alert(&self, condition: &str, name: &str, severity: Severity, summary: String) -> Alert {
        Alert::trigger(self.environment, condition, name, severity, summary)
    }

    /// Sends a trigger on the way into a condition and a resolve on the way out.
    fn transition(&mut self, condition: &'static str, verdict: Verdict) {
        match (verdict, self.firing.contains_key(condition)) {
            (Verdict::Unhealthy(alert), false) => {
                tracing::warn!(condition, alert = %alert.name, "watchdog: condition triggered");
                self.firing.insert(condition, alert.clone());
                self.alerts.send(alert);
            }
            (Verdict::Unhealthy(alert), true) => {
                // Still firing: the dispatcher's quiet period decides whether
                // a reminder goes out.
                self.alerts.send(alert);
            }
            (Verdict::Healthy, true) => {
                if let Some(alert) = self.firing.remove(condition) {
                    tracing::info!(condition, alert = %alert.name, "watchdog: condition resolved");
                    let resolved = alert.resolved(format!("{condition} is healthy again"));
                    self.alerts.send(resolved);
                }
            }
            (Verdict::Healthy, false) => {}
        }
    }

    /// Runs every check once. The database's state comes from its monitor
    /// (which checks every 5 s, every second while down), not from a second
    /// round of queries here.
    pub async fn tick(&mut self) {
        let db = &self.db;
        let reachable = db.is_reachable();
        let schema = reachable.then(|| db.schema_status());
        let verdict = if reachable {
            Verdict::Healthy
        } else {
            Verdict::Unhealthy(
                self.alert(
                    "database",
                    "DatabaseUnreachable",
                    Severity::Critical,
                    "the database cannot be reached; /api/v1/health says why".to_owned(),
                )
                .detail("engine", db.engine().as_str()),
            )
        };
        self.transition("database", verdict);

        if let Some(schema) = &schema {
            let verdict = if schema.pending > 0 {
                Verdict::Unhealthy(
                    self.alert(
                        "migrations",
                        "MigrationsPending",
                        Severity::Warning,
                        format!("{} migrations are not applied; readiness stays 503", schema.pending),
                    )
                    .detail("pending", schema.pending),
                )
            } else {
                Verdict::Healthy
            };
            self.transition("migrations", verdict);
        }

        let ledger_due = self
            .last_ledger_check
            .is_none_or(|at| at.elapsed() >= self.settings.ledger_check_interval);
        if ledger_due && schema.as_ref().is_some_and(|s| s.is_current()) {
            self.last_ledger_check = Some(Instant::now());
            self.check_ledger().await;
        }

        self.check_gateway();
        self.check_error_burst();
    }

    async fn check_ledger(&mut self) {
        let report = match self.db.acquire().await {
            Ok(mut conn) => crate::store::ledger::check(&mut conn).await,
            Err(err) => Err(err),
        };
        let now = time::OffsetDateTime::now_utc();
        let now = now.unix_timestamp() as f64 + f64::from(now.nanosecond()) / 1e9;
        let metrics = &self.metrics;
        let report = match report {
            Ok(report) => {
                self.ledger_check_errors = 0;
                report
            }
            // The database being away is the database watchdog's alert.
            Err(err) if err.is_unavailable() || !self.db.is_reachable() => return,
            // One failure may be a connection cut mid-check that nothing has
            // classified yet: the check must fail twice in a row to count.
            Err(err) if self.ledger_check_errors == 0 => {
                self.ledger_check_errors = 1;
                tracing::warn!(error = %err, "the ledger check failed; trying again at the next interval");
                return;
            }
            // A check that cannot run is a check that did not pass.
            Err(err) => {
                tracing::error!(error = %err, "the ledger check could not run");
                metrics.ledger_check_ok.set(0);
                metrics.ledger_check_timestamp.set(now);
                let alert = self.alert(
                    "ledger",
                    "LedgerImbalance",
                    Severity::Critical,
                    format!("the ledger check could not run ({err}): the books are not proven"),
                );
                self.transition("ledger", Verdict::Unhealthy(alert));
                return;
            }
        };
        metrics.ledger_check_ok.set(i64::from(report.balanced));
        metrics.ledger_check_timestamp.set(now);
        if report.balanced {
            metrics.ledger_check_success_timestamp.set(now);
        }
        let verdict = if report.balanced {
            Verdict::Healthy
        } else {
            Verdict::Unhealthy(
                self.alert(
                    "ledger",
                    "LedgerImbalance",
                    Severity::Critical,
                    format!(
                        "the ledger check found {} problems: the books do not balance",
                        report.problems.len()
                    ),
                )
                .detail("first_problem", report.problems.first().cloned().unwrap_or_default()),
            )
        };
        self.transition("ledger", verdict);
    }

    fn check_gateway(&mut self) {
        let metrics = &self.metrics;
        let now = (
            metrics.gateway_calls.load(Ordering::Relaxed),
            metrics.gateway_failures.load(Ordering::Relaxed),
        );
        let calls = now.0.saturating_sub(self.last_gateway.0);
        let failures = now.1.saturating_sub(self.last_gateway.1);
        self.last_gateway = now;
        if calls == 0 {
            return; // no traffic, no news: keep the current state
        }
        let ratio = failures as f64 / calls as f64;
        let threshold = self.settings.gateway_failure_ratio;
        let verdict = if calls >= 3 && ratio > threshold {
            Verdict::Unhealthy(
                self.alert(
                    "payment-gateway",
                    "PaymentGatewayFailing",
                    Severity::Error,
                    format!("{failures} of {calls} payment-gateway calls failed in the last interval"),
                )
                .detail("failure_ratio", format!("{ratio:.2}")),
            )
        } else {
            Verdict::Healthy
        };
        self.transition("payment-gateway", verdict);
    }

    fn check_error_burst(&mut self) {
        let now = self.metrics.server_errors.load(Ordering::Relaxed);
        let burst = now.saturating_sub(self.last_server_errors);
        self.last_server_errors = now;
        let threshold = self.settings.error_burst_threshold;
        let verdict = if burst >= threshold {
            Verdict::Unhealthy(
                self.alert(
                    "error-burst",
                    "ErrorBurst",
                    Severity::Error,
                    format!("{burst} responses failed with 5xx in the last interval"),
                )
                .detail("count", burst),
            )
        } else {
            Verdict::Healthy
        };
        self.transition("error-burst", verdict);
    }

    /// Ticks every `WATCHDOG_INTERVAL_SECONDS` until `stop` fires.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval: Duration = self.settings.watchdog_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.tick().await,
                _ = stop.changed() => return,
            }
        }
    }
}
