//! The engine backends an integration test runs on.

use ringswim::engine::{Backend, BackendChoice, Runtime, RuntimeOptions};

/// The backends to run each test on: both where the kernel allows
/// io_uring (a refusal is printed, and the portable backend still runs).
pub fn backends() -> Vec<Backend> {
    match Runtime::new(RuntimeOptions { threads: 1, backend: BackendChoice::Only(Backend::Uring), pin: false }) {
        Ok(_) => vec![Backend::Uring, Backend::Portable],
        Err(e) => {
            eprintln!("io_uring refused here ({e}): the portable backend only");
            vec![Backend::Portable]
        }
    }
}
