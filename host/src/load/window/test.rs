#![cfg(test)]

use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, ImportSection, Instruction,
    MemorySection, MemoryType, Module, NameMap, NameSection, TypeSection, ValType,
};

use super::{rewrite, wants_window, MODULE, WINDOW_PAGES};

/// A guest-like core module: `env.f`, then the given window imports, then
/// `bump(at, v) = add32(at, v)`, `peek(at) = load32(at)`,
/// `cas(at, e, n) = cmpxchg32(...)`, `poke(at, v) = put32(at, v)`,
/// `out(dst, at, len) = copy_out(...)`,
/// `own(p) = i32.load(p)` of its own memory, `calls_f()`, and a name
/// section naming every function.
pub(crate) fn guest_module(memories: &[MemoryType], window_imports: &[(&str, u32)]) -> Vec<u8> {
    use ValType::I32;
    let mut types = TypeSection::new();
    types.ty().function([I32], [I32]); // 0: load32, peek, own
    types.ty().function([I32, I32], [I32]); // 1: add32, bump
    types.ty().function([], []); // 2: env.f, calls_f
    types.ty().function([I32, I32, I32], [I32]); // 3: cmpxchg32, cas
    types.ty().function([I32, I32, I32], []); // 4: copy_out, out
    types.ty().function([I32, I32], []); // 5: put32, poke
    let mut imports = ImportSection::new();
    imports.import("env", "f", wasm_encoder::EntityType::Function(2));
    for (name, ty) in window_imports {
        imports.import(MODULE, name, wasm_encoder::EntityType::Function(*ty));
    }
    let index = |name: &str| {
        1 + window_imports
            .iter()
            .position(|(n, _)| *n == name)
            .expect("the test imports it") as u32
    };
    let first = 1 + window_imports.len() as u32;
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut exports = ExportSection::new();
    let mut names = NameMap::new();
    names.append(0, "f");
    for (i, (name, _)) in window_imports.iter().enumerate() {
        names.append(1 + i as u32, name);
    }
    let mut add = |name: &str, ty: u32, params: u32, body: &[Instruction<'_>]| {
        let n = first + functions.len();
        functions.function(ty);
        let mut f = Function::new([]);
        for i in 0..params {
            f.instruction(&Instruction::LocalGet(i));
        }
        for ins in body {
            f.instruction(ins);
        }
        f.instruction(&Instruction::End);
        code.function(&f);
        exports.export(name, ExportKind::Func, n);
        names.append(n, name);
    };
    let has = |name: &str| window_imports.iter().any(|(n, _)| *n == name);
    if has("add32") {
        add("bump", 1, 2, &[Instruction::Call(index("add32"))]);
    }
    if has("load32") {
        add("peek", 0, 1, &[Instruction::Call(index("load32"))]);
    }
    if has("cmpxchg32") {
        add("cas", 3, 3, &[Instruction::Call(index("cmpxchg32"))]);
    }
    if has("put32") {
        add("poke", 5, 2, &[Instruction::Call(index("put32"))]);
    }
    if has("copy_out") {
        add("out", 4, 3, &[Instruction::Call(index("copy_out"))]);
    }
    add(
        "own",
        0,
        1,
        &[Instruction::I32Load(wasm_encoder::MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        })],
    );
    add("calls_f", 2, 0, &[Instruction::Call(0)]);
    let mut memory = MemorySection::new();
    for m in memories {
        memory.memory(*m);
    }
    exports.export("memory", ExportKind::Memory, 0);
    let mut name_section = NameSection::new();
    name_section.functions(&names);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&memory)
        .section(&exports)
        .section(&code)
        .section(&name_section);
    module.finish()
}

pub(crate) fn one_page() -> MemoryType {
    MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    }
}

pub(crate) const ALL: &[(&str, u32)] = &[
    ("add32", 1),
    ("load32", 0),
    ("cmpxchg32", 3),
    ("copy_out", 4),
    ("put32", 5),
];

fn memories_of(bytes: &[u8]) -> Vec<wasmparser::MemoryType> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(s) = payload.unwrap() {
            out.extend(s.into_iter().map(Result::unwrap));
        }
    }
    out
}

fn imports_of(bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ImportSection(s) = payload.unwrap() {
            for i in s.into_imports() {
                let i = i.unwrap();
                out.push((i.module.to_string(), i.name.to_string()));
            }
        }
    }
    out
}

#[test]
fn a_module_without_window_imports_does_not_want_one() {
    let plain = guest_module(&[one_page()], &[]);
    assert!(!wants_window(&plain));
    assert!(wants_window(&guest_module(&[one_page()], ALL)));
    assert!(!wants_window(b"\0asm\x0d\0\x01\0"), "a component");
    assert!(!wants_window(b"garbage"));
}

#[test]
fn rewrite_replaces_the_imports_and_appends_the_window() {
    let out = rewrite(&guest_module(&[one_page()], ALL)).unwrap();
    assert_eq!(imports_of(&out), [("env".to_string(), "f".to_string())]);
    let memories = memories_of(&out);
    assert_eq!(memories.len(), 2);
    assert_eq!(memories[1].initial, WINDOW_PAGES);
    assert_eq!(memories[1].maximum, Some(WINDOW_PAGES));
    assert!(!memories[1].shared);
    // Exports still name the functions they named, renumbered.
    let mut names = std::collections::HashMap::new();
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&out) {
        match payload.unwrap() {
            wasmparser::Payload::ExportSection(s) => {
                for e in s {
                    let e = e.unwrap();
                    exports.push((e.name.to_string(), e.index));
                }
            }
            wasmparser::Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(n) = c.as_known() {
                    for sub in n {
                        if let wasmparser::Name::Function(map) = sub.unwrap() {
                            for naming in map {
                                let naming = naming.unwrap();
                                names.insert(naming.index, naming.name.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (name, index) in exports.iter().filter(|(n, _)| n != "memory") {
        assert_eq!(names.get(index), Some(name), "export {name} → {index}");
    }
    // The helpers keep their import names, after the module's functions.
    assert_eq!(names.get(&0).map(String::as_str), Some("f"));
    assert_eq!(names.get(&8).map(String::as_str), Some("add32"));
}

#[test]
fn unknown_helpers_and_wrong_signatures_are_refused() {
    let unknown = guest_module(&[one_page()], &[("add32", 1), ("frobnicate", 0)]);
    let e = rewrite(&unknown).unwrap_err();
    assert!(e.to_string().contains("no function `frobnicate`"), "{e}");
    // load32 typed (i32, i32) -> i32.
    let wrong = guest_module(&[one_page()], &[("add32", 1), ("load32", 1)]);
    let e = rewrite(&wrong).unwrap_err();
    assert!(e.to_string().contains("wrong signature"), "{e}");
}

#[test]
fn modules_without_exactly_one_memory_or_with_the_windows_type_are_refused() {
    let two = guest_module(&[one_page(), one_page()], ALL);
    assert!(rewrite(&two)
        .unwrap_err()
        .to_string()
        .contains("2 memories"));
    let squatter = MemoryType {
        minimum: WINDOW_PAGES,
        maximum: Some(WINDOW_PAGES),
        ..one_page()
    };
    let e = rewrite(&guest_module(&[squatter], ALL)).unwrap_err();
    assert!(e.to_string().contains("reserved size"), "{e}");
}

#[test]
fn rewriting_the_real_sdk_guest_keeps_it_valid() {
    // Guests built by scripts/build-guests.sh; absent in a bare checkout.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/guests/value_counter.wasm"
    );
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("skipped: {path} not built");
        return;
    };
    assert!(wants_window(&bytes));
    let out = rewrite(&bytes).unwrap();
    assert!(imports_of(&out).iter().all(|(m, _)| m != MODULE));
    assert_eq!(memories_of(&out).len(), 2);
}
