//! Reading a child process's output in tests that run the `ringswim`
//! binary (`#[path = "common/child.rs"] mod child;`).

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{Receiver, channel};

/// The lines of a child's pipe, read on a thread of their own.
pub fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
