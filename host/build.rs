//! Sets `MPWASM_BUILD_ID`: a hash of this crate's sources and the WIT
//! contract. The `mpwasm` binary and the runtime-only worker
//! (`host/worker/`) are built in separate Cargo invocations; a pool uses
//! the worker only if its id is the pool's own, so a worker left over from
//! other sources is never started.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let roots = [
        manifest.join("src"),
        manifest.join("Cargo.toml"),
        manifest.join("build.rs"),
        manifest.join("../wit"),
    ];
    let mut files = Vec::new();
    for root in &roots {
        println!("cargo:rerun-if-changed={}", root.display());
        collect(root, &mut files);
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in &files {
        file.strip_prefix(&manifest)
            .unwrap_or(file)
            .hash(&mut hasher);
        std::fs::read(file).unwrap_or_default().hash(&mut hasher);
    }
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    println!("cargo:rustc-env=MPWASM_BUILD_ID={:016x}", hasher.finish());
}

/// Every file under `path` (or `path` itself), depth-first.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                collect(&entry.path(), out);
            }
        }
        Err(_) if path.is_file() => out.push(path.to_path_buf()),
        Err(_) => {}
    }
}
