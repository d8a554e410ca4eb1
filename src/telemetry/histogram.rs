//! Histogram families whose lines are written from text prepared once.
//!
//! prometheus-client writes every line of every histogram from its parts on
//! every scrape: the name and suffix, each label key and value (checked for
//! characters to escape), the bucket's bound through a float formatter —
//! a dozen small writes a line, on 12 to 15 lines a series. The histograms
//! without exemplars (database statements and transactions, gateway calls,
//! webhook attempts) are three fifths of a scrape's lines, so they live
//! here instead: a series prepares each line's text up to its value when it
//! is created, and a scrape writes that text and one number a line. The
//! output is what prometheus-client writes for the same histogram,
//! OpenMetrics text, byte for byte (a test compares them); the scrape
//! appends these families after the registry's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::{Mutex, RwLock};

/// A histogram's labels as `(key, value)` pairs, in the order they are
/// written.
pub trait HistogramLabels: Clone + Eq + Hash {
    fn pairs(&self) -> Vec<(&'static str, &str)>;
}

/// The one series of a histogram without labels.
impl HistogramLabels for () {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
}

/// A histogram family: one series per label set, all with the same bucket
/// bounds (in seconds).
pub struct HistogramFamily<L> {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    series: RwLock<HashMap<L, Series>>,
}

struct Series {
    /// `name_sum{labels} `, `name_count{labels} ` and, a bound at a time
    /// and then `+Inf`, `name_bucket{le="bound",labels} `.
    sum_line: String,
    count_line: String,
    bucket_lines: Vec<String>,
    observed: Mutex<Observed>,
}

struct Observed {
    sum: f64,
    /// Observations a bucket (not cumulative), the last one `+Inf`'s.
    buckets: Vec<u64>,
}

impl<L: HistogramLabels> HistogramFamily<L> {
    /// `help` without its final full stop (added when written, as
    /// prometheus-client's registry does).
    pub fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> HistogramFamily<L> {
        HistogramFamily {
            name,
            help,
            bounds,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Counts `value` into the series of `labels`, creating it first.
    pub fn observe(&self, labels: &L, value: f64) {
        if let Ok(series) = self.series.read()
            && let Some(series) = series.get(labels)
        {
            series.observe(self.bounds, value);
            return;
        }
        if let Ok(mut series) = self.series.write() {
            series
                .entry(labels.clone())
                .or_insert_with(|| Series::new(self.name, self.bounds, labels))
                .observe(self.bounds, value);
        }
    }

    /// Creates the series of `labels` at zero (a known series is visible
    /// before its first observation).
    pub fn create(&self, labels: &L) {
        if let Ok(mut series) = self.series.write() {
            series
                .entry(labels.clone())
                .or_insert_with(|| Series::new(self.name, self.bounds, labels));
        }
    }

    /// Appends the family in OpenMetrics text; nothing while it has no
    /// series.
    pub fn render(&self, out: &mut String) {
        let Ok(series) = self.series.read() else {
            return;
        };
        if series.is_empty() {
            return;
        }
        out.push_str("# HELP ");
        out.push_str(self.name);
        out.push(' ');
        out.push_str(self.help);
        out.push_str(".\n# TYPE ");
        out.push_str(self.name);
        out.push_str(" histogram\n");
        for series in series.values() {
            let (sum, buckets) = match series.observed.lock() {
                Ok(observed) => (observed.sum, observed.buckets.clone()),
                Err(_) => continue,
            };
            let count: u64 = buckets.iter().sum();
            out.push_str(&series.sum_line);
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{sum:?}");
            out.push_str(&series.count_line);
            let _ = writeln!(out, "{count}");
            let mut cumulative = 0;
            for (line, n) in series.bucket_lines.iter().zip(buckets) {
                cumulative += n;
                out.push_str(line);
                let _ = writeln!(out, "{cumulative}");
            }
        }
    }
}

impl Series {
    fn new<L: HistogramLabels>(name: &str, bounds: &[f64], labels: &L) -> Series {
        let mut pairs = String::new();
        for (key, value) in labels.pairs() {
            if !pairs.is_empty() {
                pairs.push(',');
            }
            pairs.push_str(key);
            pairs.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => pairs.push_str("\\\\"),
                    '"' => pairs.push_str("\\\""),
                    '\n' => pairs.push_str("\\n"),
                    c => pairs.push(c),
                }
            }
            pairs.push('"');
        }
        let braced = if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{pairs}}}")
        };
        let bucket = |le: &str| {
            let comma = if pairs.is_empty() { "" } else { "," };
            format!("{name}_bucket{{le=\"{le}\"{comma}{pairs}}} ")
        };
        let mut bucket_lines: Vec<String> = bounds.iter().map(|bound| bucket(&format!("{bound:?}"))).collect();
        bucket_lines.push(bucket("+Inf"));
        Series {
            sum_line: format!("{name}_sum{braced} "),
            count_line: format!("{name}_count{braced} "),
            observed: Mutex::new(Observed {
                sum: 0.0,
                buckets: vec![0; bucket_lines.len()],
            }),
            bucket_lines,
        }
    }

    fn observe(&self, bounds: &[f64], value: f64) {
        // The first bucket whose bound is at least the value (`le`), else +Inf.
        let bucket = bounds.iter().position(|bound| value <= *bound).unwrap_or(bounds.len());
        if let Ok(mut observed) = self.observed.lock() {
            observed.sum += value;
            observed.buckets[bucket] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        provider: &'static str,
        operation: &'static str,
    }

    impl HistogramLabels for Labels {
        fn pairs(&self) -> Vec<(&'static str, &str)> {
            vec![("provider", self.provider), ("operation", self.operation)]
        }
    }

    const BOUNDS: [f64; 5] = [0.0005, 0.01, 0.25, 1.0, 30.0];

    /// What prometheus-client writes for the same observations.
    fn prometheus_client_text<L: EncodeLabelSet + Clone + Eq + Hash + std::fmt::Debug + Send + Sync + 'static>(
        observations: &[(L, f64)],
    ) -> String {
        let family: Family<L, Histogram, fn() -> Histogram> = Family::new_with_constructor(|| Histogram::new(BOUNDS));
        for (labels, value) in observations {
            family.get_or_create(labels).observe(*value);
        }
        let mut registry = Registry::default();
        registry.register("amani_test_seconds", "A test histogram", family);
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_family_is_written_as_prometheus_client_writes_it() {
        let observations = [
            (
                Labels {
                    provider: "sandbox",
                    operation: "payout",
                },
                0.0004,
            ),
            (
                Labels {
                    provider: "sandbox",
                    operation: "payout",
                },
                0.0005,
            ),
            (
                Labels {
                    provider: "sandbox",
                    operation: "payout",
                },
                0.2,
            ),
            (
                Labels {
                    provider: "sandbox",
                    operation: "payout",
                },
                45.0,
            ),
        ];
        let ours = HistogramFamily::new("amani_test_seconds", "A test histogram", &BOUNDS);
        for (labels, value) in &observations {
            ours.observe(labels, *value);
        }
        let mut text = String::new();
        ours.render(&mut text);
        assert_eq!(text, prometheus_client_text(&observations));
        assert!(
            text.contains("amani_test_seconds_bucket{le=\"0.0005\",provider=\"sandbox\",operation=\"payout\"} 2\n")
        );
        assert!(text.contains("amani_test_seconds_count{provider=\"sandbox\",operation=\"payout\"} 4\n"));
    }

    #[test]
    fn a_series_without_labels_and_one_created_at_zero_match_too() {
        let ours: HistogramFamily<()> = HistogramFamily::new("amani_test_seconds", "A test histogram", &BOUNDS);
        ours.observe(&(), 0.3);
        ours.observe(&(), 0.007);
        let mut text = String::new();
        ours.render(&mut text);
        let mut registry = Registry::default();
        let histogram = Histogram::new(BOUNDS);
        histogram.observe(0.3);
        histogram.observe(0.007);
        registry.register("amani_test_seconds", "A test histogram", histogram);
        let mut expected = String::new();
        prometheus_client::encoding::text::encode_registry(&mut expected, &registry).unwrap();
        assert_eq!(text, expected);

        let zero = HistogramFamily::new("amani_test_seconds", "A test histogram", &BOUNDS);
        let labels = Labels {
            provider: "fin\"cra\\",
            operation: "a\nb",
        };
        zero.create(&labels);
        let mut text = String::new();
        zero.render(&mut text);
        let theirs = prometheus_client_text::<Labels>(&[]);
        assert!(theirs.is_empty(), "{theirs}");
        let family: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BOUNDS));
        let _ = family.get_or_create(&labels);
        let mut registry = Registry::default();
        registry.register("amani_test_seconds", "A test histogram", family);
        let mut expected = String::new();
        prometheus_client::encoding::text::encode_registry(&mut expected, &registry).unwrap();
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_family_writes_nothing() {
        let ours: HistogramFamily<Labels> = HistogramFamily::new("amani_test_seconds", "A test histogram", &BOUNDS);
        let mut text = String::new();
        ours.render(&mut text);
        assert_eq!(text, "");
    }
}
