//! Where io_uring is refused (seccomp profiles of container runtimes,
//! `kernel.io_uring_disabled`, old kernels), the automatic choice falls
//! back to the portable backend and a cluster still runs; asking for
//! io_uring alone is an error naming the refusal. The refusal is simulated
//! for a child process with `RINGSWIM_REFUSE_URING=1`, which the probe
//! treats as the kernel's refusal.

use std::process::Command;

use ringswim::engine::Backend;

#[path = "common/backends.rs"]
mod backends;

fn ringswim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringswim"));
    c.env("RINGSWIM_REFUSE_URING", "1").env_remove("RINGSWIM_BACKEND");
    c
}

/// A small cluster on the automatic choice, in `command`'s environment:
/// its JSON report, once it converged and broadcast.
fn auto_cluster(mut command: Command) -> serde_json::Value {
    let out = command
        .args(["cluster", "--nodes", "3", "--kill", "0", "--broadcasts", "1", "--window", "1", "--duration", "60"])
        .args(["--progress", "never", "--json"])
        .output()
        .expect("ringswim runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["converged"], true, "{report}");
    assert_eq!(report["broadcast_ok"], true, "{report}");
    report
}

#[test]
fn a_refused_io_uring_selects_the_portable_backend() {
    assert_eq!(auto_cluster(ringswim())["backend"], "portable");
}

/// Where the kernel allows io_uring (this test's own probe says so), the
/// automatic choice takes it.
#[test]
fn an_allowed_io_uring_is_the_automatic_choice() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringswim"));
    command.env_remove("RINGSWIM_REFUSE_URING").env_remove("RINGSWIM_BACKEND");
    let expected = if backends::backends().contains(&Backend::Uring) { "uring" } else { "portable" };
    assert_eq!(auto_cluster(command)["backend"], expected);
}

#[test]
fn asking_for_a_refused_io_uring_is_an_error() {
    let out = ringswim()
        .args(["cluster", "--nodes", "2", "--backend", "uring", "--progress", "never", "--json"])
        .output()
        .expect("ringswim runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uring") && err.contains("refused"), "{err}");
    assert!(out.stdout.is_empty());
}
