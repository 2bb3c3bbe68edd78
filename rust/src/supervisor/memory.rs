//! Machine and child memory from procfs (Linux), with psutil's formulas: machine usage =
//! (MemTotal - MemAvailable) / MemTotal; a child's size = resident pages x page size.

/// Percent of machine memory in use, from the text of `/proc/meminfo`.
pub fn used_percent(meminfo: &str) -> Option<f64> {
    let total = meminfo_kib(meminfo, "MemTotal:")?;
    let available = meminfo_kib(meminfo, "MemAvailable:")?;
    if total == 0 {
        return None;
    }
    Some(total.saturating_sub(available) as f64 * 100.0 / total as f64)
}

fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Resident set size in bytes, from the text of `/proc/<pid>/statm` (second field, in pages).
pub fn statm_rss_bytes(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size))
}

/// TEST ONLY: the path of a file in `/proc/meminfo`'s format that the memory guard reads instead, so the fault
/// suite can simulate memory pressure without filling the machine (`max_mem_percent` is machine-wide).
pub const MEMINFO_OVERRIDE: &str = "WAKAQ_TEST_MEMINFO";

/// The machine's memory use now, or `None` where procfs is missing or unreadable.
pub fn machine_used_percent() -> Option<f64> {
    let path = std::env::var_os(MEMINFO_OVERRIDE).unwrap_or_else(|| "/proc/meminfo".into());
    used_percent(&std::fs::read_to_string(path).ok()?)
}

/// A process's RSS in bytes, or `None` if it is gone or procfs is missing.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    statm_rss_bytes(&statm, page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\n\
                           MemAvailable:    4000000 kB\nBuffers:          100000 kB\n";

    #[test]
    fn meminfo_percent() {
        let p = used_percent(MEMINFO).expect("parsed");
        assert!((p - 75.0).abs() < 1e-9);
    }

    #[test]
    fn meminfo_missing_or_garbage() {
        assert_eq!(used_percent("MemTotal: 100 kB\n"), None);
        assert_eq!(used_percent("MemTotal: x kB\nMemAvailable: 1 kB\n"), None);
        assert_eq!(used_percent("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(used_percent(""), None);
    }

    #[test]
    fn statm_rss() {
        assert_eq!(statm_rss_bytes("1000 250 30 4 0 100 0\n", 4096), Some(250 * 4096));
        assert_eq!(statm_rss_bytes("1000\n", 4096), None);
        assert_eq!(statm_rss_bytes("", 4096), None);
    }

    #[test]
    fn live_values() {
        assert!(machine_used_percent().is_some_and(|p| (0.0..=100.0).contains(&p)));
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
