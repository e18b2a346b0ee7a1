//! Seed S4 (`queue_hello`): a queue between two processes, Python's
//!
//! ```python
//! def producer(q): q.put("Data from producer")
//! def consumer(q): print(q.get())
//! q = Queue(); p1 = Process(target=producer, args=(q,)); p2 = Process(target=consumer, args=(q,))
//! p1.start(); p2.start(); p1.join(); p2.join()
//! ```
//!
//! The consumer process prints `Data from producer`.

use mpwasm_guest::{Process, Queue};

/// Puts one message on the queue.
#[mpwasm_guest::task]
fn producer(q: Queue<String>) -> mpwasm_guest::Result<()> {
    q.put("Data from producer".to_string())
}

/// Takes one message from the queue and prints it.
#[mpwasm_guest::task]
fn consumer(q: Queue<String>) -> mpwasm_guest::Result<()> {
    println!("{}", q.get()?);
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let q = Queue::<String>::new()?;
    let mut p1 = Process::new("producer", &q);
    let mut p2 = Process::new("consumer", &q);
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    Ok(())
}
