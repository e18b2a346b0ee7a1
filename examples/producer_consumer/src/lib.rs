//! Seed S9 (`producer_consumer`): two producers, two consumers, a bounded
//! queue and one `None` sentinel per consumer, Python's
//!
//! ```python
//! def producer(q, name):
//!     for i in range(5):
//!         item = f"{name}-{i}"; time.sleep(random.uniform(1, 2))
//!         print(f"[producer {name}] Put: {item}"); q.put(item)
//! def consumer(q, name):
//!     while True:
//!         item = q.get()
//!         if item is None: print(f"[consumer {name}] received termination signal"); break
//!         time.sleep(random.uniform(0.5, 1.5)); print(f"[consumer {name}] received item: {item}")
//! q = Queue(maxsize=3)
//! # start producers P1, P2 and consumers C1, C2; join producers; put one None per consumer; join consumers
//! print("All processes completed")
//! ```
//!
//! The delays are fifty times shorter than the tutorial's, so the whole run
//! takes a fraction of a second.

use std::time::Duration;

use mpwasm_guest::{current_process, Process, Queue};

/// Items are `Some(text)`; `None` tells a consumer to stop.
type Items = Queue<Option<String>>;

/// Python's `random`, enough of it: xorshift64 seeded by the process's pid,
/// so each process draws its own delays.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = u64::from(current_process().pid).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Random(seed | 1)
    }

    /// A float in `[a, b)`, as `random.uniform(a, b)`.
    fn uniform(&mut self, a: f64, b: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        a + (b - a) * (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Sleeps `uniform(a, b)` seconds.
    fn sleep(&mut self, a: f64, b: f64) {
        std::thread::sleep(Duration::from_secs_f64(self.uniform(a, b)));
    }
}

/// Puts `name-0` … `name-4` on the queue, pausing before each.
#[mpwasm_guest::task]
fn producer(q: Items, name: String) -> mpwasm_guest::Result<()> {
    let mut random = Random::new();
    for i in 0..5 {
        let item = format!("{name}-{i}");
        random.sleep(0.02, 0.04);
        println!("[producer {name}] Put: {item}");
        q.put(Some(item))?;
    }
    Ok(())
}

/// Takes items until it gets the `None` sentinel.
#[mpwasm_guest::task]
fn consumer(q: Items, name: String) -> mpwasm_guest::Result<()> {
    let mut random = Random::new();
    loop {
        let Some(item) = q.get()? else {
            println!("[consumer {name}] received termination signal");
            break;
        };
        random.sleep(0.01, 0.03);
        println!("[consumer {name}] received item: {item}");
    }
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let q = Items::with_maxsize(3)?;
    let mut producers = [
        Process::new("producer", (&q, "P1")),
        Process::new("producer", (&q, "P2")),
    ];
    let mut consumers = [
        Process::new("consumer", (&q, "C1")),
        Process::new("consumer", (&q, "C2")),
    ];
    for p in producers.iter_mut().chain(consumers.iter_mut()) {
        p.start()?;
    }
    for p in &mut producers {
        p.join()?;
    }
    for _ in &consumers {
        q.put(None)?;
    }
    for c in &mut consumers {
        c.join()?;
    }
    println!("All processes completed");
    Ok(())
}
