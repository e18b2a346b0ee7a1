//! Publishing a compiled artifact in the cache, and checking it before use.
//!
//! Beside each artifact `KEY.cwasm` the cache keeps `KEY.check`, one line:
//! the artifact's blake3 hash and the file status it had when last hashed
//! (size, device, inode, modification and change times). Checking an
//! artifact is a `stat` and a read of that line while the status is
//! unchanged; only when it changed (a copy, a touch, a damaged or replaced
//! file) is the artifact hashed again. A hash that matches records the new
//! status; one that does not, or a missing or unreadable check file, makes
//! the caller compile again. The change time cannot be set back by hand, so
//! a file rewritten in place is rehashed even with its old size and mtime.
//!
//! Publishing writes and `fsync`s a temporary file, renames it over the
//! artifact, does the same for the check file, and `fsync`s the directory:
//! after a crash the cache holds the old artifact, the new one, or one
//! whose check fails — never a torn file taken for a good one.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::LoadError;

/// First word of a check file (its format version).
const CHECK_MAGIC: &str = "mpwasm-check-1";

/// Longest check file read (a valid one is about 150 bytes).
const MAX_CHECK_BYTES: u64 = 1024;

/// Whether a cached artifact can be used.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It is the artifact that was published.
    Good,
    /// There is none.
    Missing,
    /// There is one without a valid check file (written by an mpwasm
    /// before checksums, or its check file was lost): it is not trusted.
    Unchecked,
    /// There is one, but it must not be used: why.
    Bad(String),
}

/// Checks the artifact at `artifact` against its check file (see the
/// module docs).
pub(super) fn verify(artifact: &Path) -> Verdict {
    let meta = match fs::metadata(artifact) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Verdict::Missing,
        Err(e) => return Verdict::Bad(format!("cannot stat it: {e}")),
    };
    let Some(check) = read_check(&check_path(artifact)) else {
        return Verdict::Unchecked;
    };
    let stamp = Stamp::of(&meta);
    if stamp == check.stamp {
        return Verdict::Good;
    }
    match hash_file(artifact) {
        Ok(hash) if hash == check.hash => {
            // Same bytes under a new status (copied, touched): remember it,
            // so the next check is cheap again. Failing to is harmless.
            let _ = write_check(artifact, &Check { hash, stamp });
            Verdict::Good
        }
        Ok(_) => Verdict::Bad("its checksum does not match".into()),
        Err(e) => Verdict::Bad(format!("cannot read it: {e}")),
    }
}

/// Writes `bytes` as the artifact `artifact` in `dir`, with its check file,
/// durably (see the module docs).
///
/// # Errors
///
/// [`LoadError::Cache`] naming the file or directory that failed.
pub(super) fn publish(dir: &Path, artifact: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Cache { path, source }
    };
    fs::create_dir_all(dir).map_err(cache_err(dir))?;
    replace_synced(artifact, bytes).map_err(cache_err(artifact))?;
    let meta = fs::metadata(artifact).map_err(cache_err(artifact))?;
    let check = Check {
        hash: blake3::hash(bytes),
        stamp: Stamp::of(&meta),
    };
    write_check(artifact, &check).map_err(cache_err(&check_path(artifact)))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(cache_err(dir))
}

/// The check file of `artifact`: `KEY.check` beside `KEY.cwasm`.
pub(super) fn check_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("check")
}

/// A file's hash and the file status it was hashed at (an artifact's, or a
/// guest file's: [`super::source`]).
pub(super) struct Check {
    pub(super) hash: blake3::Hash,
    pub(super) stamp: Stamp,
}

/// What `stat` says about a file that changes whenever its bytes do.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Stamp([i128; 7]);

impl Stamp {
    /// The status `meta` describes.
    pub(super) fn of(meta: &Metadata) -> Self {
        Stamp([
            meta.size().into(),
            meta.dev().into(),
            meta.ino().into(),
            meta.mtime().into(),
            meta.mtime_nsec().into(),
            meta.ctime().into(),
            meta.ctime_nsec().into(),
        ])
    }

    /// The change time, in nanoseconds since the epoch.
    pub(super) fn ctime_nanos(&self) -> i128 {
        self.0[5] * 1_000_000_000 + self.0[6]
    }
}

/// The check file at `path`, or `None` if it is missing or malformed.
pub(super) fn read_check(path: &Path) -> Option<Check> {
    read_check_as(path, &[CHECK_MAGIC]).map(|(_, check)| check)
}

/// A check line at `path` that starts with one of `headers` (each one or
/// more words) instead of the artifact's magic: which one, and the check.
/// `None` if the file is missing or malformed.
pub(super) fn read_check_as(path: &Path, headers: &[&str]) -> Option<(usize, Check)> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_CHECK_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    let (which, rest) = headers.iter().enumerate().find_map(|(i, header)| {
        let mut words = text.split_whitespace();
        header
            .split_whitespace()
            .all(|w| words.next() == Some(w))
            .then_some((i, words))
    })?;
    parse_check(rest).map(|check| (which, check))
}

fn parse_check<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<Check> {
    let hash = blake3::Hash::from_hex(words.next()?).ok()?;
    let mut stamp = [0i128; 7];
    for field in &mut stamp {
        *field = words.next()?.parse().ok()?;
    }
    words.next().is_none().then_some(Check {
        hash,
        stamp: Stamp(stamp),
    })
}

/// Writes the check file of `artifact` (atomically, synced).
fn write_check(artifact: &Path, check: &Check) -> io::Result<()> {
    write_check_at(&check_path(artifact), check)
}

/// Writes `check` as the check file `path` (atomically, synced).
fn write_check_at(path: &Path, check: &Check) -> io::Result<()> {
    write_check_as(path, CHECK_MAGIC, check)
}

/// Writes `check` as a check line at `path` that starts with `header`
/// instead of the artifact's magic ([`read_check_as`]), atomically, synced.
pub(super) fn write_check_as(path: &Path, header: &str, check: &Check) -> io::Result<()> {
    let mut line = format!("{header} {}", check.hash.to_hex());
    for field in check.stamp.0 {
        line.push_str(&format!(" {field}"));
    }
    line.push('\n');
    replace_synced(path, line.as_bytes())
}

fn hash_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize())
}

/// Replaces `path` by a file holding `bytes`: written to a temporary file,
/// `fsync`ed, then renamed over it, so readers see the old file or the
/// whole new one.
fn replace_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Unique per process and call: two pools of one process may compile
    // the same guest at once.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod test {
    use super::*;

    fn published(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("k.cwasm");
        publish(dir.path(), &artifact, bytes).unwrap();
        (dir, artifact)
    }

    #[test]
    fn a_published_artifact_verifies() {
        let (_dir, artifact) = published(b"compiled bytes");
        assert_eq!(fs::read(&artifact).unwrap(), b"compiled bytes");
        assert_eq!(verify(&artifact), Verdict::Good);
        let leftovers = fs::read_dir(artifact.parent().unwrap()).unwrap().count();
        assert_eq!(
            leftovers, 2,
            "the artifact and its check file, no temp files"
        );
    }

    #[test]
    fn no_artifact_is_missing_and_no_check_file_is_unchecked() {
        let (_dir, artifact) = published(b"compiled bytes");
        assert_eq!(verify(&artifact.with_extension("other")), Verdict::Missing);
        fs::remove_file(check_path(&artifact)).unwrap();
        assert_eq!(verify(&artifact), Verdict::Unchecked);
    }

    #[test]
    fn a_damaged_artifact_is_bad() {
        let (_dir, artifact) = published(b"compiled bytes");
        fs::write(&artifact, b"compiled").unwrap();
        assert!(matches!(verify(&artifact), Verdict::Bad(_)));
        // Same size, old modification time: the change time still moved.
        let (_dir, artifact) = published(b"compiled bytes");
        let mtime = fs::metadata(&artifact).unwrap().modified().unwrap();
        // Damage comes later than publishing; without a pause both writes
        // could fall in one tick of a coarse file system clock.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&artifact, b"COMPILED bytes").unwrap();
        File::options()
            .write(true)
            .open(&artifact)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(matches!(verify(&artifact), Verdict::Bad(_)));
    }

    #[test]
    fn the_same_bytes_under_a_new_status_are_good_and_restamped() {
        let (dir, artifact) = published(b"compiled bytes");
        let copy = dir.path().join("copy.cwasm");
        fs::copy(&artifact, &copy).unwrap();
        fs::copy(check_path(&artifact), check_path(&copy)).unwrap();
        let before = fs::read_to_string(check_path(&copy)).unwrap();
        assert_eq!(verify(&copy), Verdict::Good);
        let after = fs::read_to_string(check_path(&copy)).unwrap();
        assert_ne!(before, after, "the new inode is recorded");
        assert_eq!(verify(&copy), Verdict::Good);
    }

    #[test]
    fn malformed_check_files_are_refused() {
        let (_dir, artifact) = published(b"compiled bytes");
        let good = fs::read_to_string(check_path(&artifact)).unwrap();
        for bad in [
            String::new(),
            good.replace(CHECK_MAGIC, "mpwasm-check-0"),
            good.replacen(' ', "  x ", 1),
            format!("{} 1", good.trim_end()),
            "x".repeat(4096),
        ] {
            fs::write(check_path(&artifact), &bad).unwrap();
            assert!(read_check(&check_path(&artifact)).is_none(), "{bad:?}");
        }
    }
}
