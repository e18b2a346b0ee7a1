//! `_TestContainers` and `TestSyncManagerTypes`.
//!
//! Python's lists hold any mix of objects; a `ListProxy<T>` holds `T`s, so
//! where CPython mixes ints and strings the items are an [`Obj`].

use std::time::Duration;

use mpwasm_guest::{
    Array, Barrier, BoundedSemaphore, Condition, DictProxy, Event, JoinableQueue, ListProxy, Lock,
    Manager, Namespace, Queue, RLock, Result, Semaphore, Value,
};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// An int or a string, for CPython's mixed lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Obj {
    Int(i64),
    Str(String),
}

/// `Obj::Int` of each of `range`.
fn ints(range: impl IntoIterator<Item = i64>) -> Vec<Obj> {
    range.into_iter().map(Obj::Int).collect()
}

/// `manager.list(values)`.
fn list_of<T: Serialize + serde::de::DeserializeOwned>(
    manager: &Manager,
    values: Vec<T>,
) -> Result<ListProxy<T>> {
    let list = manager.list()?;
    list.extend(values)?;
    Ok(list)
}

/// `_TestContainers.test_list`: contents, extending, indexing, repeating,
/// and lists of lists that see later changes to their members. (Slices are
/// taken of `to_vec()`; `b *= 2` is `b.extend(b[:])`.)
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_list() -> Result<()> {
    let manager = Manager::new()?;
    let a = list_of(&manager, ints(0..10))?;
    check_eq!(a.to_vec()?, ints(0..10));
    let b: ListProxy<Obj> = manager.list()?;
    check_eq!(b.to_vec()?, []);
    b.extend(ints(0..5))?;
    check_eq!(b.to_vec()?, ints(0..5));
    check_eq!(b.get(2)?, Obj::Int(2));
    check_eq!(b.to_vec()?[2..], ints(2..5)); // b[2:10]
    b.extend(b.to_vec()?)?; // b *= 2
    check_eq!(b.to_vec()?, ints((0..5).chain(0..5)));
    check_eq!(
        [b.to_vec()?, ints([5, 6])].concat(),
        ints((0..5).chain(0..5).chain([5, 6]))
    );
    check_eq!(a.to_vec()?, ints(0..10));

    let e = list_of(&manager, vec![a.clone(), b.clone()])?;
    let mut elements = Vec::new();
    for element in e.to_vec()? {
        elements.push(element.to_vec()?);
    }
    check_eq!(elements, [ints(0..10), ints((0..5).chain(0..5))]);

    let f = list_of(&manager, vec![a.clone()])?;
    a.append(&Obj::Str("hello".into()))?;
    let mut expected = ints(0..10);
    expected.push(Obj::Str("hello".into()));
    check_eq!(f.get(0)?.to_vec()?, expected);
    Ok(())
}

/// `_TestContainers.test_list_proxy_in_list`: lists held in a list are
/// the same lists.
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_list_proxy_in_list() -> Result<()> {
    let manager = Manager::new()?;
    let mut inner = Vec::new();
    for _ in 0..3 {
        inner.push(list_of(&manager, vec![0_i64, 1, 2])?);
    }
    let a = list_of(&manager, inner)?;
    for i in 0..3 {
        check_eq!(a.get(i)?.to_vec()?, [0, 1, 2]);
    }
    a.get(0)?.set(-1, &55)?;
    check_eq!(a.get(0)?.to_vec()?, [0, 1, 55]);
    for i in 1..3 {
        check_eq!(a.get(i)?.to_vec()?, [0, 1, 2]);
    }
    check_eq!(a.get(1)?.pop()?, 2);
    check_eq!(a.get(1)?.len()?, 2);
    for i in [0, 2] {
        check_eq!(a.get(i)?.len()?, 3);
    }
    Ok(())
}

/// `_TestContainers.test_dict`: a dict's contents, keys, values and items.
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_dict() -> Result<()> {
    let d: DictProxy<u32, String> = Manager::new()?.dict()?;
    let indices: Vec<u32> = (65..70).collect();
    for &i in &indices {
        d.set(&i, &char::from_u32(i).unwrap_or('?').to_string())?;
    }
    let expected: Vec<(u32, String)> = indices
        .iter()
        .map(|&i| (i, char::from_u32(i).unwrap_or('?').to_string()))
        .collect();
    let mut items = d.items()?;
    items.sort();
    check_eq!(items, expected); // d.copy() and sorted(d.items())
    let mut keys = d.keys()?;
    keys.sort();
    check_eq!(keys, indices);
    let mut values = d.values()?;
    values.sort();
    check_eq!(
        values,
        expected.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );
    Ok(())
}

/// `manager.dict(**pairs)`.
fn dict_of(manager: &Manager, pairs: &[(&str, i64)]) -> Result<DictProxy<String, i64>> {
    let d = manager.dict()?;
    for (k, v) in pairs {
        d.set(*k, v)?;
    }
    Ok(d)
}

/// `_TestContainers.test_dict_proxy_nested`: dicts held in a dict (and in
/// a list) are the same dicts, and outlive the outer dict's `clear`.
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_dict_proxy_nested() -> Result<()> {
    let manager = Manager::new()?;
    let pets = dict_of(&manager, &[("ferrets", 2), ("hamsters", 4)])?;
    let supplies = dict_of(&manager, &[("water", 10), ("feed", 3)])?;
    let d: DictProxy<String, DictProxy<String, i64>> = manager.dict()?;
    d.set("pets", &pets)?;
    d.set("supplies", &supplies)?;
    let inner = |key: &str| -> Result<DictProxy<String, i64>> {
        d.get(key)?
            .ok_or(mpwasm_guest::Error::Other(format!("no {key}")))
    };

    check_eq!(supplies.get("water")?, Some(10));
    check_eq!(inner("supplies")?.get("water")?, Some(10));
    inner("supplies")?.set("blankets", &5)?;
    check_eq!(supplies.get("blankets")?, Some(5));
    check_eq!(inner("supplies")?.get("blankets")?, Some(5));
    inner("supplies")?.set("water", &7)?;
    check_eq!(supplies.get("water")?, Some(7));
    check_eq!(inner("supplies")?.get("water")?, Some(7));

    drop(pets);
    drop(supplies);
    check_eq!(inner("pets")?.get("ferrets")?, Some(2));
    inner("supplies")?.set("blankets", &11)?;
    check_eq!(inner("supplies")?.get("blankets")?, Some(11));

    let pets = inner("pets")?;
    let supplies = inner("supplies")?;
    supplies.set("water", &7)?;
    check_eq!(supplies.get("water")?, Some(7));
    check_eq!(inner("supplies")?.get("water")?, Some(7));

    d.clear()?;
    check_eq!(d.len()?, 0);
    check_eq!(supplies.get("water")?, Some(7));
    check_eq!(pets.get("hamsters")?, Some(4));

    let l = list_of(&manager, vec![pets.clone(), supplies.clone()])?;
    l.get(0)?.set("marmots", &1)?;
    check_eq!(pets.get("marmots")?, Some(1));
    check_eq!(l.get(0)?.get("marmots")?, Some(1));
    drop(pets);
    drop(supplies);
    check_eq!(l.get(0)?.get("marmots")?, Some(1));
    Ok(())
}

/// `_TestContainers.test_nested_queue`: a queue kept in a list, and one
/// kept in a dict, are still queues.
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_nested_queue() -> Result<()> {
    let manager = Manager::new()?;
    let a: ListProxy<Queue<i64>> = manager.list()?;
    a.append(&Queue::new()?)?;
    a.get(0)?.put(123)?;
    check_eq!(a.get(0)?.get_timeout(PATIENCE)?, 123);
    let b: DictProxy<i64, Queue<i64>> = manager.dict()?;
    b.set(&0, &Queue::new()?)?;
    let q = |d: &DictProxy<i64, Queue<i64>>| -> Result<Queue<i64>> {
        d.get(&0)?
            .ok_or(mpwasm_guest::Error::Other("no queue".into()))
    };
    q(&b)?.put(456)?;
    check_eq!(q(&b)?.get_timeout(PATIENCE)?, 456);
    Ok(())
}

/// `TestSyncManagerTypes._test_list`, in the worker: the list's item,
/// extending it, repeating it, copies, sorting and reversing (done on a
/// copy and written back: the proxy has no `sort`), pop and clear.
#[mpwasm_guest::task]
fn manager_list_worker(obj: ListProxy<i64>) -> Result<()> {
    check_eq!(obj.get(0)?, 5);
    check_eq!(obj.to_vec()?.iter().filter(|&&x| x == 5).count(), 1); // count(5)
    check_eq!(obj.to_vec()?.iter().position(|&x| x == 5), Some(0)); // index(5)
    obj.extend([7])?; // obj += [7]
    check_eq!(obj.to_vec()?, [5, 7]);
    obj.extend(obj.to_vec()?)?; // obj *= 2
    check_eq!(obj.to_vec()?, [5, 7, 5, 7]);
    let double_obj = [obj.to_vec()?, obj.to_vec()?].concat(); // obj * 2
    check_eq!(double_obj, [5, 7, 5, 7, 5, 7, 5, 7]);
    let copied_obj = obj.to_vec()?;
    check_eq!(copied_obj, [5, 7, 5, 7]);
    obj.extend([double_obj, copied_obj].concat())?;
    let mut sorted = obj.to_vec()?;
    sorted.sort(); // obj.sort()
    sorted.reverse(); // obj.reverse()
    obj.clear()?;
    obj.extend(sorted)?;
    check_eq!(obj.len()?, 16);
    check_eq!(obj.pop_at(0)?, 7);
    obj.clear()?;
    check_eq!(obj.len()?, 0);
    Ok(())
}

/// `TestSyncManagerTypes.test_list`: a manager list used by a worker
/// process; its changes are seen here.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_list() -> Result<()> {
    let o: ListProxy<i64> = Manager::new()?.list()?;
    o.append(&5)?;
    let mut proc = start("manager_list_worker", &o, true)?;
    join_ok(&mut proc)?;
    check_eq!(o.len()?, 0);
    Ok(())
}

/// `TestSyncManagerTypes._test_dict`, in the worker (the operations with
/// a counterpart: `popitem`, `fromkeys`, `|` and `reversed` have none).
#[mpwasm_guest::task]
fn manager_dict_worker(obj: DictProxy<String, i64>) -> Result<()> {
    check_eq!(obj.len()?, 1);
    check_eq!(obj.get("foo")?, Some(5));
    check_eq!(obj.items()?, [("foo".to_string(), 5)]);
    check_eq!(obj.keys()?, ["foo".to_string()]);
    check_eq!(obj.values()?, [5]);
    obj.set("bar", &6)?; // obj |= {'bar': 6}
    let mut items = obj.items()?;
    items.sort();
    check_eq!(items, [("bar".to_string(), 6), ("foo".to_string(), 5)]);
    obj.set("bar", &7)?; // obj.update({'bar': 7})
    check_eq!(obj.pop("bar")?, 7);
    obj.clear()?;
    check_eq!(obj.len()?, 0);
    Ok(())
}

/// `TestSyncManagerTypes.test_dict`: a manager dict used by a worker
/// process; its changes are seen here.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_dict() -> Result<()> {
    let o: DictProxy<String, i64> = Manager::new()?.dict()?;
    o.set("foo", &5)?;
    let mut proc = start("manager_dict_worker", &o, true)?;
    join_ok(&mut proc)?;
    check_eq!(o.len()?, 0);
    Ok(())
}

/// `TestSyncManagerTypes._test_namespace`, in the worker.
#[mpwasm_guest::task]
fn manager_namespace_worker(obj: Namespace) -> Result<()> {
    check_eq!(obj.get::<i64>("x")?, Some(0));
    check_eq!(obj.get::<i64>("y")?, Some(1));
    Ok(())
}

/// `TestSyncManagerTypes.test_namespace`: a worker reads a namespace's
/// attributes.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_namespace() -> Result<()> {
    let o = Manager::new()?.namespace()?;
    o.set("x", &0_i64)?;
    o.set("y", &1_i64)?;
    let mut proc = start("manager_namespace_worker", &o, true)?;
    join_ok(&mut proc)
}

/// `_TestContainers.test_namespace`: attributes set, read, deleted, and
/// present or not. (`str(n)` has no counterpart: `Debug` shows the
/// handle.)
#[mpwasm_guest::task]
pub(crate) fn TestContainers__test_namespace() -> Result<()> {
    let n = Manager::new()?.namespace()?;
    n.set("name", "Bob")?;
    n.set("job", "Builder")?;
    n.set("_hidden", "hidden")?;
    check_eq!(
        (n.get::<String>("name")?, n.get::<String>("job")?),
        (Some("Bob".to_string()), Some("Builder".to_string()))
    );
    n.delete("job")?;
    check!(n.contains("name")?);
    check!(!n.contains("job")?);
    Ok(())
}

/// `TestSyncManagerTypes._test_event`.
#[mpwasm_guest::task]
fn manager_event_worker(obj: Event) -> Result<()> {
    check!(obj.is_set());
    obj.wait();
    obj.clear();
    obj.wait_timeout(Duration::from_millis(1));
    Ok(())
}

/// `TestSyncManagerTypes.test_event`: a manager's event cleared by a
/// worker is clear here.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_event() -> Result<()> {
    let o = Manager::new()?.event()?;
    o.set();
    let mut proc = start("manager_event_worker", &o, true)?;
    join_ok(&mut proc)?;
    check!(!o.is_set());
    o.wait_timeout(Duration::from_millis(1));
    Ok(())
}

/// `TestSyncManagerTypes._test_lock`: acquires the lock and keeps it.
#[mpwasm_guest::task]
fn manager_lock_worker(obj: Lock) -> Result<()> {
    std::mem::forget(obj.acquire()?);
    obj.locked();
    Ok(())
}

/// `TestSyncManagerTypes.test_lock`: a lock a worker acquired is released
/// here, once.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_lock() -> Result<()> {
    let o = Manager::new()?.lock()?;
    let mut proc = start("manager_lock_worker", &o, true)?;
    join_ok(&mut proc)?;
    check_eq!(o.release(), Ok(()));
    check!(o.release().is_err()); // already released
    Ok(())
}

/// `TestSyncManagerTypes._test_rlock`.
#[mpwasm_guest::task]
fn manager_rlock_worker(obj: RLock) -> Result<()> {
    std::mem::forget(obj.acquire()?);
    obj.release()
}

/// `TestSyncManagerTypes.test_rlock`: a worker acquires and releases a
/// manager's RLock.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_rlock() -> Result<()> {
    let o = Manager::new()?.rlock()?;
    let mut proc = start("manager_rlock_worker", &o, true)?;
    join_ok(&mut proc)
}

/// `TestSyncManagerTypes._test_semaphore`: takes one and keeps it.
#[mpwasm_guest::task]
fn manager_semaphore_worker(obj: Semaphore) -> Result<()> {
    std::mem::forget(obj.acquire()?);
    Ok(())
}

/// `TestSyncManagerTypes.test_semaphore`: what a worker took is given
/// back here.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_semaphore() -> Result<()> {
    let o = Manager::new()?.semaphore(1)?;
    let mut proc = start("manager_semaphore_worker", &o, true)?;
    join_ok(&mut proc)?;
    o.release()
}

/// `TestSyncManagerTypes._test_semaphore`, for a bounded semaphore.
#[mpwasm_guest::task]
fn manager_bounded_semaphore_worker(obj: BoundedSemaphore) -> Result<()> {
    std::mem::forget(obj.acquire()?);
    Ok(())
}

/// `TestSyncManagerTypes.test_bounded_semaphore`: as `test_semaphore`.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_bounded_semaphore() -> Result<()> {
    let o = Manager::new()?.bounded_semaphore(1)?;
    let mut proc = start("manager_bounded_semaphore_worker", &o, true)?;
    join_ok(&mut proc)?;
    o.release()
}

/// `TestSyncManagerTypes._test_condition`.
#[mpwasm_guest::task]
fn manager_condition_worker(obj: Condition) -> Result<()> {
    std::mem::forget(obj.acquire()?);
    obj.release()
}

/// `TestSyncManagerTypes.test_condition`: a worker acquires and releases a
/// manager's condition.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_condition() -> Result<()> {
    let o = Manager::new()?.condition()?;
    let mut proc = start("manager_condition_worker", &o, true)?;
    join_ok(&mut proc)
}

/// `TestSyncManagerTypes._test_barrier`.
#[mpwasm_guest::task]
fn manager_barrier_worker(obj: Barrier) -> Result<()> {
    check_eq!(obj.parties(), 5);
    obj.reset()
}

/// `TestSyncManagerTypes.test_barrier`: a worker reads and resets a
/// manager's barrier.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_barrier() -> Result<()> {
    let o = Manager::new()?.barrier(5, None, None)?;
    let mut proc = start("manager_barrier_worker", &o, true)?;
    join_ok(&mut proc)
}

/// `TestSyncManagerTypes._test_queue`.
#[mpwasm_guest::task]
fn manager_queue_worker(obj: Queue<i64>) -> Result<()> {
    check_eq!(obj.qsize(), 2);
    check!(obj.full());
    check!(!obj.empty());
    check_eq!(obj.get()?, 5);
    check!(!obj.empty());
    check_eq!(obj.get()?, 6);
    check!(obj.empty());
    Ok(())
}

/// `TestSyncManagerTypes._test_queue`, for a joinable queue.
#[mpwasm_guest::task]
fn manager_joinable_queue_worker(obj: JoinableQueue<i64>) -> Result<()> {
    check_eq!(obj.qsize(), 2);
    check!(obj.full());
    check!(!obj.empty());
    check_eq!(obj.get()?, 5);
    check!(!obj.empty());
    check_eq!(obj.get()?, 6);
    check!(obj.empty());
    Ok(())
}

/// `TestSyncManagerTypes.test_queue`: a worker drains a full queue of two.
/// (`manager.Queue(2)` is `Queue::with_maxsize(2)`: `Manager::queue` makes
/// the same queue and takes no maxsize.)
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_queue() -> Result<()> {
    let o = Queue::with_maxsize(2)?;
    o.put(5_i64)?;
    o.put(6)?;
    let mut proc = start("manager_queue_worker", &o, true)?;
    join_ok(&mut proc)?;
    check!(o.empty());
    check!(!o.full());
    Ok(())
}

/// `TestSyncManagerTypes.test_joinable_queue`: as `test_queue`.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_joinable_queue() -> Result<()> {
    let o = JoinableQueue::with_maxsize(2)?;
    o.put(5_i64)?;
    o.put(6)?;
    let mut proc = start("manager_joinable_queue_worker", &o, true)?;
    join_ok(&mut proc)?;
    check!(o.empty());
    check!(!o.full());
    Ok(())
}

/// `TestSyncManagerTypes._test_value`.
#[mpwasm_guest::task]
fn manager_value_worker(obj: Value<i32>) -> Result<()> {
    check_eq!(obj.get(), 1); // obj.value and obj.get()
    obj.set(2);
    Ok(())
}

/// `TestSyncManagerTypes.test_value`: a worker's set is seen here.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_value() -> Result<()> {
    let o = Manager::new()?.value(1_i32)?;
    let mut proc = start("manager_value_worker", &o, true)?;
    join_ok(&mut proc)?;
    check_eq!(o.get(), 2);
    Ok(())
}

/// `TestSyncManagerTypes._test_array`.
#[mpwasm_guest::task]
fn manager_array_worker(obj: Array<i32>) -> Result<()> {
    check_eq!(obj.get(0)?, 0);
    check_eq!(obj.get(1)?, 1);
    check_eq!(obj.len(), 2);
    check_eq!(obj.to_vec(), [0, 1]);
    Ok(())
}

/// `TestSyncManagerTypes.test_array`: a worker reads a manager's array.
#[mpwasm_guest::task]
pub(crate) fn TestSyncManagerTypes__test_array() -> Result<()> {
    let o = Manager::new()?.array(&[0_i32, 1])?;
    let mut proc = start("manager_array_worker", &o, true)?;
    join_ok(&mut proc)
}
