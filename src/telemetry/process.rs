//! Process metrics with the standard Prometheus names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_virtual_memory_bytes`, `process_start_time_seconds`), read from
//! `/proc/self`. On systems without `/proc` they are omitted.
//!
//! Beside them, the denominators the resource alerts need, so that "memory
//! above 90%" means 90% of what this process may really use: the cgroup
//! memory and CPU limits (the host's totals when there is no limit), and the
//! free and total bytes of the volumes the service writes to.
//!
//! A scrape reads one small file (`/proc/self/stat`: CPU time and memory,
//! which `rate()` and the memory alert want current). The rest — the open
//! descriptors (a directory listing), the limits, the volumes — changes
//! slowly and is read by [`ProcessCollector::refresh`], which the gauge
//! refresh calls every few seconds, so a scrape lists no directory.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The process collector; clones share what [`ProcessCollector::refresh`]
/// read last.
#[derive(Debug, Clone, Default)]
pub struct ProcessCollector {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// (volume label, a path on that volume) for the disk gauges.
    volumes: Vec<(String, std::path::PathBuf)>,
    slow: RwLock<SlowStats>,
}

/// What changes slowly, read every few seconds rather than per scrape.
#[derive(Debug, Default, Clone)]
struct SlowStats {
    boot_time: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    memory_limit: Option<f64>,
    cpu_limit: Option<f64>,
    disks: Vec<(String, DiskSpace)>,
}

impl ProcessCollector {
    /// Reads everything once, so the first scrape is complete.
    pub fn new(volumes: Vec<(String, std::path::PathBuf)>) -> ProcessCollector {
        let collector = ProcessCollector {
            shared: Arc::new(Shared {
                volumes,
                slow: RwLock::new(SlowStats::default()),
            }),
        };
        collector.refresh();
        collector
    }

    /// Reads the slowly changing values (descriptors, limits, volumes).
    pub fn refresh(&self) {
        let slow = SlowStats {
            boot_time: boot_time(),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64),
            max_fds: max_fds(),
            memory_limit: memory_limit_bytes(),
            cpu_limit: cpu_limit_cores(),
            disks: self
                .shared
                .volumes
                .iter()
                .filter_map(|(label, path)| disk_space(path).map(|space| (label.clone(), space)))
                .collect(),
        };
        if let Ok(mut stored) = self.shared.slow.write() {
            *stored = slow;
        }
    }
}

/// What one read of `/proc/self/stat` found (the start time needs the boot
/// time, read with the slow values).
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    pub fn read(boot_time: f64) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may contain spaces; fields after its
        // closing parenthesis are space-separated. Field 3 is index 0 here.
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        let (ticks, page) = (ticks.max(1.0), page.max(1.0));
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            start_time_seconds: boot_time + field(22)? / ticks,
        })
    }
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
}

fn max_fds() -> Option<f64> {
    std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let slow = self.shared.slow.read().map(|s| s.clone()).unwrap_or_default();
        let Some(stats) = slow.boot_time.and_then(ProcessStats::read) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(stats.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(stats.virtual_bytes),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Some(stats.start_time_seconds),
            ),
            ("process_open_fds", "Number of open file descriptors", slow.open_fds),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                slow.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let limits = [
            (
                "amani_memory_limit_bytes",
                "Memory this process may use: its cgroup limit, else the host's total",
                slow.memory_limit,
            ),
            (
                "amani_cpu_limit_cores",
                "CPU cores this process may use: its cgroup quota, else the host's count",
                slow.cpu_limit,
            ),
        ];
        for (name, help, value) in limits {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        encode_disks(&slow.disks, &mut encoder)
    }
}

fn encode_disks(disks: &[(String, DiskSpace)], encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    if disks.is_empty() {
        return Ok(());
    }
    type Pick = fn(&DiskSpace) -> f64;
    let families: [(&str, &str, Pick); 2] = [
        (
            "amani_disk_free_bytes",
            "Bytes available to this process on the volume",
            |d| d.free,
        ),
        ("amani_disk_size_bytes", "Total bytes of the volume", |d| d.size),
    ];
    for (name, help, pick) in families {
        let mut family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
        for (label, space) in disks {
            let labels = [("volume", label.as_str())];
            ConstGauge::new(pick(space)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct DiskSpace {
    free: f64,
    size: f64,
}

/// statvfs of the nearest existing ancestor of `path` (the folder may not
/// exist yet on a fresh start).
fn disk_space(path: &std::path::Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists() && !p.as_os_str().is_empty())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as f64;
    Some(DiskSpace {
        free: stat.f_bavail as f64 * block,
        size: stat.f_blocks as f64 * block,
    })
}

fn memory_limit_bytes() -> Option<f64> {
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|v| v.trim().parse::<f64>().ok())
    // cgroup v1 reports "no limit" as a huge number.
    .filter(|v| *v < 1e18);
    cgroup.or_else(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()?;
        Some(kib * 1024.0)
    })
}

fn cpu_limit_cores() -> Option<f64> {
    let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok().and_then(|v| {
        let mut parts = v.split_whitespace();
        let quota = parts.next()?.parse::<f64>().ok()?;
        let period = parts.next()?.parse::<f64>().ok()?;
        (period > 0.0).then(|| quota / period)
    });
    quota.or_else(|| std::thread::available_parallelism().ok().map(|n| n.get() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plausible_values_for_this_process() {
        let boot = boot_time().expect("/proc/stat has btime");
        let stats = ProcessStats::read(boot).expect("/proc is available on Linux");
        assert!(stats.resident_bytes > 1_000_000.0, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time_seconds <= now + 1.0 && stats.start_time_seconds > now - 3600.0);
        assert!(memory_limit_bytes().unwrap() > stats.resident_bytes);
        assert!(cpu_limit_cores().unwrap() > 0.0);
        assert!(max_fds().unwrap() >= 3.0);
        let disk = disk_space(std::path::Path::new("/definitely/missing/below/root")).unwrap();
        assert!(disk.size >= disk.free && disk.free > 0.0);
    }

    /// The descriptors are counted by `refresh`, not by the scrape: a file
    /// opened after a refresh shows at the next one.
    #[test]
    fn open_descriptors_are_counted_at_refresh() {
        let collector = ProcessCollector::new(Vec::new());
        let before = collector.shared.slow.read().unwrap().open_fds.unwrap();
        assert!(before >= 3.0);
        let files: Vec<std::fs::File> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        assert_eq!(
            collector.shared.slow.read().unwrap().open_fds,
            Some(before),
            "not per scrape"
        );
        collector.refresh();
        let after = collector.shared.slow.read().unwrap().open_fds.unwrap();
        assert!(
            after >= before + 32.0,
            "{before} → {after} (other tests open and close a few too)"
        );
        drop(files);
    }
}
