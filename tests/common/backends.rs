//! The engine backends an integration test runs on
//! (`#[path = "common/backends.rs"] #[macro_use] mod backends;`).

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

/// `on_each_backend!(test_a, test_b)`: for each `fn test_a(backend:
/// Backend)` at the test crate's root, the tests `uring::test_a` and
/// `portable::test_a`. Two tests rather than a loop over [`backends`] in
/// one, so that the harness runs them in parallel: for tests that mostly
/// wait (child processes, protocol timers), both backends cost about the
/// wall time of one. Where the kernel refuses io_uring, the `uring` test
/// says so and passes without running.
// Test binaries that loop over `backends()` instead do not use it.
#[allow(unused_macros)]
macro_rules! on_each_backend {
    ($($test:ident),+ $(,)?) => {
        mod uring {
            $(
                #[test]
                fn $test() {
                    if crate::backends::backends().contains(&ringswim::engine::Backend::Uring) {
                        crate::$test(ringswim::engine::Backend::Uring);
                    } else {
                        eprintln!("{}: skipped", stringify!($test));
                    }
                }
            )+
        }
        mod portable {
            $(
                #[test]
                fn $test() {
                    crate::$test(ringswim::engine::Backend::Portable);
                }
            )+
        }
    };
}
