//! The guest file's content hash, remembered by its file status, so that
//! an unchanged guest is not read and hashed again on every run.
//!
//! The cache key starts with the blake3 hash of the guest file's bytes.
//! Hashing costs about 1 ms per MiB, so the cache keeps, under
//! `sources/`, one record per guest path: the hash, whether the guest
//! imports a window (which picks its engine, and so its cache key:
//! [`super::window::wants_window`]), and the status the file had when it
//! was hashed (size, device, inode, modification and change times — the
//! artifact's check-file format, [`super::artifact`]). A run
//! whose guest has that status uses the recorded hash and reads nothing
//! else; any other status (a rebuilt, copied, touched, replaced or edited
//! file) reads and hashes the file again and records the new status.
//!
//! What makes this safe is the change time: the kernel sets it on every
//! write and no system call sets it back, so a file rewritten with its old
//! size and an old modification time restored still has a new status. Two
//! cases remain, and each is closed:
//!
//! - A write in the same clock tick as the hashing (the change time is
//!   read from a coarse clock, a few milliseconds per tick, and from the
//!   server's clock on network file systems) would leave the status
//!   unchanged. So a status is recorded only when the file's change time is
//!   at least [`RACY_MARGIN`] older than the moment its bytes were read
//!   (git's "racily clean" rule); a fresher file is hashed again next time.
//! - A file that changes while it is read is not recorded (its status is
//!   compared before and after).
//!
//! Not detectable, and not guarded against: someone who can set the
//! system clock back and rewrite the file within the tick of the recorded
//! change time, or who writes the block device under the file system. The
//! artifact itself is checked separately and always ([`super::artifact`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::artifact::{read_check_as, write_check_as, Check, Stamp};
use crate::error::LoadError;

/// How much older than the moment of hashing a file's change time must be
/// for its status to be recorded (see the module docs).
pub(super) const RACY_MARGIN: Duration = Duration::from_secs(1);

/// The first words of a record: its format, and whether the guest wants a
/// window (index 1) or not (index 0). Records of an mpwasm before windows
/// have another first word and are not used.
const HEADERS: [&str; 2] = ["mpwasm-source-1 window=0", "mpwasm-source-1 window=1"];

/// A guest file's content hash, and its bytes if they had to be read.
pub(super) struct Source {
    /// blake3 of the file's bytes.
    pub(super) hash: blake3::Hash,
    /// Whether the guest imports a window ([`super::window::wants_window`]).
    pub(super) window: bool,
    /// The bytes, when the recorded hash could not be used.
    pub(super) bytes: Option<Vec<u8>>,
}

/// The content hash of the guest at `path`, from the record under
/// `cache_dir` if the file's status still matches it, else by reading the
/// file (which also checks its size and magic, [`super::read_guest`]).
///
/// # Errors
///
/// The [`LoadError`]s of reading a guest file.
pub(super) fn content_hash(cache_dir: &Path, path: &Path) -> Result<Source, LoadError> {
    let record = record_path(cache_dir, path);
    let before = stat(path)?;
    if let Some((window, check)) = record.as_deref().and_then(|r| read_check_as(r, &HEADERS)) {
        if check.stamp == before {
            tracing::debug!(guest = %path.display(), "guest unchanged: its hash is not recomputed");
            return Ok(Source {
                hash: check.hash,
                window: window == 1,
                bytes: None,
            });
        }
    }
    let read_at = SystemTime::now();
    let bytes = super::read_guest(path)?;
    let hash = blake3::hash(&bytes);
    let window = super::window::wants_window(&bytes);
    let after = stat(path)?;
    if let Some(record) = record {
        if after == before && settled(&after, read_at) {
            // A cache that cannot be written only costs a hash next time.
            let _ = record
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| {
                    let check = Check { hash, stamp: after };
                    write_check_as(&record, HEADERS[usize::from(window)], &check)
                });
        }
    }
    Ok(Source {
        hash,
        window,
        bytes: Some(bytes),
    })
}

/// Whether a file with status `stamp`, read at `read_at`, last changed
/// long enough before that any later write must change its status.
fn settled(stamp: &Stamp, read_at: SystemTime) -> bool {
    let Ok(read_at) = read_at.duration_since(UNIX_EPOCH) else {
        return false;
    };
    stamp.ctime_nanos() + RACY_MARGIN.as_nanos() as i128 <= read_at.as_nanos() as i128
}

fn stat(path: &Path) -> Result<Stamp, LoadError> {
    fs::metadata(path)
        .map(|meta| Stamp::of(&meta))
        .map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Where the record of the guest at `path` is kept: named by a hash of its
/// absolute path, so a cache holds one record per guest path (`None` if the
/// path cannot be made absolute: then nothing is recorded).
fn record_path(cache_dir: &Path, path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let name = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
    Some(cache_dir.join("sources").join(&name[..32]))
}

#[cfg(test)]
mod test {
    use super::*;
    use std::fs::File;

    const WASM: &[u8] = b"\0asm\x01\0\0\0 first";

    fn guest(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Loads twice: whether the second load read the file.
    fn read_again(cache: &Path, path: &Path) -> bool {
        content_hash(cache, path).unwrap();
        content_hash(cache, path).unwrap().bytes.is_some()
    }

    #[test]
    fn a_fresh_file_is_hashed_every_time_until_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let path = guest(dir.path(), "g.wasm", WASM);
        assert!(read_again(dir.path(), &path), "racily fresh: not recorded");
        std::thread::sleep(RACY_MARGIN + Duration::from_millis(100));
        let first = content_hash(dir.path(), &path).unwrap();
        assert!(first.bytes.is_some(), "no record yet: read");
        let second = content_hash(dir.path(), &path).unwrap();
        assert!(second.bytes.is_none(), "unchanged and settled: not read");
        assert_eq!(first.hash, second.hash);
        assert_eq!(first.hash, blake3::hash(WASM));
    }

    #[test]
    fn any_change_to_a_recorded_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let same_size = guest(dir.path(), "a.wasm", WASM);
        let grown = guest(dir.path(), "b.wasm", WASM);
        let replaced = guest(dir.path(), "c.wasm", WASM);
        std::thread::sleep(RACY_MARGIN + Duration::from_millis(100));
        for path in [&same_size, &grown, &replaced] {
            assert!(!read_again(&cache, path), "{}: recorded", path.display());
        }

        // Same size, the old modification time put back: the change time
        // still moves.
        let mtime = fs::metadata(&same_size).unwrap().modified().unwrap();
        fs::write(&same_size, b"\0asm\x01\0\0\0 FIRST").unwrap();
        File::options()
            .write(true)
            .open(&same_size)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs::write(&grown, b"\0asm\x01\0\0\0 first and more").unwrap();
        let tmp = guest(dir.path(), "c.tmp", b"\0asm\x01\0\0\0 other");
        fs::rename(&tmp, &replaced).unwrap();

        for path in [&same_size, &grown, &replaced] {
            let now = content_hash(&cache, path).unwrap();
            assert!(now.bytes.is_some(), "{}: read again", path.display());
            assert_eq!(now.hash, blake3::hash(&fs::read(path).unwrap()));
            assert_ne!(now.hash, blake3::hash(WASM), "{}", path.display());
            // Changed just now: not recorded, so read again next time too.
            let next = content_hash(&cache, path).unwrap();
            assert!(next.bytes.is_some(), "{}: still fresh", path.display());
        }
    }

    #[test]
    fn the_record_keeps_whether_the_guest_wants_a_window() {
        use crate::load::window::test::{guest_module, one_page, ALL};
        let dir = tempfile::tempdir().unwrap();
        let windowed = guest(dir.path(), "w.wasm", &guest_module(&[one_page()], ALL));
        let plain = guest(dir.path(), "g.wasm", WASM);
        std::thread::sleep(RACY_MARGIN + Duration::from_millis(100));
        for (path, wants) in [(&windowed, true), (&plain, false)] {
            let read = content_hash(dir.path(), path).unwrap();
            assert!(read.bytes.is_some(), "{}: read", path.display());
            assert_eq!(read.window, wants, "{}: read", path.display());
            let recorded = content_hash(dir.path(), path).unwrap();
            assert!(recorded.bytes.is_none(), "{}: recorded", path.display());
            assert_eq!(recorded.window, wants, "{}: recorded", path.display());
        }
    }

    #[test]
    fn a_record_without_the_window_flag_is_not_used() {
        use crate::load::window::test::{guest_module, one_page, ALL};
        let dir = tempfile::tempdir().unwrap();
        let path = guest(dir.path(), "w.wasm", &guest_module(&[one_page()], ALL));
        std::thread::sleep(RACY_MARGIN + Duration::from_millis(100));
        assert!(!read_again(dir.path(), &path), "recorded");
        // What an mpwasm before windows recorded: the artifact's format.
        let record = record_path(dir.path(), &path).unwrap();
        let text = fs::read_to_string(&record).unwrap();
        let old = text.replace(HEADERS[1], "mpwasm-check-1");
        assert_ne!(old, text);
        fs::write(&record, old).unwrap();
        let got = content_hash(dir.path(), &path).unwrap();
        assert!(got.bytes.is_some(), "an old record is not used");
        assert!(got.window);
    }

    #[test]
    fn a_damaged_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = guest(dir.path(), "g.wasm", WASM);
        let record = record_path(dir.path(), &path).unwrap();
        fs::create_dir_all(record.parent().unwrap()).unwrap();
        fs::write(&record, b"mpwasm-check-1 nonsense").unwrap();
        let got = content_hash(dir.path(), &path).unwrap();
        assert_eq!(got.hash, blake3::hash(WASM));
        assert!(got.bytes.is_some());
    }
}
