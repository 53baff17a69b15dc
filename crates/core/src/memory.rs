//! Will a large allocation fit? Estimate a request's memory before allocating and refuse it,
//! with the figure, when it cannot fit, instead of letting the allocator abort the process.
//!
//! The memory available is the smallest of:
//! - `MemAvailable` in `/proc/meminfo` (what the kernel can give without swapping);
//! - the room left under the process's memory cgroup limit and those of its ancestors (cgroup v2
//!   `memory.max − memory.current`, v1 `memory.limit_in_bytes − memory.usage_in_bytes`);
//! - the `EMBEDRANK_MEMORY_LIMIT` environment variable, if set (bytes, or with a `K`, `M`, `G`
//!   or `T` suffix, powers of 1024): a cap chosen by the user (or a test).
//!
//! Where none of them can be read (not Linux), [`check`] lets every request through.
//!
//! ```
//! use embedrank_core::memory;
//! assert!(memory::check(1024, "a small buffer").is_ok());
//! let err = memory::check(u64::MAX, "an impossible buffer").unwrap_err();
//! assert!(err.to_string().contains("an impossible buffer needs"));
//! ```

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The environment variable that caps the memory embedrank assumes it may use.
pub const LIMIT_VAR: &str = "EMBEDRANK_MEMORY_LIMIT";

/// A request refused because it would not fit in the memory available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough memory: {what} needs {} ({needed} bytes), but only {} is available ({source_name})",
    Bytes(*needed),
    Bytes(*available)
)]
pub struct MemoryError {
    /// What was to be allocated.
    pub what: String,
    /// Bytes it needs.
    pub needed: u64,
    /// Bytes available.
    pub available: u64,
    /// Where the figure comes from (`MemAvailable in /proc/meminfo`, a cgroup file, the variable).
    pub source_name: String,
}

/// A byte count written for people: `3.2 GiB`, `512.0 MiB`, `900 bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return write!(f, "{} bytes", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

/// Bytes of a `rows × cols` matrix of `elem`-byte values (saturating: never overflows).
pub fn matrix_bytes(rows: usize, cols: usize, elem: usize) -> u64 {
    (rows as u64).saturating_mul(cols as u64).saturating_mul(elem as u64)
}

/// The memory available to this process and where that figure comes from, or `None` where no
/// source can be read.
pub fn available() -> Option<(u64, String)> {
    let mut best: Option<(u64, String)> = None;
    let mut offer = |bytes: u64, name: String| {
        if best.as_ref().is_none_or(|(b, _)| bytes < *b) {
            best = Some((bytes, name));
        }
    };
    if let Ok(v) = std::env::var(LIMIT_VAR) {
        if let Some(b) = parse_size(&v) {
            offer(b, format!("{LIMIT_VAR}={v}"));
        }
    }
    if let Some(b) = fs::read_to_string("/proc/meminfo").ok().and_then(|t| mem_available(&t)) {
        offer(b, "MemAvailable in /proc/meminfo".into());
    }
    if let Ok(text) = fs::read_to_string("/proc/self/cgroup") {
        if let Some((b, name)) = cgroup_room(&text, Path::new("/sys/fs/cgroup")) {
            offer(b, name);
        }
    }
    best
}

/// Refuses a request of `bytes` for `what` (e.g. "the kNN search (20000 × 19999 neighbours)")
/// when it exceeds the memory [`available`].
pub fn check(bytes: u64, what: &str) -> Result<(), MemoryError> {
    match available() {
        Some((available, source_name)) if bytes > available => Err(MemoryError {
            what: what.to_string(),
            needed: bytes,
            available,
            source_name,
        }),
        _ => Ok(()),
    }
}

/// A size such as `1073741824`, `512M` or `2G` (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return None,
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The room left under the memory limits of the cgroup named in `proc_cgroup` (the text of
/// `/proc/self/cgroup`) and its ancestors, with the file that sets the tightest one; `root` is
/// where the cgroup file systems are mounted (`/sys/fs/cgroup`). `None` when nothing limits it.
pub fn cgroup_room(proc_cgroup: &str, root: &Path) -> Option<(u64, String)> {
    let mut best: Option<(u64, String)> = None;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (base, limit_file, usage_file) = if controllers.is_empty() {
            // cgroup v2 (the unified hierarchy), mounted at root or at root/unified.
            let base = if root.join("cgroup.controllers").exists() {
                root.to_path_buf()
            } else {
                root.join("unified")
            };
            (base, "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes", "memory.usage_in_bytes")
        } else {
            continue;
        };
        for dir in ancestors(&base, path) {
            let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
            let (Some(limit), Some(usage)) = (read(limit_file), read(usage_file)) else {
                continue;
            };
            let (Ok(limit), Ok(usage)) = (limit.trim().parse::<u64>(), usage.trim().parse::<u64>()) else {
                continue; // "max": no limit at this level
            };
            if limit >= 1 << 60 {
                continue; // cgroup v1 writes "no limit" as a huge number
            }
            let room = limit.saturating_sub(usage);
            if best.as_ref().is_none_or(|(b, _)| room < *b) {
                best = Some((room, format!("cgroup limit {}", dir.join(limit_file).display())));
            }
        }
    }
    best
}

/// The cgroup folder of `path` under `base` and each of its ancestors up to `base`. In a container
/// the cgroup's own folder is often mounted at `base` itself, so `base` is always included.
fn ancestors(base: &Path, path: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut rel = PathBuf::from(path.trim_start_matches('/'));
    loop {
        let dir = base.join(&rel);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
        if !rel.pop() {
            break;
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_meminfo_parse() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size(" 2g "), Some(2 << 30));
        assert_eq!(parse_size("3X"), None);
        assert_eq!(parse_size("lots"), None);
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   15784064 kB\n";
        assert_eq!(mem_available(meminfo), Some(15_784_064 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn bytes_are_written_for_people() {
        assert_eq!(Bytes(900).to_string(), "900 bytes");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(matrix_bytes(30_000, 30_000, 8), 7_200_000_000);
        assert_eq!(matrix_bytes(usize::MAX, usize::MAX, 8), u64::MAX);
    }

    #[test]
    fn cgroup_limits_are_read_from_the_tightest_level() {
        let root = std::env::temp_dir().join(format!("embedrank-cgroup-{}", std::process::id()));
        let v1 = root.join("memory/outer/inner");
        fs::create_dir_all(&v1).unwrap();
        let write = |dir: &Path, files: [(&str, &str); 2]| {
            for (name, text) in files {
                fs::write(dir.join(name), text).unwrap();
            }
        };
        write(
            &v1,
            [
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.usage_in_bytes", "5\n"),
            ],
        );
        write(
            &root.join("memory/outer"),
            [("memory.limit_in_bytes", "1000\n"), ("memory.usage_in_bytes", "400\n")],
        );
        let (room, name) = cgroup_room("4:memory:/outer/inner\n1:cpu:/\n", &root).unwrap();
        assert_eq!(room, 600);
        assert!(name.ends_with("outer/memory.limit_in_bytes"), "{name}");
        // cgroup v2 under root/unified: "max" is no limit.
        let v2 = root.join("unified/job");
        fs::create_dir_all(&v2).unwrap();
        write(&v2, [("memory.max", "max\n"), ("memory.current", "7\n")]);
        assert_eq!(cgroup_room("0::/job\n", &root), None);
        write(&v2, [("memory.max", "2048\n"), ("memory.current", "48\n")]);
        assert_eq!(cgroup_room("0::/job\n", &root).unwrap().0, 2000);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_request_beyond_any_machine_is_refused_with_the_figure() {
        let err = check(u64::MAX, "a test buffer").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("a test buffer needs 16.0 EiB"), "{text}");
        assert!(err.available < u64::MAX && text.contains("available ("), "{text}");
    }
}
