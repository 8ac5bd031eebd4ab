//! How much memory this process may still use: the system's available memory, lowered by the
//! memory cgroup's limit when there is one (cgroup v1 `memory.limit_in_bytes`, which counts the
//! page cache, or v2 `memory.max`), minus what the cgroup already uses. On macOS, which has
//! no memory cgroup, the host's own count (`host_statistics64`, see [`macos`]).

#[cfg(target_os = "macos")]
pub(crate) mod macos;

use super::budget::human_bytes;

/// Available bytes, and where the number came from (for the log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub bytes: u64,
    pub source: String,
}

/// The memory this process can still fill.
pub fn available() -> Available {
    let mut best = system_available();
    if let Some((limit, usage, what)) = cgroup_limit() {
        let free = limit.saturating_sub(usage);
        if free < best.bytes {
            best = Available {
                bytes: free,
                source: format!(
                    "{what} limit {} − usage {}",
                    human_bytes(limit),
                    human_bytes(usage)
                ),
            };
        }
    }
    best
}

#[cfg(target_os = "macos")]
fn system_available() -> Available {
    match macos::available_memory() {
        Some(bytes) => Available {
            bytes,
            source: "free + inactive + purgeable pages (host_statistics64)".into(),
        },
        None => sysinfo_available(),
    }
}

#[cfg(not(target_os = "macos"))]
fn system_available() -> Available {
    sysinfo_available()
}

/// Linux: `MemAvailable` of /proc/meminfo; elsewhere what `sysinfo` reports.
fn sysinfo_available() -> Available {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    Available {
        bytes: sys.available_memory(),
        source: "system available memory".into(),
    }
}

/// (limit, usage, description) of the tightest memory cgroup on the way up from ours.
#[cfg(target_os = "linux")]
fn cgroup_limit() -> Option<(u64, u64, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    parse_cgroups(&text)
        .into_iter()
        .filter_map(|(v2, path)| {
            let (root, limit_file, usage_file) = if v2 {
                ("/sys/fs/cgroup", "memory.max", "memory.current")
            } else {
                (
                    "/sys/fs/cgroup/memory",
                    "memory.limit_in_bytes",
                    "memory.usage_in_bytes",
                )
            };
            // Walk up: a parent's limit binds too.
            let mut best: Option<(u64, u64, String)> = None;
            let mut p = std::path::PathBuf::from(format!("{root}{path}"));
            loop {
                let limit = read_u64(&p.join(limit_file));
                let usage = read_u64(&p.join(usage_file));
                if let (Some(l), Some(u)) = (limit, usage) {
                    // v1 reports "no limit" as a huge number.
                    if l < (1u64 << 60) && best.as_ref().map_or(true, |b| l - u.min(l) < b.0 - b.1)
                    {
                        let what =
                            format!("cgroup {} {}", if v2 { "v2" } else { "v1" }, p.display());
                        best = Some((l, u.min(l), what));
                    }
                }
                if p.as_os_str().len() <= root.len() || !p.pop() {
                    break;
                }
            }
            best
        })
        .min_by_key(|(l, u, _)| l - u)
}

/// No memory cgroups outside Linux (macOS has none; a per-process jetsam limit is an iOS
/// matter and is not set for command-line programs).
#[cfg(not(target_os = "linux"))]
fn cgroup_limit() -> Option<(u64, u64, String)> {
    None
}

#[cfg(target_os = "linux")]
fn read_u64(p: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok() // "max" (v2, no limit) → None
}

/// `/proc/self/cgroup` lines `ID:CONTROLLERS:PATH` → (is v2, path) of the memory hierarchies.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_cgroups(text: &str) -> Vec<(bool, String)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let (id, ctl, path) = (it.next()?, it.next()?, it.next()?);
            if id == "0" && ctl.is_empty() {
                Some((true, path.to_string()))
            } else if ctl.split(',').any(|c| c == "memory") {
                Some((false, path.to_string()))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines() {
        let text = "12:memory:/lode8g\n11:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(
            parse_cgroups(text),
            vec![(false, "/lode8g".into()), (true, "/user.slice".into())]
        );
        assert!(available().bytes > 0);
    }
}
