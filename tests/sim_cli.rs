//! `ringswim sim`: one JSON object, the same for the same seed (bar the
//! wall-clock fields), on a small cluster with one node killed.

use std::process::Command;

use serde_json::Value;

fn sim(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringswim")).arg("sim").args(args).output().expect("run ringswim");
    assert!(out.status.success(), "ringswim sim {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    serde_json::from_str(&text).expect("JSON")
}

const FIELDS: &[&str] = &[
    "nodes",
    "seed",
    "converge_s",
    "converged",
    "detect_dead_all_s",
    "detected",
    "false_deaths",
    "false_suspicions",
    "broadcast_all_s",
    "broadcast_ok",
    "bytes_per_node_per_s",
    "packets_per_node_per_s",
    "virtual_s",
    "wall_s",
    "peak_rss_mb",
];

#[test]
fn same_seed_same_json() {
    let args = ["--nodes", "30", "--profile", "local", "--duration", "60", "--kill", "1", "--seed", "42", "--json"];
    let mut a = sim(&args);
    let mut b = sim(&args);
    for field in FIELDS {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert_eq!(a["nodes"], 30);
    assert_eq!(a["seed"], 42);
    assert_eq!(a["converged"], true, "{a}");
    assert_eq!(a["detected"], true, "{a}");
    assert_eq!(a["false_deaths"], 0, "{a}");
    assert_eq!(a["broadcast_ok"], true, "{a}");
    assert_eq!(a["virtual_s"], 60.0);
    assert!(a["wall_s"].is_f64());
    for v in [&mut a, &mut b] {
        let obj = v.as_object_mut().expect("an object");
        obj.remove("wall_s");
        obj.remove("peak_rss_mb");
    }
    assert_eq!(a, b);
}

#[test]
fn other_seed_other_run() {
    let a = sim(&["--nodes", "10", "--duration", "20", "--seed", "1", "--json"]);
    let b = sim(&["--nodes", "10", "--duration", "20", "--seed", "2", "--json"]);
    assert_ne!(a["trace_hash"], b["trace_hash"]);
}

#[test]
fn duplication_and_corruption_are_echoed_and_happen() {
    let v = sim(&["--nodes", "8", "--duration", "30", "--duplicate", "0.2", "--corrupt", "0.05", "--json"]);
    assert_eq!((v["duplicate"].as_f64(), v["corrupt"].as_f64()), (Some(0.2), Some(0.05)), "{v}");
    assert!(v["packets_duplicated"].as_u64() > Some(0) && v["packets_corrupted"].as_u64() > Some(0), "{v}");
    let clean = sim(&["--nodes", "8", "--duration", "30", "--json"]);
    assert_eq!((clean["duplicate"].as_f64(), clean["packets_corrupted"].as_u64()), (Some(0.0), Some(0)));
}

#[test]
fn bad_flags_fail() {
    for args in [
        &["--nodes", "10"][..],
        &["--nodes", "10", "--loss", "2", "--json"],
        &["--nodes", "10", "--duplicate", "-0.1", "--json"],
        &["--nodes", "10", "--corrupt", "1.5", "--json"],
        &["--nodes", "10", "--profile", "moon", "--json"],
        // Worlds that cannot be run as asked: more kills than nodes, no
        // time at all, or longer than anyone waits for.
        &["--nodes", "5", "--kill", "10", "--json"],
        &["--nodes", "5", "--duration", "0", "--json"],
        &["--nodes", "5", "--duration", "1e12", "--json"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ringswim")).arg("sim").args(args).output().expect("run ringswim");
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn skip_wire_changes_only_the_fingerprint_and_the_clock() {
    let base = ["--nodes", "30", "--duration", "60", "--kill", "1", "--no-compression", "--json"];
    let mut wire = sim(&base);
    let mut skipped = sim(&[&base[..], &["--skip-wire"]].concat());
    assert_eq!((wire["skip_wire"].clone(), skipped["skip_wire"].clone()), (false.into(), true.into()));
    assert_eq!(skipped["converged"], true, "{skipped}");
    for v in [&mut wire, &mut skipped] {
        let obj = v.as_object_mut().expect("an object");
        for field in ["wall_s", "peak_rss_mb", "trace_hash", "skip_wire"] {
            obj.remove(field);
        }
    }
    assert_eq!(wire, skipped);
}

#[test]
fn absurd_sizes_are_refused_with_the_memory_they_need() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringswim"))
        .args(["sim", "--nodes", "16000000", "--json"])
        .output()
        .expect("run ringswim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code, stderr: {stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // 16,000,000² pairs × 150 bytes = 3.84e16 bytes = 34.1 PiB.
    assert!(stderr.contains("--nodes 16000000 would need about 34.1 PiB"), "{stderr}");
    assert!(stderr.contains("available") || stderr.contains("assumed"), "{stderr}");
}

#[test]
fn progress_goes_to_stderr_only_when_asked_or_on_a_terminal() {
    let args = ["sim", "--nodes", "5", "--duration", "5", "--broadcasts", "0", "--json"];
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ringswim")).args(args).args(extra).output().expect("run ringswim");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
        (stdout, String::from_utf8(out.stderr).expect("utf-8"))
    };
    // The test's stderr is a pipe: no progress by default.
    let (quiet, stderr) = run(&[]);
    assert_eq!(stderr, "");
    // The first check is shown at once, then about one a second.
    let (shown, stderr) = run(&["--progress", "always"]);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("sim: 0.1 of 5.0 virtual s, 5 nodes, "), "{stderr}");
    assert!(first.ends_with(" wall s"), "{stderr}");
    assert_eq!(quiet["trace_hash"], shown["trace_hash"]);
}

/// `ringswim swarm` with `args`: its exit status and its JSON lines.
fn swarm(args: &[&str]) -> (bool, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringswim")).arg("swarm").args(args).output().expect("run ringswim");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (out.status.success(), lines)
}

/// The bounded swarm CI runs: a few small random worlds, every rule
/// checked, each run replayable from its line.
#[test]
fn a_bounded_swarm_passes_and_each_run_replays() {
    let (ok, lines) = swarm(&["--runs", "8", "--seed", "100", "--max-nodes", "16", "--json"]);
    let (runs, summary) = lines.split_at(lines.len() - 1);
    assert_eq!(summary, [serde_json::json!({"runs": 8, "failed": 0})], "{lines:?}");
    assert!(ok, "exit 0 when every run passed");
    for (i, run) in runs.iter().enumerate() {
        for field in ["run", "seed", "nodes", "ok", "violation", "replay"] {
            assert!(run.get(field).is_some(), "{field} missing: {run}");
        }
        assert_eq!((run["run"].as_u64(), run["seed"].as_u64()), (Some(i as u64), Some(100 + i as u64)));
        assert_eq!((&run["ok"], &run["violation"]), (&Value::Bool(true), &Value::Null), "{run}");
        assert!(run["nodes"].as_u64().is_some_and(|n| (3..=16).contains(&n)), "{run}");
        assert!(run["converged_after_s"].as_f64().is_some_and(|s| s <= run["bound_s"].as_f64().unwrap()), "{run}");
    }
    // The replay command of run 2 reproduces it bit for bit.
    let replay = runs[2]["replay"].as_str().expect("a command");
    let words: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(words[..2], ["ringswim", "swarm"]);
    let (_, again) = swarm(&words[2..]);
    let (mut a, mut b) = (runs[2].clone(), again[0].clone());
    for v in [&mut a, &mut b] {
        let obj = v.as_object_mut().expect("an object");
        obj.remove("wall_s");
        obj.remove("run");
    }
    assert_eq!(a, b);
}

#[test]
fn swarm_flags_are_checked() {
    for args in [&["--runs", "0", "--json"][..], &["--runs", "1"], &["--runs", "1", "--max-nodes", "2", "--json"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ringswim")).arg("swarm").args(args).output().expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty());
    }
}
