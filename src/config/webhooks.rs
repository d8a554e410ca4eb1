//! The event log's retention and outbound webhook delivery.

use std::time::Duration;

use super::{ConfigError, Environment, Vars};

/// Seconds to wait after each failed attempt, in order (9 retries after
/// the first attempt; about 2.7 days in all, before jitter).
pub const DEFAULT_RETRY_SCHEDULE: &str = "5,300,1800,7200,18000,36000,36000,50400,86400";

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Run the delivery worker in `serve` (`WEBHOOK_DELIVERY_ENABLED`).
    pub delivery_enabled: bool,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The wait after each failed attempt; after the last, the delivery fails.
    pub retry_schedule: Vec<Duration>,
    /// Endpoints may be (or resolve to) loopback, private, link-local or
    /// other internal addresses. Off in production unless set.
    pub allow_private_targets: bool,
    /// Endpoint URLs must be https (on in production).
    pub require_https: bool,
    /// An endpoint failing without a success this long is disabled.
    pub disable_after: Duration,
    /// Events and delivery attempts older than this are pruned.
    pub retention: Duration,
}

pub(super) fn parse_webhooks(vars: &Vars, environment: Environment) -> Result<WebhookConfig, ConfigError> {
    let production = environment == Environment::Production;
    let retry_schedule = vars.parse_with(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS",
        DEFAULT_RETRY_SCHEDULE.to_owned(),
        |v| {
            let seconds: Result<Vec<u64>, _> = v.split(',').map(|s| s.trim().parse::<u64>()).collect();
            match seconds {
                Ok(list) if !list.is_empty() && list.len() <= 20 && list.iter().all(|s| (1..=86_400).contains(s)) => {
                    Ok(v.to_owned())
                }
                _ => Err("1 to 20 comma-separated waits in seconds, each from 1 to 86400".into()),
            }
        },
    )?;
    let allow_private_targets = vars.parse_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", !production)?;
    Ok(WebhookConfig {
        delivery_enabled: vars.parse_bool("WEBHOOK_DELIVERY_ENABLED", true)?,
        timeout: Duration::from_secs(vars.parse_range("WEBHOOK_TIMEOUT_SECONDS", 10, 1..=60)?),
        retry_schedule: retry_schedule
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .map(Duration::from_secs)
            .collect(),
        allow_private_targets,
        require_https: production,
        disable_after: Duration::from_secs(vars.parse_range(
            "WEBHOOK_DISABLE_AFTER_SECONDS",
            3 * 86_400,
            1..=30 * 86_400,
        )?),
        retention: Duration::from_secs(86_400 * vars.parse_range("EVENT_RETENTION_DAYS", 30, 1..=3650)?),
    })
}
