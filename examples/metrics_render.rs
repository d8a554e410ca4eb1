//! Times rendering `/metrics` with a given number of series (default
//! 10,000): `cargo run --release --example metrics_render [SERIES]`.
//! Prints the median and worst of 50 renders, in both formats.

#![allow(clippy::expect_used)] // a measurement tool: a bad start is a crash

use std::time::{Duration, Instant};

use amani::build_info::BuildInfo;
use amani::config::Config;
use amani::telemetry::metrics::{Metrics, RequestLabels, RouteLabels};

fn main() {
    let series: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let config = Config::from_vars(Vec::new()).expect("default configuration");
    let metrics = Metrics::new(&config, &BuildInfo::current());
    // Each route contributes one counter series and one latency histogram
    // (15 buckets + sum + count = 17 series); fill up to `series`.
    let mut created = 0;
    let mut route = 0;
    while created < series {
        let endpoint = format!("/api/v1/route{route}/{{id}}");
        for status in [200u16, 404, 500] {
            metrics
                .http_requests
                .get_or_create(&RequestLabels {
                    method: "GET",
                    endpoint: endpoint.clone(),
                    status,
                })
                .inc();
            created += 1;
        }
        metrics
            .http_request_duration
            .get_or_create(&RouteLabels {
                method: "GET",
                endpoint,
            })
            .observe(0.012, None, None);
        created += 17;
        route += 1;
    }
    for (name, render) in [
        (
            "openmetrics",
            Box::new(|| metrics.render_openmetrics()) as Box<dyn Fn() -> String>,
        ),
        ("text 0.0.4", Box::new(|| metrics.render_text())),
    ] {
        let mut times: Vec<Duration> = (0..50)
            .map(|_| {
                let started = Instant::now();
                let body = render();
                std::hint::black_box(body);
                started.elapsed()
            })
            .collect();
        times.sort();
        let bytes = render().len();
        println!(
            "{name:12} {created} series, {bytes} bytes: median {:.2} ms, worst {:.2} ms",
            times[25].as_secs_f64() * 1000.0,
            times[49].as_secs_f64() * 1000.0
        );
    }
}
