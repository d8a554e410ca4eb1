//! The webhook delivery worker: fans new events out to the endpoints that
//! want them, sends each delivery signed (Standard Webhooks), retries
//! failures on a schedule, and prunes what is past retention.
//!
//! - **Several replicas, kill -9**: all state is in the database (see
//!   [`crate::store::deliveries`]); a delivery is claimed with a lease, and
//!   one whose worker died is sent again, with the same `webhook-id`, once
//!   the lease runs out.
//! - **Order**: per project (wallet and KYC events: per user). A delivery
//!   waits while an earlier event with the same key is undelivered to that
//!   endpoint; there is no order across projects.
//! - **One slow endpoint holds up nothing else**: each attempt runs in its
//!   own task with `WEBHOOK_TIMEOUT_SECONDS`; at most [`PER_ENDPOINT`]
//!   attempts per endpoint are in flight from one replica, and endpoints
//!   are claimed for separately.
//! - **Retries**: after a failure, the next attempt waits the next entry of
//!   `WEBHOOK_RETRY_SCHEDULE_SECONDS` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
//!   10 h, 14 h, 24 h by default: ten attempts over about 2.7 days), ±20%
//!   jitter, or longer when the receiver answers 429/503 with
//!   `Retry-After`. After the last, the delivery is `failed`.
//! - **Endpoint health**: `failing` after 5 failed attempts in a row;
//!   `disabled` (with an alert) when every attempt has failed for
//!   `WEBHOOK_DISABLE_AFTER_SECONDS`; a success makes it `enabled` again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tracing::Instrument;

use super::OperationError;
use super::events::EventView;
use super::webhooks::{is_internal, secret_key, sign};
use crate::alerts::{Alert, Dispatcher, Severity};
use crate::auth::seal::Sealer;
use crate::config::WebhookConfig;
use crate::store::deliveries::{self, AttemptRecord, Outgoing};
use crate::store::{Database, events, timestamp, webhook_endpoints};
use crate::telemetry::metrics::{Metrics, OutcomeLabels};

/// Attempts in flight to one endpoint from one replica.
pub const PER_ENDPOINT: usize = 16;
/// Events fanned out per transaction.
const DISPATCH_BATCH: i64 = 500;
/// How often the worker looks for work when nothing wakes it sooner (an
/// event committed in this process, or an attempt finished).
const TICK: Duration = Duration::from_secs(1);
/// How often old events and attempts are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Events pruned per statement (the next prune takes the rest).
const PRUNE_BATCH: i64 = 10_000;
/// The most a receiver's `Retry-After` can push an attempt back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// How much of a receiver's answer is kept with the attempt.
const KEPT_BODY: usize = 1024;

pub struct Deliverer {
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    alerts: Arc<Dispatcher>,
    sealer: Arc<Sealer>,
    config: WebhookConfig,
    environment: &'static str,
    version: String,
    client: reqwest::Client,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Rung when an attempt finishes: its slot, and the next event of its
    /// project, are free now rather than at the next tick.
    finished: tokio::sync::Notify,
}

/// Resolves endpoint host names and refuses internal addresses (unless
/// allowed), so a public name cannot be pointed at an internal service.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("refused: {host} resolves only to internal addresses").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What one attempt found.
struct Answer {
    outcome: &'static str,
    status_code: Option<u16>,
    body: Option<String>,
    retry_after: Option<Duration>,
}

impl Deliverer {
    pub fn new(
        db: Arc<Database>,
        metrics: Arc<Metrics>,
        alerts: Arc<Dispatcher>,
        sealer: Arc<Sealer>,
        config: &crate::config::Config,
    ) -> Result<Deliverer, String> {
        let webhooks = config.webhooks.clone();
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(webhooks.timeout)
            .user_agent(format!("Amani-Webhooks/{}", config.app_version));
        if !webhooks.allow_private_targets {
            client = client.dns_resolver(PublicOnly);
        }
        Ok(Deliverer {
            db,
            metrics,
            alerts,
            sealer,
            environment: config.environment.as_str(),
            version: config.app_version.clone(),
            client: client.build().map_err(|e| e.to_string())?,
            config: webhooks,
            in_flight: Mutex::new(HashMap::new()),
            finished: tokio::sync::Notify::new(),
        })
    }

    /// Runs until `stop` changes: a pass every tick (or as soon as events
    /// commit in this process), a prune every hour.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut pruned = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = events::WRITTEN.notified() => {}
                () = self.finished.notified() => {}
                _ = stop.changed() => return,
            }
            if let Err(err) = Arc::clone(&self).pass().await {
                tracing::warn!(error = %err, "webhook delivery pass failed");
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                match prune(&self.db, &self.config, OffsetDateTime::now_utc()).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "old events pruned"),
                    Err(err) => tracing::warn!(error = %err, "pruning old events failed"),
                }
            }
        }
    }

    /// One pass: fan out new events, then claim and start the deliveries
    /// that are due. Attempts run in their own tasks; the pass does not wait
    /// for them. Returns how many attempts it started.
    pub async fn pass(self: Arc<Self>) -> Result<usize, OperationError> {
        self.fan_out().await?;
        let now = OffsetDateTime::now_utc();
        let stamp = timestamp::format(now);
        let lease =
            time::Duration::try_from(self.config.timeout + Duration::from_secs(30)).unwrap_or(time::Duration::MINUTE);
        let lease_until = timestamp::format(now + lease);
        let mut claimed = Vec::new();
        {
            let mut conn = self.db.acquire().await?;
            for endpoint_id in deliveries::endpoints_due(&mut conn, &stamp).await? {
                let free = PER_ENDPOINT.saturating_sub(self.in_flight_to(&endpoint_id));
                if free == 0 {
                    continue;
                }
                let due = deliveries::due_for(&mut conn, &endpoint_id, &stamp, free as i64).await?;
                for event_id in due {
                    if deliveries::claim(&mut conn, &event_id, &endpoint_id, &stamp, &lease_until).await?
                        && let Some(outgoing) = deliveries::outgoing(&mut conn, &event_id, &endpoint_id).await?
                    {
                        self.track(&endpoint_id, 1);
                        claimed.push(outgoing);
                    }
                }
            }
        }
        let started = claimed.len();
        for outgoing in claimed {
            let worker = Arc::clone(&self);
            tokio::spawn(async move {
                let endpoint_id = outgoing.endpoint_id.clone();
                if let Err(err) = worker.attempt(outgoing).await {
                    tracing::warn!(error = %err, endpoint_id, "webhook attempt could not be recorded");
                }
                worker.track(&endpoint_id, -1);
                worker.finished.notify_one();
            });
        }
        Ok(started)
    }

    /// Creates the deliveries of events not yet fanned out.
    async fn fan_out(&self) -> Result<(), OperationError> {
        loop {
            let mut tx = self.db.begin().await?;
            let done = deliveries::dispatch(&mut tx, self.db.engine(), &timestamp::now(), DISPATCH_BATCH).await?;
            tx.commit().await?;
            if (done as i64) < DISPATCH_BATCH {
                return Ok(());
            }
        }
    }

    fn in_flight_to(&self, endpoint_id: &str) -> usize {
        self.in_flight
            .lock()
            .map(|m| m.get(endpoint_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn track(&self, endpoint_id: &str, change: isize) {
        if let Ok(mut map) = self.in_flight.lock() {
            let count = map.entry(endpoint_id.to_owned()).or_insert(0);
            *count = count.saturating_add_signed(change);
            if *count == 0 {
                map.remove(endpoint_id);
            }
        }
    }

    /// Sends one delivery and records what happened.
    async fn attempt(&self, outgoing: Outgoing) -> Result<(), OperationError> {
        let event = {
            let mut conn = self.db.acquire().await?;
            events::find(&mut conn, &outgoing.event_id).await?
        };
        let Some(event) = event else {
            return Ok(()); // pruned meanwhile
        };
        let span = tracing::info_span!(
            "webhook.deliver",
            otel.name = "webhook.deliver",
            otel.kind = "client",
            event_id = %event.id,
            event_type = %event.event_type,
            endpoint_id = %outgoing.endpoint_id,
            attempt = outgoing.attempts + 1,
            http.response.status_code = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if let Some(traceparent) = &event.traceparent {
            crate::telemetry::traces::link_to(&span, traceparent);
        }
        let body = serde_json::to_vec(&EventView::from(event))
            .map_err(|e| OperationError::Internal(format!("rendering an event failed: {e}")))?;
        let attempted_at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let answer = self.send(&outgoing, &body, attempted_at).instrument(span.clone()).await;
        let latency = started.elapsed();
        span.record("outcome", answer.outcome);
        if let Some(code) = answer.status_code {
            span.record("http.response.status_code", code);
        }
        self.metrics
            .webhook_attempts
            .get_or_create(&OutcomeLabels {
                outcome: answer.outcome,
            })
            .inc();
        self.metrics
            .webhook_attempt_duration
            .observe(&(), latency.as_secs_f64());
        let next = (answer.outcome != "delivered")
            .then(|| self.next_attempt(outgoing.attempts + 1, answer.retry_after))
            .flatten()
            .map(|wait| timestamp::format(attempted_at + wait));
        let attempted_at = timestamp::format(attempted_at);
        let record = AttemptRecord {
            event_id: &outgoing.event_id,
            endpoint_id: &outgoing.endpoint_id,
            attempted_at: &attempted_at,
            outcome: answer.outcome,
            status_code: answer.status_code.map(i64::from),
            latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
            response_body: answer.body.as_deref(),
        };
        let disable_before = timestamp::format(
            OffsetDateTime::now_utc()
                - time::Duration::try_from(self.config.disable_after).unwrap_or(time::Duration::DAY),
        );
        let mut tx = self.db.begin().await?;
        deliveries::insert_attempt(&mut tx, &record).await?;
        deliveries::settle(&mut tx, &record, next.as_deref()).await?;
        let health = if answer.outcome == "delivered" {
            webhook_endpoints::record_success(&mut tx, &outgoing.endpoint_id).await?;
            None
        } else {
            webhook_endpoints::record_failure(&mut tx, &outgoing.endpoint_id, &attempted_at, &disable_before).await?
        };
        tx.commit().await?;
        let finished = match (answer.outcome, &next) {
            ("delivered", _) => Some("delivered"),
            (_, None) => Some("failed"),
            _ => None,
        };
        if let Some(outcome) = finished {
            self.metrics
                .webhook_deliveries
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
        }
        if finished == Some("failed") {
            tracing::warn!(event_id = %outgoing.event_id, endpoint_id = %outgoing.endpoint_id, "webhook delivery failed after its last retry");
        }
        if let Some((_, true)) = health {
            self.alert_disabled(&outgoing);
        }
        Ok(())
    }

    /// The wait before attempt `made + 1`, or None when the schedule is
    /// used up.
    fn next_attempt(&self, made: i64, retry_after: Option<Duration>) -> Option<time::Duration> {
        let index = usize::try_from(made - 1).ok()?;
        let planned = *self.config.retry_schedule.get(index)?;
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let wait = planned.mul_f64(jitter).max(retry_after.unwrap_or_default());
        time::Duration::try_from(wait.min(MAX_RETRY_AFTER.max(planned))).ok()
    }

    async fn send(&self, outgoing: &Outgoing, body: &[u8], at: OffsetDateTime) -> Answer {
        let refused = |reason: String| Answer {
            outcome: "refused",
            status_code: None,
            body: Some(reason),
            retry_after: None,
        };
        let url = match url::Url::parse(&outgoing.url) {
            Ok(url) => url,
            Err(err) => return refused(format!("invalid url: {err}")),
        };
        if !self.config.allow_private_targets {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(is_internal) {
                return refused("refused: the endpoint is an internal address".into());
            }
        }
        let signature = match self.signatures(outgoing, body, at) {
            Ok(signature) => signature,
            Err(err) => return refused(err),
        };
        let mut headers = http::HeaderMap::new();
        crate::telemetry::traces::inject_trace(&mut headers);
        let request = self
            .client
            .post(url)
            .headers(headers)
            .header("content-type", "application/json")
            .header("webhook-id", &outgoing.event_id)
            .header("webhook-timestamp", at.unix_timestamp().to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec());
        match request.send().await {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers(), at);
                let mut kept = Vec::new();
                while kept.len() < KEPT_BODY {
                    match response.chunk().await {
                        Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                kept.truncate(KEPT_BODY);
                Answer {
                    outcome: if status.is_success() { "delivered" } else { "http_error" },
                    status_code: Some(status.as_u16()),
                    body: Some(String::from_utf8_lossy(&kept).into_owned()),
                    retry_after: matches!(status.as_u16(), 429 | 503).then_some(retry_after).flatten(),
                }
            }
            Err(err) => {
                let text = error_chain(&err);
                let outcome = if err.is_timeout() {
                    "timeout"
                } else if text.contains("refused: ") {
                    "refused"
                } else {
                    "connection_error"
                };
                Answer {
                    outcome,
                    status_code: None,
                    body: Some(text.chars().take(KEPT_BODY).collect()),
                    retry_after: None,
                }
            }
        }
    }

    /// `webhook-signature`: the current secret's, and the previous one's
    /// while a rotation overlaps.
    fn signatures(&self, outgoing: &Outgoing, body: &[u8], at: OffsetDateTime) -> Result<String, String> {
        let open = |sealed: &str| -> Result<Vec<u8>, String> {
            let secret = self.sealer.open(sealed).map_err(|e| e.to_string())?;
            secret_key(&String::from_utf8_lossy(&secret)).ok_or_else(|| "a stored secret is not whsec_…".to_owned())
        };
        let timestamp = at.unix_timestamp();
        let mut signatures = vec![sign(
            &open(&outgoing.secret_sealed)?,
            &outgoing.event_id,
            timestamp,
            body,
        )];
        if let (Some(previous), Some(until)) = (&outgoing.previous_sealed, &outgoing.previous_expires_at)
            && until.as_str() > timestamp::format(at).as_str()
        {
            signatures.push(sign(&open(previous)?, &outgoing.event_id, timestamp, body));
        }
        Ok(signatures.join(" "))
    }

    fn alert_disabled(&self, outgoing: &Outgoing) {
        tracing::error!(endpoint_id = %outgoing.endpoint_id, "webhook endpoint disabled after failing too long");
        self.alerts.send(
            Alert::trigger(
                self.environment,
                &format!("webhook_endpoint_disabled:{}", outgoing.endpoint_id),
                "WebhookEndpointDisabled",
                Severity::Error,
                format!(
                    "webhook endpoint {} ({}) was disabled: every attempt failed for {} s",
                    outgoing.endpoint_id,
                    outgoing.url,
                    self.config.disable_after.as_secs()
                ),
            )
            .detail("runbook", "docs/runbooks/webhooks.md#an-endpoint-was-disabled")
            .detail("version", &self.version),
        );
    }
}

/// Deletes events, deliveries and attempts older than `EVENT_RETENTION_DAYS`
/// before `now`. Returns how many events were deleted.
pub async fn prune(db: &Database, config: &WebhookConfig, now: OffsetDateTime) -> Result<u64, OperationError> {
    let cutoff = timestamp::format(now - time::Duration::try_from(config.retention).unwrap_or(time::Duration::DAY));
    let mut total = 0;
    loop {
        let mut tx = db.begin().await?;
        let deleted = deliveries::prune(&mut tx, &cutoff, PRUNE_BATCH).await?;
        tx.commit().await?;
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &http::HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Duration::try_from(at - now).ok()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    /// A name that resolves only to internal addresses is refused at
    /// connection time (the check behind a public-looking URL).
    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = PublicOnly.resolve(name).await.err().expect("refused");
        assert!(refused.to_string().starts_with("refused: localhost"), "{refused}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            http::header::RETRY_AFTER,
            "Tue, 14 Nov 2023 22:13:27 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }
}
