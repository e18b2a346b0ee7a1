//! Loading: from a guest file to a precompiled component in the cache.
//!
//! `mpwasm` accepts a wasm32-wasip1 core module (what `cargo build --target
//! wasm32-wasip1` makes) or a component. A core module is componentized with
//! `wit-component` and the WASI preview1 adapter of the same wasmtime
//! release. The component is checked against the `worker` world, compiled
//! once, and written to the cache under a key made of the file's content hash,
//! the engine's compatibility hash and the mpwasm and wasmtime versions,
//! with a checksum beside it; an artifact that fails its check is compiled
//! again ([`artifact`]). The content hash of an unchanged guest file is
//! not recomputed: the cache remembers it by the file's status
//! ([`source`]). Worker processes only ever `deserialize_file`
//! (mmap) the cached artifact: starting a worker never compiles.

mod artifact;
mod source;
pub(crate) mod window;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use self::artifact::Verdict;
use crate::bindings::TASKS_EXPORT;
use crate::engine::Checks;
use crate::error::LoadError;
use crate::limits::MAX_GUEST_FILE_BYTES;

/// Interfaces a guest may import from this host, by prefix.
const PROVIDED_IMPORTS: &[&str] = &[
    "wasi:",
    "mpwasm:runtime/runtime@0.1.0",
    "mpwasm:runtime/types@0.1.0",
    "mpwasm:runtime/process@0.1.0",
    "mpwasm:runtime/queue@0.1.0",
    "mpwasm:runtime/pipe@0.1.0",
    "mpwasm:runtime/pool@0.1.0",
    "mpwasm:runtime/shared@0.1.0",
    "mpwasm:runtime/sync@0.1.0",
    "mpwasm:runtime/manager@0.1.0",
];

/// A guest compiled for mpwasm's engine and stored in the cache.
#[derive(Debug, Clone)]
pub struct CompiledGuest {
    source: PathBuf,
    artifact: PathBuf,
    compile_time: Option<Duration>,
    window: bool,
}

impl CompiledGuest {
    /// The guest file it was compiled from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The precompiled component in the cache, which workers map.
    pub fn artifact(&self) -> &Path {
        &self.artifact
    }

    /// How long compiling took, or `None` if the cache already had it.
    pub fn compile_time(&self) -> Option<Duration> {
        self.compile_time
    }

    /// Whether the guest has a window for shared regions ([`window`]):
    /// its workers need the window engine.
    pub(crate) fn has_window(&self) -> bool {
        self.window
    }
}

/// The on-disk cache of precompiled components.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// The default cache: `$MPWASM_CACHE_DIR`, else `$XDG_CACHE_HOME/mpwasm`,
    /// else `~/.cache/mpwasm`, else a folder in the temp directory.
    pub fn default_location() -> Self {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env("MPWASM_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mpwasm")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("mpwasm")))
            .unwrap_or_else(|| std::env::temp_dir().join("mpwasm-cache"));
        Cache { dir }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `path`, compiling and caching it unless the cache has it.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] naming the file: unreadable, not wasm, invalid, not
    /// targeting mpwasm's world, or the cache cannot be written.
    pub fn load(&self, path: &Path) -> Result<CompiledGuest, LoadError> {
        self.load_for(path, Checks::default())
    }

    /// [`Cache::load`] for an engine compiling in `checks` (fuel, epoch
    /// checks for deadlines: a separate artifact each).
    #[cfg(feature = "compiler")]
    pub(crate) fn load_for(&self, path: &Path, checks: Checks) -> Result<CompiledGuest, LoadError> {
        if crate::python::is_program(path) {
            // Every Python program runs in one component; its source
            // travels at run time (see `crate::python`).
            let component = crate::python::generic_component(&self.dir, path)?;
            let guest = self.load_for(&component, checks)?;
            return Ok(CompiledGuest {
                source: path.to_path_buf(),
                ..guest
            });
        }
        let source = source::content_hash(&self.dir, path)?;
        let mut window = source.window;
        let mut engine = compiling_engine(checks, window)?;
        let mut artifact = self
            .dir
            .join(format!("{}.cwasm", cache_key(&engine, &source.hash)));
        match artifact::verify(&artifact) {
            Verdict::Good => {
                tracing::debug!(artifact = %artifact.display(), "cache hit");
                return Ok(CompiledGuest {
                    source: path.to_path_buf(),
                    artifact,
                    compile_time: None,
                    window,
                });
            }
            Verdict::Missing => {}
            Verdict::Unchecked => tracing::debug!(
                artifact = %artifact.display(),
                "cached guest has no checksum; compiling it again"
            ),
            Verdict::Bad(why) => tracing::warn!(
                artifact = %artifact.display(),
                "cached guest not used ({why}); compiling it again"
            ),
        }
        let start = Instant::now();
        let bytes = match source.bytes {
            Some(bytes) => bytes,
            None => {
                // The recorded hash named an artifact that is not there:
                // compile what the file holds now, with its own engine and
                // under its own key.
                let bytes = read_guest(path)?;
                if window::wants_window(&bytes) != window {
                    window = !window;
                    engine = compiling_engine(checks, window)?;
                }
                let key = cache_key(&engine, &blake3::hash(&bytes));
                artifact = self.dir.join(format!("{key}.cwasm"));
                bytes
            }
        };
        let component = componentize(path, &bytes)?;
        let compiled = engine
            .precompile_component(&component)
            .map_err(|e| invalid(path, e))?;
        check_world(path, &engine, &compiled)?;
        artifact::publish(&self.dir, &artifact, &compiled)?;
        let compile_time = start.elapsed();
        tracing::debug!(artifact = %artifact.display(), ?compile_time, "compiled");
        Ok(CompiledGuest {
            source: path.to_path_buf(),
            artifact,
            compile_time: Some(compile_time),
            window,
        })
    }
}

/// The compiling engine for a guest ([`crate::engine::engine`]).
#[cfg(feature = "compiler")]
fn compiling_engine(checks: Checks, window: bool) -> Result<Engine, LoadError> {
    crate::engine::engine(checks, window).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

/// [`Cache::load`] in a build without the `compiler` feature (the
/// runtime-only worker's): it maps artifacts a compiling build made and
/// never loads a guest itself, so this only says so.
#[cfg(not(feature = "compiler"))]
impl Cache {
    pub(crate) fn load_for(
        &self,
        path: &Path,
        _checks: Checks,
    ) -> Result<CompiledGuest, LoadError> {
        Err(LoadError::Engine(format!(
            "{}: this build of mpwasm has no compiler (its `compiler` feature is off)",
            path.display()
        )))
    }
}

fn read_guest(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_GUEST_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_GUEST_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(feature = "compiler")]
/// The guest's content hash + everything the compiled artifact depends on.
fn cache_key(engine: &Engine, content: &blake3::Hash) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut h = blake3::Hasher::new();
    h.update(content.as_bytes());
    h.update(concat!("mpwasm ", env!("CARGO_PKG_VERSION"), "\0").as_bytes());
    h.update(&compat.finish().to_le_bytes());
    h.update(wasmtime_version().as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(feature = "compiler")]
/// The wasmtime release this binary links (part of the cache key).
fn wasmtime_version() -> &'static str {
    "wasmtime 48.0.8"
}

#[cfg(feature = "compiler")]
/// A core module becomes a component (with the preview1 adapter); a
/// component passes through.
pub(crate) fn componentize(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    // Byte 4..8: version and layer. Core modules are version 1, layer 0.
    let is_core = bytes.get(4..8) == Some(&[1, 0, 0, 0]);
    if !is_core {
        return Ok(bytes.to_vec());
    }
    // Validate first: wit-component assumes well-formed sections and can
    // panic on a truncated one.
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let rewritten;
    let bytes = if window::wants_window(bytes) {
        rewritten = window::rewrite(bytes).map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            reason: format!("cannot give it a window for shared regions: {e}"),
        })?;
        &rewritten[..]
    } else {
        bytes
    };
    use wasi_preview1_component_adapter_provider as adapter;
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| {
            e.validate(true).adapter(
                adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|mut e| e.encode())
        .map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            reason: one_line(&format!("{e:#}")),
        })
}

#[cfg(feature = "compiler")]
/// Checks that the component exports the task dispatcher, imports only what
/// this host provides, and links with a worker's linker.
fn check_world(path: &Path, engine: &Engine, compiled: &[u8]) -> Result<(), LoadError> {
    // SAFETY: `compiled` was produced just now by `precompile_component` on
    // an engine with the same configuration.
    let component = unsafe { Component::deserialize(engine, compiled) }
        .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    let ty = component.component_type();
    let wrong = |reason: String| LoadError::WrongWorld {
        path: path.to_path_buf(),
        reason,
    };
    let exports_tasks = ty.exports(engine).any(|(name, item)| {
        name == TASKS_EXPORT && matches!(item.ty, ComponentItem::ComponentInstance(_))
    });
    if !exports_tasks {
        return Err(wrong(format!(
            "it does not export `{TASKS_EXPORT}` (build it with the mpwasm-guest SDK)"
        )));
    }
    if let Some((name, _)) = ty
        .imports(engine)
        .find(|(name, _)| !PROVIDED_IMPORTS.iter().any(|p| name.starts_with(p)))
    {
        return Err(wrong(format!(
            "it imports `{name}`, which this version of mpwasm does not provide"
        )));
    }
    // Link it as a worker will, so that an import no worker provides (a
    // `wasi:` interface other than the CLI world's, e.g. `wasi:http`) is
    // refused now rather than at every worker start.
    crate::worker::child::link(engine, &component)
        .map(drop)
        .map_err(|e| {
            wrong(format!(
                "a worker cannot link it: {}",
                one_line(&format!("{e:#}"))
            ))
        })
}

#[cfg(feature = "compiler")]
fn invalid(path: &Path, e: wasmtime::Error) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        reason: one_line(&format!("{e:#}")),
    }
}

#[cfg(feature = "compiler")]
/// Folds a multi-line error chain into one line.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
