//! The protocol core is sans-IO: nothing in `src/swim` reads a clock, spawns
//! a thread, touches a socket or draws from an unseeded RNG (issue 3's "done
//! when"). Time and randomness come in through the API; the engine and the
//! simulator are its drivers.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "Instant::now",
    "SystemTime",
    "std::thread",
    "thread::spawn",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "thread_rng",
    "rand::rng()",
    "OsRng",
    "unsafe ",
];

#[test]
fn the_protocol_core_reads_no_clock_spawns_no_thread_and_touches_no_socket() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/swim");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/swim") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for bad in FORBIDDEN {
                assert!(!code.contains(bad), "{}:{}: `{bad}` in the sans-IO core: {line}", path.display(), n + 1);
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} files found in {}", dir.display());
    let mod_rs = std::fs::read_to_string(dir.join("mod.rs")).expect("mod.rs");
    assert!(mod_rs.contains("#![forbid(unsafe_code)]"));
}
