//! The macOS counterparts of what Linux reads from `/proc` and the memory cgroup: installed
//! memory (`sysctl hw.memsize`), the memory the system can still hand out
//! (`host_statistics64`), and this process's resident pages split into anonymous and
//! file-backed, with the kernel's peak (`task_info(TASK_VM_INFO)`). macOS has no memory
//! cgroup, so nothing here lowers the available memory below what the host reports.
//!
//! Type-checked for `aarch64-apple-darwin` by scripts/macos-check.sh; never run in CI (there
//! is no Mac there), so every call checks its return code and answers `None` on failure.

use std::mem::size_of;
use std::sync::OnceLock;

// Declared here rather than taken from `libc`, which marks its copies deprecated in favour
// of the `mach2` crate; both are plain exports of libSystem.
extern "C" {
    /// The task port of this process (what the C macro `mach_task_self()` reads).
    static mach_task_self_: libc::mach_port_t;
    /// A send right to the host port; each call adds a reference, so it is taken once.
    fn mach_host_self() -> libc::mach_port_t;
}

/// `TASK_VM_INFO` from `<mach/task_info.h>`.
const TASK_VM_INFO: libc::task_flavor_t = 22;

/// `struct task_vm_info` up to `phys_footprint` (revision 1; later revisions append fields,
/// and the kernel fills only as many as the count we pass allows). `#pragma pack(4)` in C.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Default)]
struct TaskVmInfo {
    virtual_size: u64,
    region_count: i32,
    page_size: i32,
    resident_size: u64,
    resident_size_peak: u64,
    device: u64,
    device_peak: u64,
    /// Anonymous pages (heap, stacks, the KV cache): Linux `RssAnon`.
    internal: u64,
    internal_peak: u64,
    /// File-backed pages (the mapped GGUF): Linux `RssFile`.
    external: u64,
    external_peak: u64,
    reusable: u64,
    reusable_peak: u64,
    purgeable_volatile_pmap: u64,
    purgeable_volatile_resident: u64,
    purgeable_volatile_virtual: u64,
    compressed: u64,
    compressed_peak: u64,
    compressed_lifetime: u64,
    phys_footprint: u64,
}

/// This process's resident memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskMemory {
    /// Anonymous resident pages (`internal`).
    pub anon: u64,
    /// File-backed resident pages (`external`).
    pub file: u64,
    /// Peak resident size, kept by the kernel (`resident_size_peak`; cannot be reset).
    pub peak: u64,
}

/// `task_info(mach_task_self(), TASK_VM_INFO)`.
pub fn task_memory() -> Option<TaskMemory> {
    let mut info = TaskVmInfo::default();
    let mut count = (size_of::<TaskVmInfo>() / size_of::<libc::natural_t>()) as u32;
    // SAFETY: `info` is a plain-integer struct of `count` natural_t words; the kernel writes at
    // most `count` words and updates `count`. `mach_task_self_` is set before main runs.
    let rc = unsafe {
        libc::task_info(
            mach_task_self_,
            TASK_VM_INFO,
            (&mut info as *mut TaskVmInfo).cast(),
            &mut count,
        )
    };
    if rc != libc::KERN_SUCCESS {
        return None;
    }
    let (anon, file, peak) = (info.internal, info.external, info.resident_size_peak);
    Some(TaskMemory { anon, file, peak })
}

/// Peak resident size from `getrusage` (bytes on macOS, where Linux reports kB): the fallback
/// when `task_info` is refused.
pub fn peak_rss_rusage() -> Option<u64> {
    // SAFETY: `rusage` is plain integers; getrusage writes one for RUSAGE_SELF.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (rc == 0).then(|| ru.ru_maxrss.max(0) as u64)
}

/// `sysctl hw.memsize`: installed memory in bytes.
pub fn physical_memory() -> Option<u64> {
    let mut bytes: u64 = 0;
    let mut len = size_of::<u64>();
    // SAFETY: the name is NUL-terminated; `bytes` is a writable u64 and `len` says so; no new
    // value is set (null, 0).
    let rc = unsafe {
        libc::sysctlbyname(
            c"hw.memsize".as_ptr(),
            (&mut bytes as *mut u64).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == size_of::<u64>()).then_some(bytes)
}

/// Bytes the system can give a process without paging anything out: free pages (which include
/// the speculative read-ahead ones), inactive pages (file cache and idle anonymous pages the
/// kernel reclaims first) and purgeable ones, as `host_statistics64(HOST_VM_INFO64)` counts
/// them, at most the installed memory.
pub fn available_memory() -> Option<u64> {
    static HOST: OnceLock<libc::mach_port_t> = OnceLock::new();
    // SAFETY: mach_host_self takes no arguments and returns a port name.
    let host = *HOST.get_or_init(|| unsafe { mach_host_self() });
    // SAFETY: vm_statistics64 is plain integers; all-zero is a valid value.
    let mut stat: libc::vm_statistics64 = unsafe { std::mem::zeroed() };
    let mut count = libc::HOST_VM_INFO64_COUNT;
    // SAFETY: `stat` holds `count` integer_t words; the kernel writes at most that many and
    // updates `count`.
    let rc = unsafe {
        libc::host_statistics64(
            host,
            libc::HOST_VM_INFO64,
            (&mut stat as *mut libc::vm_statistics64).cast(),
            &mut count,
        )
    };
    if rc != libc::KERN_SUCCESS {
        return None;
    }
    // SAFETY: sysconf only reads its argument.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)?;
    let pages = u64::from(stat.free_count)
        + u64::from(stat.inactive_count)
        + u64::from(stat.purgeable_count);
    let bytes = pages.saturating_mul(page);
    Some(physical_memory().map_or(bytes, |total| bytes.min(total)))
}

/// The CPU's marketing name (`sysctl machdep.cpu.brand_string`, e.g. "Apple M2 Pro").
pub fn cpu_brand() -> Option<String> {
    let mut buf = [0u8; 128];
    let mut len = buf.len();
    // SAFETY: the name is NUL-terminated; `buf` is writable for `len` bytes.
    let rc = unsafe {
        libc::sysctlbyname(
            c"machdep.cpu.brand_string".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let s = std::ffi::CStr::from_bytes_until_nul(&buf[..len.min(buf.len())]).ok()?;
    Some(s.to_string_lossy().trim().to_string()).filter(|s| !s.is_empty())
}
