//! The last hour of this process's own metrics, in memory, for the operator
//! console's charts on the embedded default (no Prometheus).
//!
//! Every interval a sampler renders the registry exactly as `/metrics` would
//! and keeps, per route, the cumulative request, 5xx and latency-bucket
//! counts, and the alert deliveries by channel and outcome. Rates, error
//! ratios and latency quantiles are then computed from the differences
//! between samples, the way Prometheus's `rate()` and
//! `histogram_quantile()` do — so the console and a real Prometheus tell
//! the same story. The newest full exposition is kept too, for the gauges.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How far back the charts reach.
pub const SPAN: Duration = Duration::from_secs(3600);

/// One series of the exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses the OpenMetrics / Prometheus text exposition (comments, and
/// exemplars after ` # `, are skipped).
pub fn parse_exposition(text: &str) -> Vec<Series> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Series> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let split = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(split);
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // Before a label name: skip separators; `}` ends the set.
            let (start, c) = *chars.peek()?;
            if c == '}' {
                rest = &body[start + 1..];
                break;
            }
            if c == ',' || c == ' ' {
                chars.next();
                continue;
            }
            let eq = start + body[start..].find("=\"")?;
            let key = body[start..eq].to_owned();
            while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                chars.next();
            }
            let mut value = String::new();
            let mut escaped = false;
            loop {
                let (_, c) = chars.next()?;
                match (escaped, c) {
                    (true, 'n') => value.push('\n'),
                    (true, c) => value.push(c),
                    (false, '\\') => {
                        escaped = true;
                        continue;
                    }
                    (false, '"') => break,
                    (false, c) => value.push(c),
                }
                escaped = false;
            }
            labels.push((key, value));
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// One route's cumulative counts at a sample.
#[derive(Debug, Clone, Default)]
struct RouteCounts {
    requests: f64,
    errors: f64,
    /// Cumulative bucket counts, in the order of `Inner::bounds` (shared by
    /// every route: one histogram constructor).
    buckets: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Unix time, seconds.
    at: f64,
    /// Keyed `METHOD /route/template`.
    routes: BTreeMap<String, RouteCounts>,
    /// Alert deliveries, keyed (channel, outcome).
    alerts: BTreeMap<(String, String), f64>,
}

/// The last `capacity` samples and the newest full exposition.
pub struct History {
    interval: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    samples: VecDeque<Sample>,
    /// The latency buckets' upper bounds (seconds), `+Inf` last.
    bounds: Vec<f64>,
    latest: Vec<Series>,
}

/// One route over the window: a point per interval (`None`: no requests then).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteHistory {
    pub route: String,
    pub requests: f64,
    pub rate: Vec<f64>,
    pub error_ratio: Vec<Option<f64>>,
    /// p50, p95, p99 in seconds.
    pub latency: Vec<Option<[f64; 3]>>,
}

/// What the charts draw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Unix time of each point.
    pub times: Vec<f64>,
    /// The busiest routes first.
    pub routes: Vec<RouteHistory>,
    /// Alert deliveries in the window, by (channel, outcome).
    pub alerts: Vec<((String, String), f64)>,
}

const REQUESTS: &str = "http_requests_total";
const LATENCY_BUCKET: &str = "http_request_duration_seconds_bucket";
const ALERTS: &str = "alerts_sent_total";

impl History {
    /// Keeps `span` of samples taken every `interval`.
    pub fn new(interval: Duration, span: Duration) -> History {
        let per = interval.as_secs_f64().max(0.001);
        let capacity = ((span.as_secs_f64() / per).ceil() as usize).clamp(2, 100_000) + 1;
        History {
            interval,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records one exposition taken at `at` (unix seconds).
    pub fn record(&self, at: f64, exposition: &str) {
        let series = parse_exposition(exposition);
        let mut routes: BTreeMap<String, RouteCounts> = BTreeMap::new();
        let mut alerts = BTreeMap::new();
        let mut bounds: Vec<f64> = Vec::new();
        let route_key = |s: &Series| {
            format!(
                "{} {}",
                s.label("method").unwrap_or("?"),
                s.label("endpoint").unwrap_or("?")
            )
        };
        for s in &series {
            match s.name.as_str() {
                REQUESTS => {
                    let counts = routes.entry(route_key(s)).or_default();
                    counts.requests += s.value;
                    if s.label("status").is_some_and(|status| status.starts_with('5')) {
                        counts.errors += s.value;
                    }
                }
                LATENCY_BUCKET => {
                    let Some(le) = s.label("le").and_then(parse_bound) else {
                        continue;
                    };
                    let counts = routes.entry(route_key(s)).or_default();
                    let index = match bounds.iter().position(|b| *b == le) {
                        Some(index) => index,
                        None => {
                            bounds.push(le);
                            bounds.len() - 1
                        }
                    };
                    if counts.buckets.len() <= index {
                        counts.buckets.resize(index + 1, 0.0);
                    }
                    counts.buckets[index] += s.value;
                }
                ALERTS => {
                    let key = (
                        s.label("channel").unwrap_or("?").to_owned(),
                        s.label("outcome").unwrap_or("?").to_owned(),
                    );
                    *alerts.entry(key).or_default() += s.value;
                }
                _ => {}
            }
        }
        // Routes never requested (their series exist at zero) cost nothing.
        routes.retain(|_, counts| counts.requests > 0.0);
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !bounds.is_empty() {
            inner.bounds = bounds;
        }
        inner.latest = series;
        inner.samples.push_back(Sample { at, routes, alerts });
        while inner.samples.len() > self.capacity {
            inner.samples.pop_front();
        }
    }

    /// The newest exposition's series (empty before the first sample).
    pub fn latest(&self) -> Vec<Series> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.latest.clone()
    }

    /// The window's points for the `top` busiest routes.
    pub fn window(&self, top: usize) -> Window {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let samples: Vec<&Sample> = inner.samples.iter().collect();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Window::default();
        };
        let mut busiest: Vec<(&String, f64)> = last
            .routes
            .iter()
            .map(|(route, now)| {
                let before = first.routes.get(route).map_or(0.0, |c| c.requests);
                (route, increase(before, now.requests))
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        busiest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        busiest.truncate(top);
        let times = samples.windows(2).map(|pair| pair[1].at).collect();
        let empty = RouteCounts::default();
        let routes = busiest
            .into_iter()
            .map(|(route, requests)| {
                let mut history = RouteHistory {
                    route: route.clone(),
                    requests,
                    rate: Vec::new(),
                    error_ratio: Vec::new(),
                    latency: Vec::new(),
                };
                for pair in samples.windows(2) {
                    let before = pair[0].routes.get(route).unwrap_or(&empty);
                    let after = pair[1].routes.get(route).unwrap_or(&empty);
                    let seconds = (pair[1].at - pair[0].at).max(0.001);
                    let served = increase(before.requests, after.requests);
                    history.rate.push(served / seconds);
                    history
                        .error_ratio
                        .push((served > 0.0).then(|| (increase(before.errors, after.errors) / served).min(1.0)));
                    let deltas: Vec<f64> = (0..after.buckets.len())
                        .map(|i| increase(before.buckets.get(i).copied().unwrap_or(0.0), after.buckets[i]))
                        .collect();
                    history
                        .latency
                        .push(quantile(0.5, &inner.bounds, &deltas).and_then(|p50| {
                            Some([
                                p50,
                                quantile(0.95, &inner.bounds, &deltas)?,
                                quantile(0.99, &inner.bounds, &deltas)?,
                            ])
                        }));
                }
                history
            })
            .collect();
        let alerts = last
            .alerts
            .iter()
            .map(|(key, now)| {
                (
                    key.clone(),
                    increase(first.alerts.get(key).copied().unwrap_or(0.0), *now),
                )
            })
            .collect();
        Window { times, routes, alerts }
    }
}

fn parse_bound(le: &str) -> Option<f64> {
    if le == "+Inf" {
        Some(f64::INFINITY)
    } else {
        le.parse().ok()
    }
}

/// A counter's increase between two samples; a restart (the value fell)
/// counts from zero, as Prometheus does.
fn increase(before: f64, after: f64) -> f64 {
    if after >= before { after - before } else { after }
}

/// The `q` quantile of observations counted into cumulative buckets with
/// these upper bounds, interpolated linearly inside the bucket (as
/// `histogram_quantile`); `None` with no observations. In the `+Inf`
/// bucket, the highest finite bound.
pub fn quantile(q: f64, bounds: &[f64], cumulative: &[f64]) -> Option<f64> {
    let total = *cumulative.last()?;
    if total <= 0.0 || bounds.len() != cumulative.len() {
        return None;
    }
    let rank = q * total;
    let index = cumulative.iter().position(|c| *c >= rank)?;
    let upper = bounds[index];
    let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
    if upper.is_infinite() {
        return Some(lower);
    }
    let below = if index == 0 { 0.0 } else { cumulative[index - 1] };
    let inside = cumulative[index] - below;
    if inside <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / inside)
}

/// Samples `render` every interval into `history` until `stop` changes.
pub async fn run_sampler(
    history: std::sync::Arc<History>,
    render: impl Fn() -> String + Send,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(history.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now = time::OffsetDateTime::now_utc();
        let at = now.unix_timestamp() as f64 + f64::from(now.nanosecond()) / 1e9;
        history.record(at, &render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(get: f64, errors: f64, fast: f64, slow: f64) -> String {
        format!(
            "# HELP http_requests Requests.\n\
             # TYPE http_requests counter\n\
             http_requests_total{{method=\"GET\",endpoint=\"/a\",status=\"200\"}} {ok}\n\
             http_requests_total{{method=\"GET\",endpoint=\"/a\",status=\"503\"}} {errors}\n\
             http_request_duration_seconds_bucket{{method=\"GET\",endpoint=\"/a\",le=\"0.01\"}} {fast} # {{trace_id=\"ab\"}} 0.002 1.0\n\
             http_request_duration_seconds_bucket{{method=\"GET\",endpoint=\"/a\",le=\"0.1\"}} {all}\n\
             http_request_duration_seconds_bucket{{method=\"GET\",endpoint=\"/a\",le=\"+Inf\"}} {all}\n\
             alerts_sent_total{{channel=\"slack\",outcome=\"succeeded\"}} 2\n\
             amani_escrow_held_minor_units{{currency=\"NGN\"}} 1500\n",
            ok = get - errors,
            all = fast + slow,
        )
    }

    #[test]
    fn the_exposition_is_parsed_with_escapes_and_exemplars() {
        let series = parse_exposition(
            "# TYPE x counter\nx_total{a=\"q\\\"uote\",b=\"back\\\\slash\\nline\"} 3 # {trace_id=\"1\"} 1\nup 1\nbad{a=1} 2\n",
        );
        assert_eq!(series.len(), 2, "{series:?}");
        assert_eq!(series[0].label("a"), Some("q\"uote"));
        assert_eq!(series[0].label("b"), Some("back\\slash\nline"));
        assert_eq!(series[0].value, 3.0);
        assert_eq!((series[1].name.as_str(), series[1].value), ("up", 1.0));
    }

    #[test]
    fn rates_error_ratios_and_quantiles_come_from_differences_between_samples() {
        let history = History::new(Duration::from_secs(10), Duration::from_secs(3600));
        history.record(1000.0, &exposition(100.0, 0.0, 100.0, 0.0));
        // 10 s later: 50 more requests, 5 of them 503s; 40 fast, 10 slow.
        history.record(1010.0, &exposition(150.0, 5.0, 140.0, 10.0));
        let window = history.window(5);
        assert_eq!(window.times, vec![1010.0]);
        let route = &window.routes[0];
        assert_eq!(route.route, "GET /a");
        assert_eq!(route.requests, 50.0);
        assert_eq!(route.rate, vec![5.0]);
        assert_eq!(route.error_ratio, vec![Some(0.1)]);
        let [p50, p95, p99] = route.latency[0].unwrap();
        // 40 of 50 under 10 ms: the median is inside the first bucket.
        assert!((p50 - 0.00625).abs() < 1e-9, "{p50}");
        assert!(p95 > 0.01 && p95 < 0.1 && p99 > p95, "{p95} {p99}");
        assert_eq!(window.alerts, vec![(("slack".into(), "succeeded".into()), 0.0)]);
        assert!(
            history
                .latest()
                .iter()
                .any(|s| s.name == "amani_escrow_held_minor_units" && s.value == 1500.0)
        );
    }

    #[test]
    fn a_restart_counts_from_zero_and_old_samples_fall_out() {
        let history = History::new(Duration::from_secs(10), Duration::from_secs(20));
        for (i, total) in [10.0, 20.0, 30.0, 40.0, 5.0].into_iter().enumerate() {
            history.record(i as f64 * 10.0, &exposition(total, 0.0, total, 0.0));
        }
        let window = history.window(5);
        // Three samples kept (20 s of 10 s intervals): 30, 40, then 5 after
        // a restart.
        assert_eq!(window.times, vec![30.0, 40.0]);
        assert_eq!(window.routes[0].rate, vec![1.0, 0.5]);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let bounds = [0.1, 1.0, f64::INFINITY];
        assert_eq!(quantile(0.5, &bounds, &[0.0, 0.0, 0.0]), None);
        assert_eq!(quantile(0.5, &bounds, &[10.0, 10.0, 10.0]), Some(0.05));
        assert_eq!(quantile(0.99, &bounds, &[0.0, 0.0, 4.0]), Some(1.0));
    }
}
