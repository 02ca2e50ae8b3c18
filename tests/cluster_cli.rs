//! The README's first command, smaller: `ringswim cluster` forms a cluster
//! on real sockets, spreads broadcasts to everyone, finds the killed member,
//! says so on stderr as it goes and prints one JSON line.

use std::process::Command;

#[test]
fn a_small_cluster_converges_broadcasts_and_detects_the_kill() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringswim"))
        .args(["cluster", "--nodes", "8", "--window", "1", "--duration", "90", "--progress", "always", "--json"])
        .env_remove("RINGSWIM_BACKEND")
        .output()
        .expect("ringswim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["nodes"], 8);
    assert_eq!(report["converged"], true, "{report}");
    assert_eq!(report["broadcast_ok"], true, "{report}");
    assert_eq!((report["killed"].as_u64(), report["detected"].as_bool()), (Some(1), Some(true)), "{report}");
    assert_eq!(report["false_deaths"], 0, "{report}");
    // Nothing was dropped or refused in a cluster this small and healthy.
    assert_eq!(report["dropped_by_reason"], serde_json::json!({}), "{report}");
    assert_eq!(report["rejected_packets"], 0, "{report}");
    for said in ["converged: every node counts 8 alive", "broadcasts from node-0 reached all 8", "killed node-"] {
        assert!(stderr.contains(said), "no {said:?} in:\n{stderr}");
    }
}
