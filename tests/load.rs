//! Loading guests: bad files fail with one line and exit 2; the compile
//! cache is reused.

mod common;
use common::*;

fn assert_one_line_exit_2(out: &std::process::Output, file: &std::path::Path, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(
        err.contains(&file.display().to_string()),
        "file not named: {err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_file_that_is_not_wasm_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.wasm");
    std::fs::write(&f, "hello, not wasm\n").unwrap();
    for cmd in ["pool", "compile", "inspect"] {
        let out = run_mpwasm(&[cmd, f.to_str().unwrap()], "1\n");
        assert_one_line_exit_2(&out, &f, "not a WebAssembly file");
    }
}

#[test]
fn a_truncated_guest_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(guest("pool_square")).unwrap();
    let f = dir.path().join("truncated.wasm");
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    let out = run_mpwasm(&["pool", f.to_str().unwrap()], "1\n");
    assert_one_line_exit_2(&out, &f, "invalid WebAssembly");
}

#[test]
fn a_wasm_for_another_world_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // (module (func (export "hello"))): valid wasm, but no mpwasm exports.
    let module: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // func 0 has type 0
        0x07, 0x09, 0x01, 0x05, b'h', b'e', b'l', b'l', b'o', 0x00, 0x00, // export "hello"
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
    ];
    let f = dir.path().join("other-world.wasm");
    std::fs::write(&f, module).unwrap();
    let out = run_mpwasm(&["pool", f.to_str().unwrap()], "1\n");
    assert_one_line_exit_2(&out, &f, "not an mpwasm guest");
}

#[test]
fn a_missing_file_exits_2_with_one_line() {
    let f = std::path::PathBuf::from("/nonexistent/guest.wasm");
    let out = run_mpwasm(&["pool", f.to_str().unwrap()], "");
    assert_one_line_exit_2(&out, &f, "cannot read");
}

#[test]
fn the_cache_is_reused_second_start_does_not_compile() {
    let cache = cache_dir();
    let sq = guest("pool_square");
    let first = run_mpwasm_in(cache.path(), &["compile", sq.to_str().unwrap()], "");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with("compiled "),
        "{}",
        stdout(&first)
    );
    let files = || -> Vec<_> {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let artifact: Vec<_> = files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifact.len(), 1, "one artifact: {:?}", files());
    assert_eq!(files().len(), 3, "its check file, sources/: {:?}", files());
    assert!(cache.path().join("sources").is_dir(), "{:?}", files());
    let mtime = std::fs::metadata(&artifact[0]).unwrap().modified().unwrap();

    let second = run_mpwasm_in(cache.path(), &["compile", sq.to_str().unwrap()], "");
    assert!(
        stdout(&second).starts_with("cached "),
        "{}",
        stdout(&second)
    );
    // A pool start also maps the cached artifact instead of compiling.
    let pooled = run_mpwasm_in(cache.path(), &["pool", sq.to_str().unwrap()], "3\n");
    assert_eq!(stdout(&pooled), "9\n");
    assert_eq!(
        std::fs::metadata(&artifact[0]).unwrap().modified().unwrap(),
        mtime
    );
    assert_eq!(files().len(), 3, "{:?}", files());

    // And through the host crate: the second load reports no compile time.
    let lib_cache = mpwasm::Cache::new(cache.path());
    assert!(lib_cache.load(&sq).unwrap().compile_time().is_none());
}

#[test]
fn inspect_lists_the_tasks() {
    let out = run_mpwasm(&["inspect", guest("primes").to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "count_primes\n");
}

#[test]
fn every_truncation_of_a_guest_is_a_load_error_not_a_panic() {
    let bytes = std::fs::read(guest("pool_square")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = mpwasm::Cache::new(dir.path().join("cache"));
    let f = dir.path().join("cut.wasm");
    let step = (bytes.len() / 97).max(1);
    for len in (0..bytes.len()).step_by(step) {
        std::fs::write(&f, &bytes[..len]).unwrap();
        let err = cache.load(&f).expect_err("a truncated guest must not load");
        assert!(
            matches!(
                err,
                mpwasm::LoadError::NotWasm { .. } | mpwasm::LoadError::Invalid { .. }
            ),
            "cut at {len}: {err}"
        );
    }
}

/// A component exporting mpwasm's task interface (empty: the check under
/// test comes first) and importing `import`, an interface with one function
/// `handle: func()`; built here with wasm-encoder.
fn component_importing(import: &str) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
        ComponentInstanceSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
        PrimitiveValType,
    };
    let mut instance = InstanceType::new();
    instance
        .ty()
        .function()
        .params([] as [(&str, PrimitiveValType); 0])
        .result(None);
    instance.export("handle", ComponentTypeRef::Func(0));
    let mut types = ComponentTypeSection::new();
    types.instance(&instance);
    let mut imports = ComponentImportSection::new();
    imports.import(import, ComponentTypeRef::Instance(0));
    // Instance 0 is the import; instance 1, exported, has nothing in it.
    let mut instances = ComponentInstanceSection::new();
    instances.export_items::<&str, _>([]);
    let mut exports = ComponentExportSection::new();
    exports.export(
        "mpwasm:runtime/tasks@0.1.0",
        ComponentExportKind::Instance,
        1,
        None,
    );
    let mut component = Component::new();
    component
        .section(&types)
        .section(&imports)
        .section(&instances)
        .section(&exports);
    component.finish()
}

/// Issue 9, item 11: a guest importing a `wasi:` interface no worker
/// provides (here `wasi:http`, as a JavaScript component might) is refused
/// by `mpwasm compile` with exit 2 naming the import, and is not cached;
/// before, it compiled and cached, then failed at every worker start.
#[test]
fn a_guest_importing_what_no_worker_provides_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_dir();
    let f = dir.path().join("http_guest.wasm");
    let import = "wasi:http/outgoing-handler@0.2.0";
    std::fs::write(&f, component_importing(import)).unwrap();
    for cmd in ["compile", "pool", "run"] {
        let out = run_mpwasm_in(cache.path(), &[cmd, f.to_str().unwrap()], "1\n");
        assert_one_line_exit_2(&out, &f, import);
    }
    let cached = std::fs::read_dir(cache.path()).map_or(0, |d| d.count());
    assert_eq!(cached, 0, "a guest that cannot be linked was cached");
}
