//! Seed S14 (`manager_stack`): a `Manager().list()` used as a stack, Python's
//!
//! ```python
//! def push(stack, lock):
//!     for i in range(5):
//!         with lock: stack.append(i)
//! with Manager() as manager:
//!     stack = manager.list(); lock = Lock()
//!     # 2 processes run push(stack, lock); join both
//!     popped = 0
//!     while len(stack) > 0: stack.pop(); popped += 1
//!     print(f"Popped {popped} items")
//! ```
//!
//! Prints `Popped 10 items`.

use mpwasm_guest::{ListProxy, Lock, Manager, Process};

/// How many processes push, and how many items each.
const PROCESSES: usize = 2;
const ITEMS: i64 = 5;

/// Pushes `0..ITEMS` onto the shared stack, each under the lock.
#[mpwasm_guest::task]
fn push(stack: ListProxy<i64>, lock: Lock) -> mpwasm_guest::Result<()> {
    for i in 0..ITEMS {
        let _held = lock.acquire()?;
        stack.append(&i)?;
    }
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let manager = Manager::new()?;
    let stack = manager.list::<i64>()?;
    let lock = Lock::new()?;
    let mut processes: Vec<Process> = (0..PROCESSES)
        .map(|_| Process::new("push", (&stack, &lock)))
        .collect();
    for p in &mut processes {
        p.start()?;
    }
    for p in &mut processes {
        p.join()?;
    }
    let mut popped = 0;
    while stack.len()? > 0 {
        stack.pop()?;
        popped += 1;
    }
    println!("Popped {popped} items");
    Ok(())
}
