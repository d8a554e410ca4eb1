//! The operator view: health and readiness as the probes see them, the last
//! hour of request rate, error ratio and latency per route (from the
//! in-process history), money in escrow, the ledger check, the newest
//! backup, alerts, pending payments and the webhook backlog — all read from
//! the same checks and metrics `/api/v1/health` and `/metrics` serve.
//! `/console/live` answers the live part alone; the page's script swaps it
//! in every few seconds.

use axum::extract::State;
use maud::{Markup, PreEscaped, html};

use super::{Console, ConsoleError, money, page};
use crate::state::AppState;
use crate::telemetry::history::{RouteHistory, Series, Window};

/// Routes charted: the busiest of the hour.
const CHARTED_ROUTES: usize = 8;
/// Pending payments listed, oldest first.
const PENDING_SHOWN: i64 = 10;

pub async fn view(State(state): State<AppState>, console: Console) -> Result<Markup, ConsoleError> {
    let live = live_panel(&state).await;
    Ok(page(
        "Operator view",
        &console,
        html! {
            h1 { "Operator view" }
            p class="muted" {
                "Refreshed every " (state.config.console.chart_interval.as_secs()) " s while this page is open "
                "(reload if scripts are off)."
            }
            // No aria-live: a screen reader would read the whole panel at
            // every refresh.
            div id="live" data-refresh=(state.config.console.chart_interval.as_secs() * 1000) { (live) }
        },
    ))
}

/// The live panel alone (for the in-place refresh).
pub async fn live(State(state): State<AppState>, _console: Console) -> Markup {
    live_panel(&state).await
}

fn gauge<'a>(series: &'a [Series], name: &str) -> impl Iterator<Item = &'a Series> {
    let name = name.to_owned();
    series.iter().filter(move |s| s.name == name)
}

fn first_value(series: &[Series], name: &str) -> Option<f64> {
    gauge(series, name).next().map(|s| s.value)
}

/// "3 min ago", from a unix time.
fn age(unix: f64) -> String {
    if unix <= 0.0 {
        return "never".into();
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let seconds = (now - unix).max(0.0) as u64;
    let when = time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .map(crate::timestamp::format)
        .unwrap_or_default();
    let ago = match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7200 => format!("{} min ago", seconds / 60),
        7200..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    };
    format!("{ago} ({when})")
}

async fn live_panel(state: &AppState) -> Markup {
    let (healthy, report) = crate::http::service::health_report(state).await;
    let readiness =
        crate::http::service::readiness_given(state, &[&report.checks.database.check, &report.checks.migrations.check]);
    let checks = serde_json::to_value(&report.checks).unwrap_or_default();
    let latest = state.history.latest();
    let recent_alerts = state.alerts.recent();
    let pending = async {
        let mut conn = state.db.acquire().await?;
        crate::store::escrow::oldest_pending(&mut conn, PENDING_SHOWN).await
    }
    .await
    .inspect_err(|err| tracing::warn!(error = %err, "console: pending payments not read"));
    let window = state.history.window(CHARTED_ROUTES);
    let metrics_on = state.config.metrics_enabled;
    html! {
        section aria-labelledby="health-h" class="card" {
            h2 id="health-h" { "Health" }
            p {
                "Health: " strong class={ "status " (if healthy { "ok" } else { "bad" }) } id="health-status" { (format!("{:?}", report.status).to_lowercase()) }
                " · Readiness: " strong class={ "status " (if readiness.ready { "ok" } else { "bad" }) } id="readiness-status" {
                    @if readiness.ready { "ready" } @else { "not ready" }
                }
                @if let Some(reason) = &readiness.reason { " (" (reason) ")" }
                " · version " (report.version) " · " (report.environment)
            }
            @if let Some(checks) = checks.as_object() {
                ul class="checks" {
                    @for (name, check) in checks {
                        li {
                            (name) ": " (check.get("status").and_then(|s| s.as_str()).unwrap_or("?"))
                            @if let Some(message) = check.get("message").and_then(|m| m.as_str()) { " — " (message) }
                        }
                    }
                }
            }
        }
        @if !metrics_on {
            p class="notice" { "Metrics are off on this instance (METRICS_ENABLED=false): no charts or gauges." }
        } @else if latest.is_empty() {
            p class="notice" { "Collecting: the first sample comes within " (state.config.console.chart_interval.as_secs()) " s." }
        } @else {
            (money_and_checks(&latest))
            (charts(&window))
            (queues(&latest, &window))
        }
        (alerts(&recent_alerts))
        (payments(pending, state.config.payments.reconcile.stuck_after))
    }
}

fn alerts(recent: &[crate::alerts::SentAlert]) -> Markup {
    html! {
        section aria-labelledby="alerts-h" class="card" {
            h2 id="alerts-h" { "Alerts this instance sent" }
            @if recent.is_empty() { p { "None since start." } } @else {
                table id="recent-alerts" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Alert" } th scope="col" { "Severity" } th scope="col" { "Channel" } th scope="col" { "Delivery" } } }
                    tbody {
                        @for a in recent {
                            tr {
                                td { (a.at) }
                                td { (a.name) @if a.action == crate::alerts::Action::Resolve { " (resolved)" } }
                                td { (a.severity.as_str()) }
                                td { (a.channel) }
                                td { @match &a.failure {
                                    None => span class="status ok" { "delivered" },
                                    Some(why) => span class="status bad" { "failed: " (why) },
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn payments(
    pending: Result<Vec<crate::store::escrow::EscrowTransaction>, crate::store::StoreError>,
    stuck_after: std::time::Duration,
) -> Markup {
    let now = time::OffsetDateTime::now_utc();
    html! {
        section aria-labelledby="pending-h" class="card" {
            h2 id="pending-h" { "Oldest deposits and withdrawals waiting for the provider" }
            @match pending {
                Err(_) => p class="error" { "Could not read them just now (the database did not answer; see the logs)." },
                Ok(pending) if pending.is_empty() => p { "None pending." },
                Ok(pending) => table id="pending-payments" {
                    thead { tr { th scope="col" { "Since" } th scope="col" { "Kind" } th scope="col" { "Amount" } th scope="col" { "Account" } th scope="col" { "Reference" } th scope="col" { "State" } } }
                    tbody {
                        @for t in &pending {
                            @let waited = crate::timestamp::parse(&t.created_at).map(|at| now - at);
                            @let stuck = waited.is_some_and(|w| w.unsigned_abs() > stuck_after);
                            tr {
                                td { (t.created_at) }
                                td { (t.kind.as_str()) }
                                td class="num" { (money(t.amount, t.currency.code())) }
                                td { a href={ "/console/users/" (t.user_id) } { code { (t.user_id) } } }
                                td { code { (t.id) } }
                                td { @if stuck { strong class="status bad" { "stuck" } } @else { "pending" } }
                            }
                        }
                    }
                },
            }
        }
    }
}

fn money_and_checks(latest: &[Series]) -> Markup {
    let ledger_ok = first_value(latest, "amani_ledger_check_ok");
    let ledger_at = first_value(latest, "amani_ledger_check_timestamp_seconds").unwrap_or(0.0);
    let backup_at = first_value(latest, "backup_last_success_timestamp_seconds").unwrap_or(0.0);
    html! {
        section aria-labelledby="money-h" class="card" {
            h2 id="money-h" { "Money and books" }
            table id="escrow-held" {
                caption { "Held in escrow now" }
                thead { tr { th scope="col" { "Currency" } th scope="col" { "Held (minor units)" } } }
                tbody {
                    @for s in gauge(latest, "amani_escrow_held_minor_units") {
                        tr { td { (s.label("currency").unwrap_or("?")) } td class="num" { (money(s.value as i64, s.label("currency").unwrap_or(""))) } }
                    }
                }
            }
            p {
                "Ledger check: "
                @match ledger_ok {
                    Some(v) if ledger_at > 0.0 && v >= 1.0 => strong class="status ok" { "balanced" },
                    Some(_) if ledger_at > 0.0 => strong class="status bad" { "BROKEN — see the ledger runbook" },
                    _ => strong { "not run since start" },
                }
                @if ledger_at > 0.0 { ", " (age(ledger_at)) }
            }
            p { "Newest verified backup: " strong class={ "status " (if backup_at > 0.0 { "ok" } else { "bad" }) } { (age(backup_at)) } }
        }
    }
}

fn queues(latest: &[Series], window: &Window) -> Markup {
    html! {
        section aria-labelledby="queues-h" class="card" {
            h2 id="queues-h" { "Queues" }
            table {
                caption { "Deposits and withdrawals waiting for the payment provider" }
                thead { tr { th scope="col" { "Kind" } th scope="col" { "Age" } th scope="col" { "Pending" } } }
                tbody {
                    @for s in gauge(latest, "amani_payments_pending") {
                        tr { td { (s.label("kind").unwrap_or("?")) } td { (s.label("age").unwrap_or("?")) } td class="num" { (s.value) } }
                    }
                }
            }
            p { "Stuck (past PAYMENT_STUCK_AFTER_SECONDS): "
                strong { (gauge(latest, "amani_payments_stuck").map(|s| s.value).sum::<f64>()) } }
            p { "Webhook deliveries waiting: " strong { (first_value(latest, "amani_webhook_deliveries_pending").unwrap_or(0.0)) }
                "; oldest undelivered event: " (first_value(latest, "amani_webhook_oldest_undelivered_seconds").unwrap_or(0.0)) " s" }
            p { "KYC submissions awaiting review: " strong { (first_value(latest, "amani_kyc_pending").unwrap_or(0.0)) } }
            h3 { "Alerts sent in the last hour" }
            @if window.alerts.iter().all(|(_, n)| *n == 0.0) { p { "None." } } @else {
                ul {
                    @for ((channel, outcome), n) in &window.alerts {
                        @if *n > 0.0 { li { (channel) ": " (n) " " (outcome) } }
                    }
                }
            }
        }
    }
}

fn charts(window: &Window) -> Markup {
    html! {
        section aria-labelledby="traffic-h" class="card" {
            h2 id="traffic-h" { "Requests, last hour" }
            @if window.routes.is_empty() { p { "No requests yet." } } @else {
                table class="charts" id="route-charts" {
                    thead { tr {
                        th scope="col" { "Route" }
                        th scope="col" { "Requests/s" }
                        th scope="col" { "5xx ratio" }
                        th scope="col" { "Latency p50 · p95 · p99" }
                    } }
                    tbody {
                        @for route in &window.routes { (route_row(route)) }
                    }
                }
            }
        }
    }
}

fn route_row(route: &RouteHistory) -> Markup {
    let last_rate = route.rate.last().copied().unwrap_or(0.0);
    let last_errors = route.error_ratio.iter().rev().flatten().next().copied();
    let last_latency = route.latency.iter().rev().flatten().next().copied();
    let errors: Vec<Option<f64>> = route.error_ratio.clone();
    let rate: Vec<Option<f64>> = route.rate.iter().map(|r| Some(*r)).collect();
    let quantile = |i: usize| -> Vec<Option<f64>> { route.latency.iter().map(|l| l.map(|q| q[i])).collect() };
    let latency_label = match last_latency {
        Some([p50, p95, p99]) => format!("{} · {} · {} ms", ms(p50), ms(p95), ms(p99)),
        None => "–".into(),
    };
    html! {
        tr {
            th scope="row" { code { (route.route) } br; small class="muted" { (route.requests) " in the window" } }
            td { (sparkline(&[&rate], None, &format!("request rate of {}", route.route))) span class="value" { (format!("{last_rate:.2}")) } }
            td { (sparkline(&[&errors], Some(1.0), &format!("5xx ratio of {}", route.route)))
                 span class="value" { @match last_errors { Some(e) => (format!("{:.1}%", e * 100.0)), None => "–" } } }
            td { (sparkline(&[&quantile(0), &quantile(1), &quantile(2)], None, &format!("latency of {}", route.route))) span class="value" { (latency_label) } }
        }
    }
}

fn ms(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A small SVG line chart of one or more series (gaps where a point is
/// `None`), scaled to `max` or to the largest point. Numbers only: nothing
/// from a request is written into it.
fn sparkline(lines: &[&Vec<Option<f64>>], max: Option<f64>, label: &str) -> Markup {
    const W: f64 = 160.0;
    const H: f64 = 32.0;
    let points = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let top = max
        .unwrap_or_else(|| {
            lines
                .iter()
                .flat_map(|l| l.iter().flatten())
                .copied()
                .fold(0.0, f64::max)
        })
        .max(f64::MIN_POSITIVE);
    let x = |i: usize| {
        if points <= 1 {
            W
        } else {
            i as f64 * W / (points - 1) as f64
        }
    };
    let y = |v: f64| H - (v / top).clamp(0.0, 1.0) * (H - 2.0) - 1.0;
    let mut svg = String::new();
    for (n, line) in lines.iter().enumerate() {
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, svg: &mut String| {
            if !segment.is_empty() {
                svg.push_str(&format!(
                    "<polyline class=\"l{n}\" fill=\"none\" points=\"{}\"/>",
                    segment.join(" ")
                ));
                segment.clear();
            }
        };
        for (i, value) in line.iter().enumerate() {
            match value {
                Some(v) if v.is_finite() => segment.push(format!("{:.1},{:.1}", x(i), y(*v))),
                _ => flush(&mut segment, &mut svg),
            }
        }
        // A single point still shows, as a dot-long line.
        if segment.len() == 1 {
            segment.push(segment[0].clone());
        }
        flush(&mut segment, &mut svg);
    }
    html! {
        svg class="spark" viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) role="img" aria-label=(label) data-points=(points) {
            (PreEscaped(svg))
        }
    }
}
