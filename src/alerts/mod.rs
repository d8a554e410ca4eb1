//! Alerts the service sends itself, for what it sees first-hand: Slack
//! (incoming webhook) and PagerDuty (Events API v2), or Alertmanager alone
//! when `ALERTMANAGER_URL` is set (see [`channels::Alertmanager`]).
//!
//! Sending is off the request path: [`Dispatcher::send`] only enqueues, on a
//! bounded queue that drops the oldest alert when full (and counts it in
//! `alerts_dropped_total`), so a slow or dead Slack can neither block a
//! request nor grow memory. One worker delivers, retrying network errors,
//! 429 and 5xx with exponential back-off and jitter (honouring
//! `Retry-After`), never other 4xx. The same firing alert is not re-sent
//! within a quiet period; a resolve always goes out.
//!
//! Dedup keys name the condition, not the replica
//! (`amani/<environment>/<condition>`), so several replicas seeing the same
//! outage open one PagerDuty incident.

pub mod channels;
pub mod watchdog;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Config;
pub use crate::config::{AlertConfig, Severity};
use crate::telemetry::metrics::{AlertLabels, Metrics};
use channels::{Channel, Delivery};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Trigger,
    Resolve,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub name: String,
    pub severity: Severity,
    pub summary: String,
    pub details: Vec<(String, String)>,
    pub dedup_key: String,
    pub action: Action,
}

impl Alert {
    /// An alert about `condition` (a stable name such as `database`), with
    /// the dedup key every replica computes alike.
    pub fn trigger(
        environment: &str,
        condition: &str,
        name: &str,
        severity: Severity,
        summary: impl Into<String>,
    ) -> Alert {
        Alert {
            name: name.to_owned(),
            severity,
            summary: summary.into(),
            details: Vec::new(),
            dedup_key: format!("amani/{environment}/{condition}"),
            action: Action::Trigger,
        }
    }

    pub fn resolved(mut self, summary: impl Into<String>) -> Alert {
        self.action = Action::Resolve;
        self.summary = summary.into();
        self
    }

    pub fn detail(mut self, key: &str, value: impl ToString) -> Alert {
        self.details.push((key.to_owned(), value.to_string()));
        self
    }
}

struct Queue {
    items: Mutex<VecDeque<Alert>>,
    ready: Notify,
}

pub struct Dispatcher {
    queue: Arc<Queue>,
    channels: Vec<Arc<dyn Channel>>,
    config: AlertConfig,
    metrics: Arc<Metrics>,
    /// When each firing dedup key was last sent (for the quiet period).
    last_sent: Mutex<HashMap<String, Instant>>,
    /// The newest deliveries, newest last (for the console's operator view).
    recent: Mutex<VecDeque<SentAlert>>,
}

/// How many deliveries [`Dispatcher::recent`] remembers.
pub const RECENT_DELIVERIES: usize = 20;

/// One alert delivered (or not) to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct SentAlert {
    /// When the delivery finished (the stored timestamp format).
    pub at: String,
    pub name: String,
    pub severity: Severity,
    pub action: Action,
    pub channel: &'static str,
    /// `None` when delivered, else why it failed after its retries.
    pub failure: Option<String>,
}

impl Dispatcher {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            queue: Arc::new(Queue {
                items: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
            }),
            channels: channels::from_config(config),
            config: config.alerts.clone(),
            metrics,
            last_sent: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_DELIVERIES)),
        })
    }

    /// The channels configured (for `alert test` and the start-up log).
    pub fn channel_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(|c| c.name()).collect()
    }

    /// Enqueues an alert; never blocks, never fails. A full queue drops its
    /// oldest alert to make room.
    pub fn send(&self, alert: Alert) {
        if self.channels.is_empty() {
            tracing::debug!(alert = %alert.name, "no alert channel configured; alert not sent");
            return;
        }
        let Ok(mut items) = self.queue.items.lock() else { return };
        if items.len() >= self.config.queue_capacity
            && let Some(dropped) = items.pop_front()
        {
            self.metrics.alerts_dropped.inc();
            tracing::warn!(alert = %dropped.name, "alert queue full; dropped the oldest alert");
        }
        items.push_back(alert);
        drop(items);
        self.queue.ready.notify_one();
    }

    /// Alerts waiting to be delivered.
    pub fn queued(&self) -> usize {
        self.queue.items.lock().map(|i| i.len()).unwrap_or(0)
    }

    /// Delivers queued alerts until `stop` fires.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let next = self.queue.items.lock().ok().and_then(|mut items| items.pop_front());
            match next {
                Some(alert) => {
                    tokio::select! {
                        _ = self.deliver(&alert) => {}
                        _ = stop.changed() => return,
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.queue.ready.notified() => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Whether a trigger for this key was sent within the quiet period.
    fn in_quiet_period(&self, alert: &Alert) -> bool {
        if self.channels.iter().any(|c| c.wants_reminders()) {
            return false;
        }
        let Ok(mut last_sent) = self.last_sent.lock() else {
            return false;
        };
        match alert.action {
            Action::Resolve => {
                last_sent.remove(&alert.dedup_key);
                false
            }
            Action::Trigger => {
                let now = Instant::now();
                if let Some(at) = last_sent.get(&alert.dedup_key)
                    && now.duration_since(*at) < self.config.quiet_period
                {
                    return true;
                }
                last_sent.insert(alert.dedup_key.clone(), now);
                false
            }
        }
    }

    /// Sends one alert to every channel whose minimum severity it reaches,
    /// with retries; returns each channel's outcome.
    pub async fn deliver(&self, alert: &Alert) -> Vec<(&'static str, Result<Delivery, String>)> {
        if self.in_quiet_period(alert) {
            tracing::debug!(alert = %alert.name, dedup_key = %alert.dedup_key, "still firing; within the quiet period");
            return Vec::new();
        }
        let mut outcomes = Vec::new();
        for channel in &self.channels {
            let minimum = match channel.name() {
                "pagerduty" => self.config.min_severity_pagerduty,
                // Alertmanager routes by severity itself.
                "alertmanager" => Severity::Info,
                _ => self.config.min_severity_slack,
            };
            if alert.severity < minimum {
                continue;
            }
            let outcome = self.deliver_to(channel.as_ref(), alert).await;
            let label = if outcome.is_ok() { "succeeded" } else { "failed" };
            self.metrics
                .alerts_sent
                .get_or_create(&AlertLabels {
                    channel: channel.name(),
                    outcome: label,
                })
                .inc();
            self.remember(alert, channel.name(), outcome.as_ref().err());
            outcomes.push((channel.name(), outcome));
        }
        outcomes
    }

    fn remember(&self, alert: &Alert, channel: &'static str, failure: Option<&String>) {
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == RECENT_DELIVERIES {
            recent.pop_front();
        }
        recent.push_back(SentAlert {
            at: crate::timestamp::now(),
            name: alert.name.clone(),
            severity: alert.severity,
            action: alert.action,
            channel,
            failure: failure.cloned(),
        });
    }

    /// The newest deliveries this process made, newest first (at most
    /// [`RECENT_DELIVERIES`]; forgotten on restart).
    pub fn recent(&self) -> Vec<SentAlert> {
        let recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        recent.iter().rev().cloned().collect()
    }

    async fn deliver_to(&self, channel: &dyn Channel, alert: &Alert) -> Result<Delivery, String> {
        let mut last_error = String::new();
        for attempt in 1..=self.config.max_attempts {
            match channel.deliver(alert).await {
                Ok(delivery) => {
                    tracing::info!(channel = channel.name(), alert = %alert.name, action = ?alert.action, attempt, status = delivery.status, "alert delivered");
                    return Ok(delivery);
                }
                Err(failure) => {
                    tracing::warn!(channel = channel.name(), alert = %alert.name, attempt, error = %failure.message, retryable = failure.retryable, "alert delivery failed");
                    last_error = failure.message.clone();
                    if !failure.retryable || attempt == self.config.max_attempts {
                        break;
                    }
                    let backoff = self.config.retry_base * 2_u32.saturating_pow(attempt - 1);
                    let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
                    tokio::time::sleep(failure.retry_after.unwrap_or(backoff + jitter)).await;
                }
            }
        }
        Err(last_error)
    }
}
