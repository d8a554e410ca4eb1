//! The service's own alerts: where they go and how the watchdogs judge.

use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            "critical" => Ok(Severity::Critical),
            _ => Err("info, warning, error or critical".into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub queue_capacity: usize,
    pub quiet_period: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub min_severity_slack: Severity,
    pub min_severity_pagerduty: Severity,
}

/// Where the service's own alerts go, and how its watchdogs judge.
#[derive(Debug, Clone)]
pub struct AlertChannelsConfig {
    pub slack_webhook_url: Option<SecretString>,
    /// The PagerDuty Events API v2 routing (integration) key.
    pub pagerduty_routing_key: Option<SecretString>,
    /// Kept from the original's settings; Events API v2 does not need it.
    pub pagerduty_service_id: Option<String>,
    pub pagerduty_events_url: String,
    /// When set, the service's own alerts go to this Alertmanager (API v2)
    /// and not to Slack or PagerDuty directly (`ALERTMANAGER_URL`).
    pub alertmanager_url: Option<String>,
    pub watchdog_interval: Duration,
    pub ledger_check_interval: Duration,
    /// 5xx responses in one watchdog interval that make an ErrorBurst.
    pub error_burst_threshold: u64,
    /// Failed fraction of gateway calls in one interval that alerts.
    pub gateway_failure_ratio: f64,
}
