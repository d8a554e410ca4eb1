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
//! A scrape reads what `rate()` and the memory alert want current: the CPU
//! time (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, the kernel's sum over
//! the threads, as `/proc/self/stat` would give it in ticks) and the memory
//! (`/proc/self/statm`, opened once and read again from its start: procfs
//! writes the text anew on each read from offset 0). It opens no file: an
//! open, read and close of `/proc/self/stat` was a fifth of a scrape's CPU.
//! The start time is read once. The rest — the open descriptors (a
//! directory listing), the limits, the volumes — changes slowly and is read
//! by [`ProcessCollector::refresh`], which the gauge refresh calls every
//! few seconds, so a scrape lists no directory.

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
    /// `/proc/self/statm`, kept open for the scrapes (see [`ProcessStats::read`]).
    statm: Option<std::fs::File>,
    /// Seconds since the epoch; read once.
    start_time: Option<f64>,
    slow: RwLock<SlowStats>,
}

/// What changes slowly, read every few seconds rather than per scrape.
#[derive(Debug, Default, Clone)]
struct SlowStats {
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
                statm: std::fs::File::open("/proc/self/statm").ok(),
                start_time: start_time(),
                slow: RwLock::new(SlowStats::default()),
            }),
        };
        collector.refresh();
        collector
    }

    /// Reads the slowly changing values (descriptors, limits, volumes).
    pub fn refresh(&self) {
        let slow = SlowStats {
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

/// What a scrape reads: CPU time and memory.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
}

impl ProcessStats {
    /// From `statm` (`/proc/self/statm`, open): read at offset 0, so one
    /// open file serves every scrape; two reading at once each get the
    /// whole text.
    pub fn read(statm: &std::fs::File) -> Option<ProcessStats> {
        use std::os::unix::fs::FileExt;
        // Seven numbers of at most 20 digits.
        let mut buf = [0u8; 256];
        let n = statm.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        // Total program size, then resident set size, in pages.
        let mut pages = text.split_ascii_whitespace().map(|v| v.parse::<f64>().ok());
        let (size, resident) = (pages.next()??, pages.next()??);
        let mut cpu = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the struct we own.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut cpu) } != 0 {
            return None;
        }
        let page = page_size();
        Some(ProcessStats {
            cpu_seconds: cpu.tv_sec as f64 + cpu.tv_nsec as f64 / 1e9,
            virtual_bytes: size * page,
            resident_bytes: resident * page,
        })
    }
}

fn page_size() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64).max(1.0)
}

/// The process's start, in seconds since the epoch: the boot time plus
/// field 22 of `/proc/self/stat` (clock ticks after boot).
fn start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after its
    // closing parenthesis are space-separated. Field 3 is index 0 here.
    let started = stat.rsplit_once(')')?.1.split_whitespace().nth(22 - 3)?;
    let started = started.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64).max(1.0);
    Some(boot_time()? + started / ticks)
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
        let Some(stats) = self.shared.statm.as_ref().and_then(ProcessStats::read) else {
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
                self.shared.start_time,
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
        let statm = std::fs::File::open("/proc/self/statm").unwrap();
        let stats = ProcessStats::read(&statm).expect("/proc is available on Linux");
        assert!(stats.resident_bytes > 1_000_000.0, "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = start_time().unwrap();
        assert!(started <= now + 1.0 && started > now - 3600.0, "{started} vs {now}");
        assert!(memory_limit_bytes().unwrap() > stats.resident_bytes);
        assert!(cpu_limit_cores().unwrap() > 0.0);
        assert!(max_fds().unwrap() >= 3.0);
        let disk = disk_space(std::path::Path::new("/definitely/missing/below/root")).unwrap();
        assert!(disk.size >= disk.free && disk.free > 0.0);
    }

    /// The open `statm` is read anew each time: memory touched after the
    /// first read shows in the second.
    #[test]
    fn each_read_of_the_open_file_is_current() {
        let statm = std::fs::File::open("/proc/self/statm").unwrap();
        let before = ProcessStats::read(&statm).unwrap();
        // Written byte by byte, so its pages are resident.
        let touched = std::hint::black_box(vec![7u8; 64 << 20]);
        let after = ProcessStats::read(&statm).unwrap();
        assert!(
            after.resident_bytes >= before.resident_bytes + f64::from(32u32 << 20),
            "{before:?} → {after:?}"
        );
        drop(touched);
    }

    /// The CPU time is the whole process's (every thread's, as in
    /// `/proc/self/stat`), not the reading thread's.
    #[test]
    fn cpu_time_counts_every_thread() {
        let statm = std::fs::File::open("/proc/self/statm").unwrap();
        let before = ProcessStats::read(&statm).unwrap().cpu_seconds;
        // Another thread works until its own clock reads 0.1 s of CPU.
        let spent = std::thread::spawn(|| {
            let own = || {
                let mut cpu = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                assert_eq!(
                    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut cpu) },
                    0
                );
                cpu.tv_sec as f64 + cpu.tv_nsec as f64 / 1e9
            };
            let mut x = 0u64;
            while own() < 0.1 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            own()
        })
        .join()
        .unwrap();
        let after = ProcessStats::read(&statm).unwrap().cpu_seconds;
        assert!(
            after - before >= spent,
            "{before} → {after}, the other thread alone {spent}"
        );
        // Beside /proc/self/stat's utime + stime (in clock ticks).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<f64> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let from_stat = (fields[14 - 3] + fields[15 - 3]) / ticks;
        let now = ProcessStats::read(&statm).unwrap().cpu_seconds;
        assert!(
            (now - from_stat).abs() < 0.1,
            "clock {now} s, /proc/self/stat {from_stat} s"
        );
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
