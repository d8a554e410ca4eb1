//! The alert channels: a Slack incoming webhook and the PagerDuty Events
//! API v2, or, when `ALERTMANAGER_URL` is set, Alertmanager alone (which
//! then pages and posts for the service as it does for Prometheus). Neither
//! URL nor key ever reaches a log line.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Action, Alert, Severity};
use crate::config::Config;
/// A boxed future, so channels can live behind `dyn Channel`.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the channel answered to a successful delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// Network errors, 429 and 5xx are worth retrying; other 4xx are not.
    pub retryable: bool,
    /// The channel's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<Delivery, Failure>>;
    /// Every reminder of a firing alert, not one per quiet period (a
    /// channel that dedups itself and expires what is not re-sent).
    fn wants_reminders(&self) -> bool {
        false
    }
}

/// Where an alert came from, on every message.
#[derive(Debug, Clone)]
pub struct Origin {
    pub environment: String,
    pub version: String,
    pub host: String,
}

pub fn from_config(config: &Config) -> Vec<Arc<dyn Channel>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let origin = Origin {
        environment: config.environment.as_str().to_owned(),
        version: config.app_version.clone(),
        host: hostname(),
    };
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(url) = &config.alerts_channels.alertmanager_url {
        // One path to the pager: Alertmanager groups the service's alerts
        // with Prometheus's for the same condition (one incident, one
        // page), and its silences and inhibitions apply to both.
        if config.alerts_channels.slack_webhook_url.is_some() || config.alerts_channels.pagerduty_routing_key.is_some()
        {
            tracing::info!(
                "ALERTMANAGER_URL is set: alerts go to Alertmanager; Slack and PagerDuty are not called directly"
            );
        }
        channels.push(Arc::new(Alertmanager {
            client,
            url: format!("{url}/api/v2/alerts"),
            environment: origin.environment,
        }));
        return channels;
    }
    if let Some(url) = &config.alerts_channels.slack_webhook_url {
        channels.push(Arc::new(Slack {
            client: client.clone(),
            url: url.clone(),
            origin: origin.clone(),
        }));
    }
    if let Some(key) = &config.alerts_channels.pagerduty_routing_key {
        channels.push(Arc::new(PagerDuty {
            client,
            url: config.alerts_channels.pagerduty_events_url.clone(),
            routing_key: key.clone(),
            origin,
        }));
    }
    channels
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most buffer.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Delivery, Failure> {
    let response = client.post(url).json(body).send().await.map_err(|err| Failure {
        message: if err.is_timeout() {
            "timed out".into()
        } else {
            "connection failed".into()
        },
        retryable: true,
        retry_after: None,
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)));
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(Delivery {
            status: status.as_u16(),
            body: text,
        });
    }
    Err(Failure {
        message: format!("HTTP {}", status.as_u16()),
        retryable: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        retry_after,
    })
}

pub struct Slack {
    client: reqwest::Client,
    url: SecretString,
    origin: Origin,
}

/// Slack attachment colours by severity (green when resolved).
pub fn slack_color(alert: &Alert) -> &'static str {
    match (alert.action, alert.severity) {
        (Action::Resolve, _) => "#2eb886",
        (_, Severity::Critical) => "#a30200",
        (_, Severity::Error) => "#e01e5a",
        (_, Severity::Warning) => "#daa038",
        (_, Severity::Info) => "#439fe0",
    }
}

impl Slack {
    pub fn payload(&self, alert: &Alert) -> Value {
        let state = match alert.action {
            Action::Trigger => alert.severity.as_str().to_uppercase(),
            Action::Resolve => "RESOLVED".into(),
        };
        let mut fields = vec![
            json!({"title": "environment", "value": self.origin.environment, "short": true}),
            json!({"title": "version", "value": self.origin.version, "short": true}),
            json!({"title": "host", "value": self.origin.host, "short": true}),
            json!({"title": "severity", "value": alert.severity.as_str(), "short": true}),
        ];
        fields.extend(
            alert
                .details
                .iter()
                .map(|(k, v)| json!({"title": k, "value": v, "short": true})),
        );
        json!({
            "text": format!("[{state}] {}: {}", alert.name, alert.summary),
            "attachments": [{
                "color": slack_color(alert),
                "title": format!("[{state}] {}", alert.name),
                "text": alert.summary,
                "fields": fields,
                "footer": format!("amani · {}", alert.dedup_key),
            }],
        })
    }
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<Delivery, Failure>> {
        Box::pin(async move { post(&self.client, self.url.expose_secret(), &self.payload(alert)).await })
    }
}

pub struct PagerDuty {
    client: reqwest::Client,
    url: String,
    routing_key: SecretString,
    origin: Origin,
}

impl PagerDuty {
    pub fn payload(&self, alert: &Alert) -> Value {
        let mut body = json!({
            "routing_key": self.routing_key.expose_secret(),
            "dedup_key": alert.dedup_key,
            "event_action": match alert.action { Action::Trigger => "trigger", Action::Resolve => "resolve" },
        });
        if alert.action == Action::Trigger {
            let details: serde_json::Map<String, Value> = alert
                .details
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .chain([
                    ("environment".to_owned(), Value::from(self.origin.environment.clone())),
                    ("version".to_owned(), Value::from(self.origin.version.clone())),
                ])
                .collect();
            body["payload"] = json!({
                "summary": format!("{}: {}", alert.name, alert.summary),
                "source": self.origin.host,
                // PagerDuty's severities are ours, named alike.
                "severity": alert.severity.as_str(),
                "component": "amani",
                "class": alert.name,
                "custom_details": details,
            });
        }
        body
    }
}

impl Channel for PagerDuty {
    fn name(&self) -> &'static str {
        "pagerduty"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<Delivery, Failure>> {
        Box::pin(async move { post(&self.client, &self.url, &self.payload(alert)).await })
    }
}

/// Alertmanager's API v2: the service's alerts become alerts of its own,
/// labelled like the rules' (`alertname`, `job="amani"` as the shipped
/// Prometheus job is named, `severity`), so `group_by: [alertname, job]` puts
/// the watchdog's and Prometheus's alert for one condition in one group: one
/// notification, one PagerDuty incident (its dedup key is the group's).
/// A firing alert is re-sent at every check (Alertmanager ends an alert not
/// re-sent within its `resolve_timeout`, so a dead replica's alert resolves
/// by itself); a resolve sends `endsAt`.
pub struct Alertmanager {
    client: reqwest::Client,
    url: String,
    environment: String,
}

/// The alert rule watching the same condition as a service alert of
/// another name (so both land in one group).
pub fn rule_twin(name: &str) -> &str {
    match name {
        "DatabaseUnreachable" => "DatabaseConnectionIssues",
        other => other,
    }
}

impl Alertmanager {
    pub fn payload(&self, alert: &Alert) -> Value {
        let description = alert
            .details
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut item = json!({
            "labels": {
                "alertname": rule_twin(&alert.name),
                "job": "amani",
                "severity": alert.severity.as_str(),
                "environment": self.environment,
                "source": "amani-watchdog",
            },
            "annotations": {
                "summary": alert.summary,
                "description": description,
            },
        });
        if alert.action == Action::Resolve {
            item["endsAt"] = json!(
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            );
        }
        json!([item])
    }
}

impl Channel for Alertmanager {
    fn name(&self) -> &'static str {
        "alertmanager"
    }

    fn wants_reminders(&self) -> bool {
        true
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<Delivery, Failure>> {
        Box::pin(async move { post(&self.client, &self.url, &self.payload(alert)).await })
    }
}
