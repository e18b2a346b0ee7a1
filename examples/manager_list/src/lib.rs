//! Seed S5 (`manager_list`): `Manager().list()`, Python's
//!
//! ```python
//! def worker(shared_list): shared_list.append("hello")
//! with Manager() as manager:
//!     lst = manager.list(); p = Process(target=worker, args=(lst,)); p.start(); p.join()
//!     print(lst)
//! ```
//!
//! Prints `['hello']`: the list lives in the parent mpwasm process, so what
//! the child appends is there after it exits.

use mpwasm_guest::{ListProxy, Manager, Process};

/// Appends to the list the parent made.
#[mpwasm_guest::task]
fn worker(shared_list: ListProxy<String>) -> mpwasm_guest::Result<()> {
    shared_list.append(&"hello".to_string())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let manager = Manager::new()?;
    let lst = manager.list::<String>()?;
    let mut p = Process::new("worker", &lst);
    p.start()?;
    p.join()?;
    println!("{}", python_list(&lst.to_vec()?));
    Ok(())
}

/// A list of strings as Python's `print(list)` shows it: `['a', 'b']`.
fn python_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| python_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Python's `repr(str)`: single quotes unless the text holds a single quote
/// and no double quote; backslashes, the quote and control characters
/// escaped.
fn python_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
