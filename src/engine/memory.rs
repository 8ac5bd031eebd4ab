//! Peak resident memory, split into anonymous (heap: KV cache, activations) and file-backed
//! (the mapped GGUF) pages, sampled after every token. Linux reads `/proc/self/status`, macOS
//! `task_info(TASK_VM_INFO)` (internal / external pages and the kernel's peak); other systems
//! only get the total resident size through `sysinfo`.

use serde::Serialize;

/// Highest values seen so far, in bytes; `None` = not available on this system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryPeaks {
    /// Peak `RssAnon`: private pages (heap, KV cache, scratch buffers).
    pub rss_anon: Option<u64>,
    /// Peak `RssFile`: pages of mapped files (the model weights) currently resident.
    pub rss_file: Option<u64>,
    /// Peak total resident set (`VmHWM` on Linux, `resident_size_peak` on macOS, both kept by
    /// the kernel; sampled elsewhere).
    pub rss_total: Option<u64>,
}

/// Samples the process's memory on demand and keeps the peaks.
pub struct MemoryTracker {
    peaks: MemoryPeaks,
    #[cfg(target_os = "linux")]
    buf: String,
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    sys: Option<(sysinfo::System, sysinfo::Pid)>,
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl MemoryTracker {
    pub fn new() -> MemoryTracker {
        let mut t = MemoryTracker {
            peaks: MemoryPeaks::default(),
            #[cfg(target_os = "linux")]
            buf: String::with_capacity(2048),
            #[cfg(not(any(target_os = "linux", target_os = "macos")))]
            sys: sysinfo::get_current_pid()
                .ok()
                .map(|pid| (sysinfo::System::new(), pid)),
        };
        t.sample();
        t
    }

    pub fn peaks(&self) -> MemoryPeaks {
        self.peaks
    }

    /// Reads the current values and raises the peaks.
    pub fn sample(&mut self) {
        let now = self.read();
        self.peaks.rss_anon = max_opt(self.peaks.rss_anon, now.rss_anon);
        self.peaks.rss_file = max_opt(self.peaks.rss_file, now.rss_file);
        self.peaks.rss_total = max_opt(self.peaks.rss_total, now.rss_total);
    }

    #[cfg(target_os = "linux")]
    fn read(&mut self) -> MemoryPeaks {
        use std::io::Read;
        self.buf.clear();
        let ok = std::fs::File::open("/proc/self/status")
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok();
        if !ok {
            return MemoryPeaks::default();
        }
        parse_status(&self.buf)
    }

    #[cfg(target_os = "macos")]
    fn read(&mut self) -> MemoryPeaks {
        use crate::paging::sysmem::macos;
        match macos::task_memory() {
            Some(m) => MemoryPeaks {
                rss_anon: Some(m.anon),
                rss_file: Some(m.file),
                rss_total: Some(m.peak),
            },
            None => MemoryPeaks {
                rss_total: macos::peak_rss_rusage(),
                ..MemoryPeaks::default()
            },
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn read(&mut self) -> MemoryPeaks {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
        let Some((sys, pid)) = self.sys.as_mut() else {
            return MemoryPeaks::default();
        };
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[*pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        MemoryPeaks {
            rss_total: sys.process(*pid).map(|p| p.memory()),
            ..MemoryPeaks::default()
        }
    }
}

impl Default for MemoryTracker {
    fn default() -> Self {
        MemoryTracker::new()
    }
}

/// `RssAnon`, `RssFile` and `VmHWM` from the text of `/proc/<pid>/status` (values in kB).
pub fn parse_status(text: &str) -> MemoryPeaks {
    let mut m = MemoryPeaks::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "RssAnon" => &mut m.rss_anon,
            "RssFile" => &mut m.rss_file,
            "VmHWM" => &mut m.rss_total,
            _ => continue,
        };
        *slot = kib(rest).map(|kb| kb * 1024);
    }
    m
}

/// How much of the process's resident file-backed memory (the mapped GGUF) is mapped in 2 MiB
/// pages: `(FilePmdMapped, RssFile)` in bytes from `/proc/self/smaps_rollup`. A file the page
/// cache holds in small folios (read piecemeal, or after memory pressure) maps 4 KiB at a time
/// even with `MADV_HUGEPAGE`; what that costs decode is not settled (docs/bench.md). `None`
/// where the kernel does not say (not Linux, or no THP accounting).
pub fn file_pages_2mib() -> Option<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
        parse_smaps_rollup(&text)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The number of a `/proc` line's value part (`"   512 kB"` → 512).
fn kib(rest: &str) -> Option<u64> {
    rest.trim().trim_end_matches("kB").trim().parse().ok()
}

/// `(FilePmdMapped, Rss − Anonymous)` of a `smaps_rollup` text, in bytes (values in kB).
pub fn parse_smaps_rollup(text: &str) -> Option<(u64, u64)> {
    let (mut pmd, mut rss, mut anon) = (None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "FilePmdMapped" => &mut pmd,
            "Rss" => &mut rss,
            "Anonymous" => &mut anon,
            _ => continue,
        };
        *slot = kib(rest);
    }
    let file = rss?.checked_sub(anon?)?;
    Some((pmd? * 1024, file * 1024))
}

/// [`crate::paging::human_bytes`], or `unknown` where the OS does not say.
pub fn human_bytes_opt(b: Option<u64>) -> String {
    b.map_or_else(|| "unknown".to_string(), crate::paging::human_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tlode\nVmPeak:\t  300000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n\
                    RssAnon:\t     512 kB\nRssFile:\t     500 kB\nRssShmem:\t      12 kB\n";
        let m = parse_status(text);
        assert_eq!(m.rss_anon, Some(512 * 1024));
        assert_eq!(m.rss_file, Some(500 * 1024));
        assert_eq!(m.rss_total, Some(2048 * 1024));
        assert_eq!(parse_status("Name:\tx\n"), MemoryPeaks::default());
    }

    #[test]
    fn parses_smaps_rollup() {
        // the shape of Linux 6.x's /proc/self/smaps_rollup (abridged)
        let text = "55d0c0000000-7ffd5a9fe000 ---p 00000000 00:00 0   [rollup]\n\
                    Rss:            10923500 kB\nPss:            10900000 kB\n\
                    Anonymous:         56161 kB\nAnonHugePages:         0 kB\n\
                    ShmemPmdMapped:        0 kB\nFilePmdMapped:   10788864 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Some((10788864 * 1024, (10923500 - 56161) * 1024))
        );
        assert_eq!(parse_smaps_rollup("Rss: 5 kB\nAnonymous: 1 kB\n"), None);
        #[cfg(target_os = "linux")]
        {
            let (pmd, file) = file_pages_2mib().expect("smaps_rollup on Linux");
            assert!(pmd <= file || file == 0);
        }
    }

    #[test]
    fn tracker_sees_this_process() {
        let t = MemoryTracker::new();
        assert!(t.peaks().rss_total.unwrap_or(1) > 0);
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        assert!(t.peaks().rss_anon.unwrap() > 0);
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes_opt(None), "unknown");
        assert_eq!(human_bytes_opt(Some(3 << 30)), "3.00 GiB");
    }
}
