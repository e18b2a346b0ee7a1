//! `mpwasm:runtime/manager`: `Manager().list()`, `.dict()`, `.Namespace()`.
//!
//! Hops of `shared_list.append("hello")`:
//! 1. the guest encodes the value and calls the host function in its worker;
//! 2. the worker sends `Call::Manager` to the parent;
//! 3. the broker ([`apply`]) changes the container, which lives in the
//!    parent: it outlives every worker, including one killed mid-use.
//!
//! Values and keys are bincode bytes the broker stores as they are; list
//! indices are bincode `i64`s, negative counting from the end as in Python.
//! Equality (`contains`, dict keys) is equality of encodings, which for
//! values of one serde type is equality of values.

use std::sync::{Arc, Mutex};

use serde_bytes::ByteBuf;
use wasmtime::component::Resource;

use super::{unexpected, HostResult};
use crate::bindings::{manager, types};
use crate::broker::budget::Budget;
use crate::broker::{Answer, Broker, Object};
use crate::limits::MAX_MANAGER_BYTES;
use crate::wire::{Call, CallError, Container, ManagerOp, Reply};
use crate::worker::child::WorkerState;

// ---------------------------------------------------------------------------
// The worker's side: every operation is an upcall.

/// A proxy in a guest's resource table: the broker's id.
pub struct ProxyHandle(u64);

impl WorkerState {
    fn manager(&mut self, handle: &Resource<ProxyHandle>, op: ManagerOp) -> HostResult<Reply> {
        let id = self.table.get(handle)?.0;
        Ok(self
            .upcall(Call::Manager { id, op }, &[])?
            .map(|(reply, _)| reply))
    }
}

/// The reply of the expected variant, or the guest's error.
macro_rules! expect_reply {
    ($answer:expr, $pattern:pat => $value:expr) => {
        Ok(match $answer? {
            Ok($pattern) => Ok($value),
            Ok(other) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    };
}

impl manager::HostProxy for WorkerState {
    fn len(&mut self, h: Resource<ProxyHandle>) -> HostResult<u64> {
        expect_reply!(self.manager(&h, ManagerOp::Len), Reply::Len(n) => n)
    }

    fn append(&mut self, h: Resource<ProxyHandle>, value: Vec<u8>) -> HostResult<()> {
        expect_reply!(self.manager(&h, ManagerOp::Append(value.into())), Reply::Ok => ())
    }

    fn extend(&mut self, h: Resource<ProxyHandle>, values: Vec<Vec<u8>>) -> HostResult<()> {
        let values = values.into_iter().map(ByteBuf::from).collect();
        expect_reply!(self.manager(&h, ManagerOp::Extend(values)), Reply::Ok => ())
    }

    fn insert(&mut self, h: Resource<ProxyHandle>, index: i64, value: Vec<u8>) -> HostResult<()> {
        expect_reply!(self.manager(&h, ManagerOp::Insert(index, value.into())), Reply::Ok => ())
    }

    fn get(&mut self, h: Resource<ProxyHandle>, key: Vec<u8>) -> HostResult<Option<Vec<u8>>> {
        expect_reply!(self.manager(&h, ManagerOp::Get(key.into())), Reply::Value(v) => v.map(ByteBuf::into_vec))
    }

    fn set(&mut self, h: Resource<ProxyHandle>, key: Vec<u8>, value: Vec<u8>) -> HostResult<()> {
        expect_reply!(self.manager(&h, ManagerOp::Set(key.into(), value.into())), Reply::Ok => ())
    }

    fn pop(&mut self, h: Resource<ProxyHandle>, key: Option<Vec<u8>>) -> HostResult<Vec<u8>> {
        let op = ManagerOp::Pop(key.map(ByteBuf::from));
        expect_reply!(self.manager(&h, op), Reply::Value(Some(v)) => v.into_vec())
    }

    fn contains(&mut self, h: Resource<ProxyHandle>, key: Vec<u8>) -> HostResult<bool> {
        expect_reply!(self.manager(&h, ManagerOp::Contains(key.into())), Reply::Bool(b) => b)
    }

    fn items(&mut self, h: Resource<ProxyHandle>) -> HostResult<Vec<(Vec<u8>, Vec<u8>)>> {
        expect_reply!(
            self.manager(&h, ManagerOp::Items),
            Reply::Items(items) => items.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())).collect()
        )
    }

    fn clear(&mut self, h: Resource<ProxyHandle>) -> HostResult<()> {
        expect_reply!(self.manager(&h, ManagerOp::Clear), Reply::Ok => ())
    }

    fn keep(&mut self, h: Resource<ProxyHandle>, tokens: Vec<u64>) -> HostResult<()> {
        if tokens.len() > MAX_KEEP_TOKENS {
            return Ok(Err(types::Error::Limit(format!(
                "at most {MAX_KEEP_TOKENS} handles in one stored value"
            ))));
        }
        expect_reply!(self.manager(&h, ManagerOp::Keep(tokens)), Reply::Ok => ())
    }

    fn share(&mut self, h: Resource<ProxyHandle>) -> HostResult<u64> {
        let id = self.table.get(&h)?.0;
        super::token(self.upcall(Call::Share { id }, &[])?)
    }

    fn drop(&mut self, h: Resource<ProxyHandle>) -> wasmtime::Result<()> {
        let id = self.table.delete(h)?.0;
        self.upcall(Call::Release { id }, &[])?.ok();
        Ok(())
    }
}

impl WorkerState {
    fn proxy_reply(&mut self, call: Call) -> HostResult<Resource<ProxyHandle>> {
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Proxy { id, .. }, _)) => Ok(self.table.push(ProxyHandle(id))?),
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }
}

impl manager::Host for WorkerState {
    fn create(&mut self, container: manager::Container) -> HostResult<Resource<ProxyHandle>> {
        let container = match container {
            manager::Container::List => Container::List,
            manager::Container::Dict => Container::Dict,
            manager::Container::Namespace => Container::Namespace,
        };
        self.proxy_reply(Call::ManagerCreate { container })
    }

    fn adopt(&mut self, cap: u64) -> HostResult<Resource<ProxyHandle>> {
        self.proxy_reply(Call::Adopt { token: cap })
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A container's contents.
enum Data {
    List(Vec<ByteBuf>),
    /// Insertion order, as Python's dict.
    Map(Vec<(ByteBuf, ByteBuf)>),
}

/// A manager container, held by the broker.
pub(crate) struct Proxy {
    container: Container,
    /// The contents, and what they cost: their bytes plus
    /// [`ENTRY_COST`] per entry.
    data: Mutex<(Data, usize)>,
    /// The run's budget, which pays for the contents.
    budget: Arc<Budget>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let cost = self
            .data
            .get_mut()
            .map_or_else(|e| e.into_inner().1, |d| d.1);
        self.budget.give_back(cost as u64);
    }
}

/// What each entry of a list or dict costs beside its bytes (its place in
/// the vector, its buffers' headers): 178 M empty values are not free.
const ENTRY_COST: usize = 48;

impl Proxy {
    /// The reply that gives a process this container (id `id`).
    pub(crate) fn hand_out(&self, id: u64) -> Answer {
        Ok((
            Reply::Proxy {
                id,
                container: self.container,
            },
            Vec::new(),
        ))
    }
}

/// `Call::ManagerCreate`.
pub(crate) fn create(broker: &Broker, caller: u64, container: Container) -> Answer {
    let data = match container {
        Container::List => Data::List(Vec::new()),
        Container::Dict | Container::Namespace => Data::Map(Vec::new()),
    };
    let proxy = Arc::new(Proxy {
        container,
        data: Mutex::new((data, 0)),
        budget: broker.budget().clone(),
    });
    let id = broker.register(Object::Proxy(proxy.clone()), Some(caller))?;
    proxy.hand_out(id)
}

fn decode_index(bytes: &[u8]) -> Result<i64, CallError> {
    match bincode::serde::decode_from_slice::<i64, _>(bytes, bincode::config::standard()) {
        Ok((i, n)) if n == bytes.len() => Ok(i),
        _ => Err(CallError::Other("a list index must be an integer".into())),
    }
}

/// Python's index rules: negative counts from the end; `None` if outside
/// `0..len` (or `0..=len` when `inclusive`, for insert).
fn position(index: i64, len: usize, inclusive: bool) -> Option<usize> {
    let len_i = len as i64;
    let i = if index < 0 { index + len_i } else { index };
    let max = if inclusive { len_i } else { len_i - 1 };
    (0..=max).contains(&i).then_some(i as usize)
}

fn out_of_range() -> CallError {
    CallError::Other("list index out of range".into())
}

/// Most handles one stored value may carry (`keep`).
const MAX_KEEP_TOKENS: usize = 4096;

/// `Call::Manager`.
pub(crate) fn apply(broker: &Broker, caller: u64, id: u64, op: ManagerOp) -> Answer {
    let Object::Proxy(proxy) = broker.get(caller, id)? else {
        return Err(CallError::InvalidHandle);
    };
    match op {
        // The container holds what its values name, as a process holds
        // its handles; clearing it or its end lets go.
        ManagerOp::Keep(tokens) => {
            if tokens.len() > MAX_KEEP_TOKENS {
                return Err(CallError::Limit(format!(
                    "at most {MAX_KEEP_TOKENS} handles in one stored value"
                )));
            }
            broker.keep(id, &tokens)?;
            return Ok((Reply::Ok, Vec::new()));
        }
        ManagerOp::Clear => broker.release_all(id),
        _ => {}
    }
    let mut guard = proxy.data.lock().unwrap_or_else(|e| e.into_inner());
    let (data, bytes) = &mut *guard;
    // The most the operation can add, paid before it runs; what it did
    // not use (or freed) is given back after.
    let added = match &op {
        ManagerOp::Append(v) | ManagerOp::Insert(_, v) => v.len() + ENTRY_COST,
        ManagerOp::Extend(vs) => vs.iter().map(|v| v.len() + ENTRY_COST).sum(),
        ManagerOp::Set(k, v) => k.len() + v.len() + ENTRY_COST,
        _ => 0,
    };
    if bytes.saturating_add(added) > MAX_MANAGER_BYTES {
        return Err(CallError::Limit(format!(
            "a manager container may hold at most {MAX_MANAGER_BYTES} bytes"
        )));
    }
    proxy
        .budget
        .take(added as u64, "a manager container's contents")?;
    let before = *bytes;
    let reply = operate(data, bytes, op, added, proxy.container);
    // Taken: `added`; used: `*bytes - before` (negative when it freed).
    proxy
        .budget
        .give_back((before + added).saturating_sub(*bytes) as u64);
    Ok((reply?, Vec::new()))
}

/// Runs `op` on the contents, keeping their cost in `bytes`.
fn operate(
    data: &mut Data,
    bytes: &mut usize,
    op: ManagerOp,
    added: usize,
    container: Container,
) -> Result<Reply, CallError> {
    Ok(match (data, op) {
        (Data::List(l), ManagerOp::Len) => Reply::Len(l.len() as u64),
        (Data::Map(m), ManagerOp::Len) => Reply::Len(m.len() as u64),
        (Data::List(l), ManagerOp::Append(v)) => {
            *bytes += v.len() + ENTRY_COST;
            l.push(v);
            Reply::Ok
        }
        (Data::List(l), ManagerOp::Extend(vs)) => {
            *bytes += added;
            l.extend(vs);
            Reply::Ok
        }
        (Data::List(l), ManagerOp::Insert(i, v)) => {
            // Python clamps insert positions instead of failing.
            let at = position(i, l.len(), true).unwrap_or(if i < 0 { 0 } else { l.len() });
            *bytes += v.len() + ENTRY_COST;
            l.insert(at, v);
            Reply::Ok
        }
        (Data::List(l), ManagerOp::Get(k)) => {
            let i = position(decode_index(&k)?, l.len(), false).ok_or_else(out_of_range)?;
            Reply::Value(Some(l[i].clone()))
        }
        (Data::List(l), ManagerOp::Set(k, v)) => {
            let i = position(decode_index(&k)?, l.len(), false).ok_or_else(out_of_range)?;
            *bytes = *bytes - l[i].len() + v.len();
            l[i] = v;
            Reply::Ok
        }
        (Data::List(l), ManagerOp::Pop(k)) => {
            let index = match k {
                Some(k) => decode_index(&k)?,
                None => -1,
            };
            let i = position(index, l.len(), false).ok_or_else(|| {
                CallError::Other("pop from empty list or index out of range".into())
            })?;
            let v = l.remove(i);
            *bytes -= v.len() + ENTRY_COST;
            Reply::Value(Some(v))
        }
        (Data::List(l), ManagerOp::Contains(v)) => Reply::Bool(l.contains(&v)),
        (Data::List(l), ManagerOp::Items) => {
            Reply::Items(l.iter().map(|v| (ByteBuf::new(), v.clone())).collect())
        }
        (Data::Map(m), ManagerOp::Get(k)) => {
            Reply::Value(m.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()))
        }
        (Data::Map(m), ManagerOp::Set(k, v)) => {
            match m.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => {
                    *bytes = *bytes - slot.1.len() + v.len();
                    slot.1 = v;
                }
                None => {
                    *bytes += k.len() + v.len() + ENTRY_COST;
                    m.push((k, v));
                }
            }
            Reply::Ok
        }
        (Data::Map(m), ManagerOp::Pop(Some(k))) => {
            let i = m
                .iter()
                .position(|(key, _)| *key == k)
                .ok_or_else(|| CallError::Other("key not found".into()))?;
            let (k, v) = m.remove(i);
            *bytes -= k.len() + v.len() + ENTRY_COST;
            Reply::Value(Some(v))
        }
        (Data::Map(m), ManagerOp::Contains(k)) => Reply::Bool(m.iter().any(|(key, _)| *key == k)),
        (Data::Map(m), ManagerOp::Items) => Reply::Items(m.clone()),
        (data, ManagerOp::Clear) => {
            *data = match data {
                Data::List(_) => Data::List(Vec::new()),
                Data::Map(_) => Data::Map(Vec::new()),
            };
            *bytes = 0;
            Reply::Ok
        }
        (_, _) => {
            return Err(CallError::Other(format!(
                "not an operation of a manager {container:?}"
            )))
        }
    })
}
