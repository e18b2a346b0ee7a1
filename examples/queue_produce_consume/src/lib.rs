//! Seed S7 (`queue_produce_consume`): a producer, then a consumer, Python's
//!
//! ```python
//! def producer(queue):
//!     for item in range(5): queue.put(item); print(f"Produced {item}")
//! def consumer(queue):
//!     while not queue.empty(): item = queue.get(); print(f"Consumed {item}")
//! # start producer, join it, then start consumer, join it
//! ```

use mpwasm_guest::{Process, Queue};

/// Puts 0..5 on the queue.
#[mpwasm_guest::task]
fn producer(queue: Queue<i64>) -> mpwasm_guest::Result<()> {
    for item in 0..5 {
        queue.put(item)?;
        println!("Produced {item}");
    }
    Ok(())
}

/// Takes items until the queue is empty.
#[mpwasm_guest::task]
fn consumer(queue: Queue<i64>) -> mpwasm_guest::Result<()> {
    while !queue.empty() {
        let item = queue.get()?;
        println!("Consumed {item}");
    }
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let queue = Queue::<i64>::new()?;
    let mut producer = Process::new("producer", &queue);
    producer.start()?;
    producer.join()?;
    let mut consumer = Process::new("consumer", &queue);
    consumer.start()?;
    consumer.join()?;
    Ok(())
}
