//! Every file lode writes (quantize, synth, `logits --out`, `--stats-json`, `--trace-experts`,
//! `bench --plot`, `paging-sweep --out`) goes through [`Output`], which applies one rule:
//!
//! - **A regular file, or a path that does not exist yet**, is written to a temporary file
//!   `NAME.tmp-PID-N` in the same directory, fsynced and renamed over `NAME`, so a reader never
//!   sees half a file and a failed run leaves the old file as it was. The temporary file is
//!   removed on every error path, when the writer is dropped unfinished, and by SIGINT, SIGTERM
//!   or SIGHUP (a small registry the signal handler walks); only SIGKILL can leave one behind.
//!   An existing file keeps its permission bits. A symlink to a regular file is followed: the
//!   file it points to is replaced and the link stays a link.
//! - **A path that exists and is not a regular file** (a character or block device such as
//!   `/dev/null`, a FIFO, a socket, or a symlink resolving to one), and **a path naming an open
//!   descriptor** (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`), is written in place, as
//!   `cp` or a shell redirection would: opened for writing without creating, truncating or
//!   renaming it (appending, for a descriptor that is a regular file), so the device entry
//!   survives and the bytes reach whoever reads the pipe.
//! - **Refused, before any long work starts** ([`check`]): a directory, a path ending in `/`,
//!   a dangling symlink, a missing or unwritable parent directory, and a path that is one of
//!   the command's input files (same device and inode, or the same canonical path).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, Result};

/// An output file being written; see the module doc for the rule. Dropping it without
/// [`Output::commit`] removes the temporary file (a regular target is left untouched).
#[derive(Debug)]
pub struct Output {
    file: Option<File>,
    /// The path as the caller gave it (for messages).
    path: PathBuf,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Temp file `tmp` renamed over `dest` (the resolved target) on commit.
    Replace {
        tmp: PathBuf,
        dest: PathBuf,
        slot: Option<usize>,
    },
    /// Written where it is (device, FIFO, socket, open descriptor).
    InPlace,
}

/// Where a path leads and how it will be written.
enum Target {
    Replace {
        dest: PathBuf,
        existing: Option<fs::Metadata>,
    },
    InPlace {
        append: bool,
    },
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::Input(format!("output {}: {why}", path.display()))
}

/// True when `path` reaches an open file descriptor (`/dev/stdout` → `/proc/self/fd/1`,
/// `/dev/fd/N`): renaming over it would replace whatever the descriptor points to.
fn names_descriptor(path: &Path) -> bool {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        if p.starts_with("/proc") || p.starts_with("/dev/fd") {
            return true;
        }
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&p) {
                Ok(t) if t.is_absolute() => p = t,
                Ok(t) => p = p.parent().unwrap_or(Path::new("")).join(t),
                Err(_) => return false,
            },
            _ => return false,
        }
    }
    false
}

fn resolve(path: &Path) -> Result<Target> {
    let text = path.as_os_str().as_encoded_bytes();
    if text.is_empty() {
        return Err(Error::Input("output path is empty".into()));
    }
    if text.ends_with(b"/") {
        return Err(refuse(
            path,
            "names a directory (ends in `/`), expected a file",
        ));
    }
    let descriptor = names_descriptor(path);
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(refuse(path, "is a directory, expected a file")),
        Ok(m) if m.is_file() && !descriptor => {
            let dest = fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
            Ok(Target::Replace {
                dest,
                existing: Some(m),
            })
        }
        Ok(m) => Ok(Target::InPlace {
            append: m.is_file(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(refuse(
                    path,
                    "is a symlink to a missing file (not writing through a dangling link)",
                ));
            }
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match fs::metadata(parent) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(refuse(path, "its parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(refuse(
                        path,
                        &format!("its directory {} does not exist", parent.display()),
                    ))
                }
                Err(e) => return Err(Error::io(parent, e)),
            }
            let dir = fs::canonicalize(parent).map_err(|e| Error::io(parent, e))?;
            let name = path
                .file_name()
                .ok_or_else(|| refuse(path, "has no file name"))?;
            Ok(Target::Replace {
                dest: dir.join(name),
                existing: None,
            })
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The same file: same device and inode where the OS says, else the same canonical path.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    let _ = (ma, mb);
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

fn check_inputs(path: &Path, inputs: &[&Path]) -> Result<()> {
    if let Some(i) = inputs.iter().find(|i| same_file(path, i)) {
        return Err(refuse(
            path,
            &format!("is the input {} (refusing to overwrite it)", i.display()),
        ));
    }
    Ok(())
}

/// Can this process write to `path` (no side effects; a FIFO is not opened)?
#[cfg(unix)]
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.permissions().readonly())
}

/// Checks, before any long work, that `path` can be written under the rule (see the module
/// doc) and is none of `inputs`. Creates and removes a probe temporary file for a regular
/// target, so a read-only directory or file system is caught now, not after the work.
pub fn check(path: &Path, inputs: &[&Path]) -> Result<()> {
    check_inputs(path, inputs)?;
    match resolve(path)? {
        Target::InPlace { .. } if writable(path) => Ok(()),
        Target::InPlace { .. } => Err(refuse(path, "is not writable")),
        Target::Replace { dest, .. } => {
            let (tmp, file) = create_temp(path, &dest)?;
            drop(file);
            let _ = fs::remove_file(&tmp);
            Ok(())
        }
    }
}

static TEMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh `NAME.tmp-PID-N` beside `dest` (never an existing file: `create_new`).
fn create_temp(path: &Path, dest: &Path) -> Result<(PathBuf, File)> {
    let name = dest.file_name().unwrap_or_default();
    loop {
        let mut t: OsString = name.to_owned();
        t.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = dest.with_file_name(t);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let dir = dest.parent().unwrap_or(Path::new("."));
                return Err(refuse(
                    path,
                    &format!("cannot create a file in {} ({e})", dir.display()),
                ));
            }
        }
    }
}

impl Output {
    /// Opens `path` for writing under the rule (see the module doc), refusing any of `inputs`.
    pub fn create(path: impl AsRef<Path>, inputs: &[&Path]) -> Result<Output> {
        let path = path.as_ref();
        check_inputs(path, inputs)?;
        match resolve(path)? {
            Target::InPlace { append } => {
                let file = OpenOptions::new()
                    .write(true)
                    .append(append)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                Ok(Output {
                    file: Some(file),
                    path: path.to_path_buf(),
                    mode: Mode::InPlace,
                })
            }
            Target::Replace { dest, existing } => {
                let (tmp, file) = create_temp(path, &dest)?;
                let slot = cleanup::register(&tmp);
                let out = Output {
                    file: Some(file),
                    path: path.to_path_buf(),
                    mode: Mode::Replace { tmp, dest, slot },
                };
                if let (Some(m), Mode::Replace { tmp, .. }) = (existing, &out.mode) {
                    // Keep the file's permission bits (advisory: ownership cannot follow).
                    let _ = fs::set_permissions(tmp, m.permissions());
                }
                Ok(out)
            }
        }
    }

    /// Written in place (a stream: no seeking, no `set_len`), not through a temporary file.
    pub fn in_place(&self) -> bool {
        matches!(self.mode, Mode::InPlace)
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file being written (the temporary file for a regular target).
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("output used after commit")
    }

    /// An I/O error on this output, naming the path the user gave.
    pub fn io_error(&self, e: io::Error) -> Error {
        Error::io(&self.path, e)
    }

    /// Finishes the file: fsync and rename over the target (regular files), or a flush (in
    /// place). On error the temporary file is removed and the target is left as it was.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("commit called twice");
        match &self.mode {
            Mode::InPlace => {
                // Devices and pipes may not support fsync; what was written has been handed on.
                let _ = file.sync_all();
                Ok(())
            }
            Mode::Replace { tmp, dest, .. } => {
                let r = file.sync_all().and_then(|_| {
                    drop(file);
                    fs::rename(tmp, dest)
                });
                if let Err(e) = r {
                    let _ = fs::remove_file(tmp);
                    return Err(Error::io(&self.path, e));
                }
                // Make the rename durable; advisory, as not every platform opens a directory.
                if let Some(dir) = dest.parent() {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Seek for Output {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file().seek(pos)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Mode::Replace { tmp, slot, .. } = &self.mode {
            if self.file.take().is_some() {
                // Unfinished: nothing useful to do if the removal fails.
                let _ = fs::remove_file(tmp);
            }
            if let Some(s) = slot {
                cleanup::unregister(*s);
            }
        }
    }
}

/// Writes `bytes` to `path` under the rule, refusing any of `inputs`.
pub fn write(path: impl AsRef<Path>, bytes: &[u8], inputs: &[&Path]) -> Result<()> {
    let mut out = Output::create(path, inputs)?;
    let r = out.write_all(bytes);
    r.map_err(|e| out.io_error(e))?;
    out.commit()
}

/// The temporary files a signal must remove: a fixed table of leaked C strings the handler
/// reads with atomic loads only (no locks, no allocation: async-signal-safe).
mod cleanup {
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};

    const SLOTS: usize = 64;
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
    static TEMPS: [AtomicPtr<libc::c_char>; SLOTS] = [EMPTY; SLOTS];

    /// Records `tmp` for the signal handler; `None` when the table is full (the file is then
    /// still removed on drop, only not on a signal).
    pub fn register(tmp: &Path) -> Option<usize> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            install();
            let c = std::ffi::CString::new(tmp.as_os_str().as_bytes()).ok()?;
            // Leaked on purpose: the handler may read the pointer at any moment, so it is never
            // freed (a few bytes per output file).
            let p = c.into_raw();
            for (i, s) in TEMPS.iter().enumerate() {
                if s.compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(i);
                }
            }
            None
        }
        #[cfg(not(unix))]
        {
            let _ = tmp;
            None
        }
    }

    pub fn unregister(slot: usize) {
        TEMPS[slot].store(std::ptr::null_mut(), Ordering::Release);
    }

    #[cfg(unix)]
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    #[cfg(unix)]
    extern "C" fn on_signal(sig: libc::c_int) {
        // Called as the previous handler of one installed later (tokio's registry chains
        // them): that one owns the signal and decides what happens; keep our hands off.
        // SAFETY: sigaction with a null new action only reads the current one into `cur`.
        let ours = unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut cur) == 0
                && cur.sa_sigaction == handler_addr()
        };
        if !ours {
            return;
        }
        for s in &TEMPS {
            let p = s.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: `p` came from CString::into_raw and is never freed; unlink is
                // async-signal-safe.
                unsafe { libc::unlink(p) };
            }
        }
        // Die of the signal as if no handler had been installed (exit status 128 + sig).
        // SAFETY: signal and raise are async-signal-safe; the signal is blocked while this
        // handler runs, so it is delivered with the default action once the handler returns.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    #[cfg(unix)]
    fn handler_addr() -> libc::sighandler_t {
        on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
    }

    /// Installs the handler once, for each signal whose action is still the default (a program
    /// that handles the signal itself, like `lode chat` for Ctrl-C or the server, keeps
    /// running and drops its outputs normally).
    #[cfg(unix)]
    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for sig in SIGNALS {
                // SAFETY: `cur` and `sa` are fully initialised before sigaction reads them; the
                // handler only does atomic loads, unlink, signal and raise (async-signal-safe).
                unsafe {
                    let mut cur: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, std::ptr::null(), &mut cur) != 0
                        || cur.sa_sigaction != libc::SIG_DFL
                    {
                        continue;
                    }
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = handler_addr();
                    libc::sigemptyset(&mut sa.sa_mask);
                    sa.sa_flags = libc::SA_RESTART;
                    libc::sigaction(sig, &sa, std::ptr::null_mut());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lode-output-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn regular_file_is_replaced_atomically_and_keeps_mode() {
        let d = dir("regular");
        let p = d.join("out.bin");
        fs::write(&p, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut o = Output::create(&p, &[]).unwrap();
        o.write_all(b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"old", "visible before commit");
        o.commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(names(&d), ["out.bin"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn dropped_output_leaves_nothing() {
        let d = dir("drop");
        let p = d.join("out.bin");
        let mut o = Output::create(&p, &[]).unwrap();
        o.write_all(b"half").unwrap();
        drop(o);
        assert!(names(&d).is_empty());
    }

    #[test]
    fn refusals_name_the_reason() {
        let d = dir("refuse");
        let msg = |p: &Path| check(p, &[]).unwrap_err().to_string();
        assert!(msg(&d).contains("is a directory"));
        let mut slash = d.join("x").into_os_string();
        slash.push("/");
        assert!(msg(Path::new(&slash)).contains("ends in `/`"));
        assert!(msg(&d.join("no/such/dir/f")).contains("does not exist"));
        let input = d.join("in.gguf");
        fs::write(&input, b"x").unwrap();
        let e = check(&input, &[&input]).unwrap_err().to_string();
        assert!(e.contains("is the input"), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("missing"), d.join("dangling")).unwrap();
            assert!(msg(&d.join("dangling")).contains("dangling"));
            // a link to the input is the input
            std::os::unix::fs::symlink(&input, d.join("alias")).unwrap();
            assert!(check(&d.join("alias"), &[&input]).is_err());
        }
        assert_eq!(fs::read(&input).unwrap(), b"x");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_to_a_file_replaces_the_target_and_keeps_the_link() {
        let d = dir("link");
        let target = d.join("real.json");
        fs::write(&target, b"old").unwrap();
        let link = d.join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"new", &[]).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(names(&d), ["link.json", "real.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn dev_null_is_written_in_place() {
        let o = Output::create("/dev/null", &[]).unwrap();
        assert!(o.in_place());
        write("/dev/null", b"gone", &[]).unwrap();
        let m = fs::metadata("/dev/null").unwrap();
        assert!(!m.is_file());
    }
}
