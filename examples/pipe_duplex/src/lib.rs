//! Seed S10 (`pipe_duplex`): a pipe between parent and child, Python's
//!
//! ```python
//! def worker(conn):
//!     print(f"worker pid: {os.getpid()}")
//!     message = conn.recv(); print(f"worker received: {message}")
//!     conn.send("message from worker"); conn.close()
//! parent_conn, child_conn = Pipe()
//! p = Process(target=worker, args=(child_conn,)); p.start()
//! parent_conn.send("message from parent")
//! print(f"parent received response: {parent_conn.recv()}")
//! parent_conn.close(); p.join()
//! ```

use mpwasm_guest::{current_process, pipe, Connection, Process};

/// Answers one message from the parent.
#[mpwasm_guest::task]
fn worker(conn: Connection) -> mpwasm_guest::Result<()> {
    println!("worker pid: {}", current_process().pid);
    let message: String = conn.recv()?;
    println!("worker received: {message}");
    conn.send("message from worker")?;
    conn.close();
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let (parent_conn, child_conn) = pipe(true)?;
    let mut p = Process::new("worker", &child_conn);
    p.start()?;
    parent_conn.send("message from parent")?;
    let response: String = parent_conn.recv()?;
    println!("parent received response: {response}");
    parent_conn.close();
    p.join()?;
    Ok(())
}
