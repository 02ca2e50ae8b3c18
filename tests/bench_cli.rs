//! `ringswim bench engine --spread`: one busy node on one thread, then
//! spread over two (`Runtime::host_spread`), plaintext and encrypted, one
//! JSON line each; on the spread lines the other thread handed messages to
//! the owner. No figure is checked (speed goes in the README's runs).

use std::process::Command;

#[test]
fn bench_engine_spread_prints_both_modes_and_the_handoff() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringswim"))
        .args(["bench", "engine", "--spread", "--backend", "portable", "--seconds", "0.2", "--json"])
        .output()
        .expect("ringswim runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let modes: Vec<(String, bool)> =
        lines.iter().map(|l| (l["mode"].as_str().unwrap_or("?").to_owned(), l["encrypted"] == true)).collect();
    let expected = [("one_thread", false), ("spread", false), ("one_thread", true), ("spread", true)];
    assert_eq!(modes, expected.map(|(m, e)| (m.to_owned(), e)), "{lines:?}");
    for l in &lines {
        assert_eq!(l["backend"], "portable", "{l}");
        assert!(l["packets"].as_u64() > Some(0), "{l}");
        let handed = l["handoff_messages"].as_u64().expect("handoff_messages");
        match l["mode"].as_str() {
            Some("spread") => assert!(handed > 0 && l["threads"] == 2, "{l}"),
            _ => assert!(handed == 0 && l["threads"] == 1, "{l}"),
        }
    }
}
