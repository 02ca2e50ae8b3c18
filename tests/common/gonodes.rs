//! Where the `gonodes` helper is (tests/interop/go/gonodes: real Go
//! memberlist 0.2.2 nodes driven by JSON lines), shared by the tests that
//! run live Go nodes (`#[path = "common/gonodes.rs"] mod gonodes;`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds (once per test binary) the Go helpers; the path of `gonodes`.
pub fn gonodes_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(repo.join("tests/interop/build.sh"))
            .arg(repo.join("target/go-interop"))
            .output()
            .expect("run tests/interop/build.sh");
        assert!(
            out.status.success(),
            "building the Go helpers failed (run .ci/install: it needs golang-go and \
             golang-github-hashicorp-memberlist-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let gointerop = PathBuf::from(stdout.lines().last().expect("build.sh prints the tool path").trim());
        gointerop.with_file_name("gonodes")
    })
}
