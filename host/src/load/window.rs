//! The load-time rewrite that gives a guest its *window*: a second memory
//! for shared regions, and atomic helper functions operating on it.
//!
//! Rust on `wasm32-wasip1` cannot emit atomic instructions on stable (the
//! target lowers atomics to plain loads and stores), and wit-component
//! forbids an adapter that owns a memory. So the SDK imports its atomics as
//! ordinary functions from the reserved module [`MODULE`]
//! (`mpwasm:window`), and before componentization this rewrite
//!
//! 1. removes those imports and appends, in their place, local functions
//!    doing the operation with a real atomic instruction (`load`, `store`,
//!    `add`, `xchg`, `cmpxchg` on 8 to 64 bits), or a plain store (`put`,
//!    for data cells, as CPython's `ctypes` stores; `copy_in`/`copy_out`
//!    between the guest's own memory and the window), renumbering every
//!    function index of the module;
//! 2. appends the window itself: an unexported, non-shared memory of
//!    [`WINDOW_PAGES`] pages (min = max), which no guest code but those
//!    helpers can name. The host backs it with a `PROT_NONE` reservation
//!    and maps each region the process holds at a free offset of it
//!    ([`crate::sys::window`]); an access anywhere else traps.
//!
//! A call into a helper is a core call inside one instance: a few
//! nanoseconds, where a host call costs ~165 ns.
//!
//! A module that does not import from [`MODULE`] is left untouched (and
//! compiled by the ordinary engine). One that does must define exactly one
//! memory of its own, not of the window's type, and import nothing else from
//! [`MODULE`] than the helpers below, with their exact signatures.

use std::collections::HashMap;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{Instruction, MemArg, ValType};
use wasmparser::{Parser, Payload, TypeRef};

/// The reserved import module the loader replaces.
pub(crate) const MODULE: &str = "mpwasm:window";

/// Size of the window, in 64 KiB pages: 4 GiB less one page, which no
/// guest's own memory has as both minimum and maximum (the host tells the
/// window from memory 0 by this type).
pub(crate) const WINDOW_PAGES: u64 = 65535;

/// Why a module cannot be given a window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RewriteError(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, RewriteError> {
    Err(RewriteError(why.into()))
}

/// The helpers a guest may import from [`MODULE`], by name.
fn helper(name: &str) -> Option<Helper> {
    let width = |s: &str| match s {
        "8" => Some(Width::W8),
        "16" => Some(Width::W16),
        "32" => Some(Width::W32),
        "64" => Some(Width::W64),
        _ => None,
    };
    let (op, rest) = [
        ("load", Op::Load),
        ("store", Op::Store),
        ("put", Op::Put),
        ("add", Op::Add),
        ("xchg", Op::Xchg),
        ("cmpxchg", Op::Cmpxchg),
    ]
    .into_iter()
    .find_map(|(prefix, op)| name.strip_prefix(prefix).map(|rest| (op, rest)))
    .unzip();
    match (name, op, rest.and_then(width)) {
        ("copy_in", ..) => Some(Helper::CopyIn),
        ("copy_out", ..) => Some(Helper::CopyOut),
        (_, Some(op), Some(w)) => Some(Helper::Atomic(op, w)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Load,
    Store,
    /// A plain (non-atomic) store: what CPython's `ctypes` does to a
    /// shared value, without the fence a sequentially consistent store
    /// costs. Still one instruction, so a naturally aligned value is never
    /// seen half-written.
    Put,
    Add,
    Xchg,
    Cmpxchg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    W8,
    W16,
    W32,
    W64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    Atomic(Op, Width),
    /// `copy_in(window_offset, own_ptr, len)`.
    CopyIn,
    /// `copy_out(own_ptr, window_offset, len)`.
    CopyOut,
}

impl Helper {
    /// The signature the import must have.
    fn signature(self) -> (Vec<ValType>, Vec<ValType>) {
        use ValType::{I32, I64};
        match self {
            Helper::CopyIn | Helper::CopyOut => (vec![I32, I32, I32], vec![]),
            Helper::Atomic(op, w) => {
                let v = if w == Width::W64 { I64 } else { I32 };
                match op {
                    Op::Load => (vec![I32], vec![v]),
                    Op::Store | Op::Put => (vec![I32, v], vec![]),
                    Op::Add | Op::Xchg => (vec![I32, v], vec![v]),
                    Op::Cmpxchg => (vec![I32, v, v], vec![v]),
                }
            }
        }
    }

    /// The body, operating on memory `window` (the guest's own is 0).
    fn body(self, window: u32) -> wasm_encoder::Function {
        let mut f = wasm_encoder::Function::new([]);
        let params = self.signature().0.len() as u32;
        for i in 0..params {
            f.instruction(&Instruction::LocalGet(i));
        }
        f.instruction(&match self {
            Helper::CopyIn => Instruction::MemoryCopy {
                dst_mem: window,
                src_mem: 0,
            },
            Helper::CopyOut => Instruction::MemoryCopy {
                dst_mem: 0,
                src_mem: window,
            },
            Helper::Atomic(op, w) => atomic(op, w, window),
        });
        f.instruction(&Instruction::End);
        f
    }
}

/// The atomic instruction of `op` on `w` bits of memory `window`.
fn atomic(op: Op, w: Width, window: u32) -> Instruction<'static> {
    use Instruction as I;
    let align = match w {
        Width::W8 => 0,
        Width::W16 => 1,
        Width::W32 => 2,
        Width::W64 => 3,
    };
    let m = MemArg {
        offset: 0,
        align,
        memory_index: window,
    };
    match (op, w) {
        (Op::Load, Width::W8) => I::I32AtomicLoad8U(m),
        (Op::Load, Width::W16) => I::I32AtomicLoad16U(m),
        (Op::Load, Width::W32) => I::I32AtomicLoad(m),
        (Op::Load, Width::W64) => I::I64AtomicLoad(m),
        (Op::Store, Width::W8) => I::I32AtomicStore8(m),
        (Op::Store, Width::W16) => I::I32AtomicStore16(m),
        (Op::Store, Width::W32) => I::I32AtomicStore(m),
        (Op::Store, Width::W64) => I::I64AtomicStore(m),
        (Op::Put, Width::W8) => I::I32Store8(m),
        (Op::Put, Width::W16) => I::I32Store16(m),
        (Op::Put, Width::W32) => I::I32Store(m),
        (Op::Put, Width::W64) => I::I64Store(m),
        (Op::Add, Width::W8) => I::I32AtomicRmw8AddU(m),
        (Op::Add, Width::W16) => I::I32AtomicRmw16AddU(m),
        (Op::Add, Width::W32) => I::I32AtomicRmwAdd(m),
        (Op::Add, Width::W64) => I::I64AtomicRmwAdd(m),
        (Op::Xchg, Width::W8) => I::I32AtomicRmw8XchgU(m),
        (Op::Xchg, Width::W16) => I::I32AtomicRmw16XchgU(m),
        (Op::Xchg, Width::W32) => I::I32AtomicRmwXchg(m),
        (Op::Xchg, Width::W64) => I::I64AtomicRmwXchg(m),
        (Op::Cmpxchg, Width::W8) => I::I32AtomicRmw8CmpxchgU(m),
        (Op::Cmpxchg, Width::W16) => I::I32AtomicRmw16CmpxchgU(m),
        (Op::Cmpxchg, Width::W32) => I::I32AtomicRmwCmpxchg(m),
        (Op::Cmpxchg, Width::W64) => I::I64AtomicRmwCmpxchg(m),
    }
}

/// Whether the core module `bytes` imports anything from [`MODULE`] (so it
/// needs [`rewrite`] and the window engine). Malformed input is `false`:
/// validation reports it.
pub(crate) fn wants_window(bytes: &[u8]) -> bool {
    // Core modules only (version 1, layer 0): components pass through.
    if bytes.get(4..8) != Some(&[1, 0, 0, 0]) {
        return false;
    }
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ImportSection(imports)) => {
                return imports
                    .into_imports()
                    .any(|i| i.is_ok_and(|i| i.module == MODULE));
            }
            // Imports come before any of these: there are none.
            Ok(Payload::FunctionSection(_) | Payload::CodeSectionStart { .. }) | Err(_) => {
                return false
            }
            Ok(_) => {}
        }
    }
    false
}

/// What the first pass learned about the module.
struct Plan {
    /// Per original function import: `Some(helper)` if it is replaced.
    imports: Vec<Option<Helper>>,
    /// Function imports kept.
    kept: u32,
    /// Functions the module defines.
    defined: u32,
    /// Memories the module defines (must be 1).
    memories: u32,
}

impl Plan {
    fn of(bytes: &[u8]) -> Result<Plan, RewriteError> {
        let mut types: Vec<Option<wasmparser::FuncType>> = Vec::new();
        let mut plan = Plan {
            imports: Vec::new(),
            kept: 0,
            defined: 0,
            memories: 0,
        };
        let bad = |e: wasmparser::BinaryReaderError| RewriteError(e.to_string());
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(bad)? {
                Payload::TypeSection(section) => {
                    for group in section {
                        for sub in group.map_err(bad)?.into_types() {
                            types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        plan.import(import.map_err(bad)?, &types)?;
                    }
                }
                Payload::FunctionSection(section) => plan.defined = section.count(),
                Payload::MemorySection(section) => {
                    plan.memories = section.count();
                    for memory in section {
                        let m = memory.map_err(bad)?;
                        if m.initial == WINDOW_PAGES && m.maximum == Some(WINDOW_PAGES) {
                            return refuse("it defines a memory of the window's reserved size");
                        }
                    }
                }
                _ => {}
            }
        }
        if plan.memories != 1 {
            return refuse(format!(
                "it imports from `{MODULE}` but defines {} memories (exactly one is needed)",
                plan.memories
            ));
        }
        Ok(plan)
    }

    fn import(
        &mut self,
        import: wasmparser::Import<'_>,
        types: &[Option<wasmparser::FuncType>],
    ) -> Result<(), RewriteError> {
        let reserved = import.module == MODULE;
        match import.ty {
            TypeRef::Func(ty) if reserved => {
                let Some(h) = helper(import.name) else {
                    return refuse(format!("`{MODULE}` has no function `{}`", import.name));
                };
                let (params, results) = h.signature();
                let actual = types.get(ty as usize).and_then(Option::as_ref);
                let wanted = |want: &[ValType], got: &[wasmparser::ValType]| {
                    want.len() == got.len()
                        && want.iter().zip(got).all(|(w, g)| {
                            matches!(
                                (w, g),
                                (ValType::I32, wasmparser::ValType::I32)
                                    | (ValType::I64, wasmparser::ValType::I64)
                            )
                        })
                };
                if !actual
                    .is_some_and(|f| wanted(&params, f.params()) && wanted(&results, f.results()))
                {
                    return refuse(format!(
                        "`{MODULE}` function `{}` is imported with the wrong signature",
                        import.name
                    ));
                }
                self.imports.push(Some(h));
            }
            TypeRef::Func(_) | TypeRef::FuncExact(_) if !reserved => {
                self.imports.push(None);
                self.kept += 1;
            }
            TypeRef::Memory(_) => return refuse("it imports its memory"),
            _ if reserved => {
                return refuse(format!("only functions may be imported from `{MODULE}`"))
            }
            _ => {}
        }
        Ok(())
    }

    /// The helpers, in the order they are appended.
    fn helpers(&self) -> impl Iterator<Item = Helper> + '_ {
        self.imports.iter().filter_map(|h| *h)
    }
}

/// The reencoder: drops the reserved imports, renumbers functions, appends
/// the helpers and the window.
struct Rewriter {
    plan: Plan,
    /// Original function index → new one.
    map: HashMap<u32, u32>,
    /// Type index of each helper, in order.
    helper_types: Vec<u32>,
}

impl Reencode for Rewriter {
    type Error = RewriteError;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<RewriteError>> {
        match self.map.get(&func) {
            Some(&new) => Ok(new),
            // A defined function: after the kept imports.
            None => Ok(func - (self.plan.imports.len() as u32 - self.plan.kept)),
        }
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error<RewriteError>> {
        for import in section.into_imports() {
            let import = import?;
            if import.module == MODULE {
                if let TypeRef::Func(ty) = import.ty {
                    self.helper_types.push(ty);
                }
                continue;
            }
            self.parse_import(imports, import)?;
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), reencode::Error<RewriteError>> {
        reencode::utils::parse_function_section(self, functions, section)?;
        for &ty in &self.helper_types {
            functions.function(ty);
        }
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut wasm_encoder::MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Result<(), reencode::Error<RewriteError>> {
        reencode::utils::parse_memory_section(self, memories, section)?;
        memories.memory(wasm_encoder::MemoryType {
            minimum: WINDOW_PAGES,
            maximum: Some(WINDOW_PAGES),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), reencode::Error<RewriteError>> {
        reencode::utils::parse_code_section(self, code, section)?;
        for h in self.plan.helpers().collect::<Vec<_>>() {
            code.function(&h.body(self.plan.memories));
        }
        Ok(())
    }

    fn parse_custom_name_subsection(
        &mut self,
        names: &mut wasm_encoder::NameSection,
        section: wasmparser::Name<'_>,
    ) -> Result<(), reencode::Error<RewriteError>> {
        // Function names must stay in increasing index order: renumbered
        // helpers move to the end.
        let wasmparser::Name::Function(map) = section else {
            return reencode::utils::parse_custom_name_subsection(self, names, section);
        };
        let mut all = Vec::new();
        for naming in map {
            let naming = naming?;
            all.push((self.function_index(naming.index)?, naming.name));
        }
        all.sort_by_key(|(i, _)| *i);
        all.dedup_by_key(|(i, _)| *i);
        let mut out = wasm_encoder::NameMap::new();
        for (i, name) in all {
            out.append(i, name);
        }
        names.functions(&out);
        Ok(())
    }
}

/// Gives the core module `bytes` its window (see the module docs). The input
/// must already be valid; the output is validated.
///
/// # Errors
///
/// A [`RewriteError`] saying why the module cannot have one.
pub(crate) fn rewrite(bytes: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let plan = Plan::of(bytes)?;
    if plan.defined == 0 {
        return refuse("it defines no function");
    }
    let mut map = HashMap::new();
    let (mut kept, mut helpers) = (0u32, 0u32);
    let first_helper = plan.kept + plan.defined;
    for (i, h) in plan.imports.iter().enumerate() {
        let new = match h {
            Some(_) => first_helper + post_inc(&mut helpers),
            None => post_inc(&mut kept),
        };
        map.insert(i as u32, new);
    }
    let mut rewriter = Rewriter {
        plan,
        map,
        helper_types: Vec::new(),
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), bytes)
        .map_err(|e| match e {
            reencode::Error::UserError(e) => e,
            e => RewriteError(e.to_string()),
        })?;
    let out = module.finish();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .map_err(|e| RewriteError(format!("the rewritten module is invalid: {e}")))?;
    Ok(out)
}

fn post_inc(n: &mut u32) -> u32 {
    *n += 1;
    *n - 1
}

#[cfg(test)]
pub(crate) mod test;
