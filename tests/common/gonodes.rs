//! Where the `gonodes` helper is (tests/interop/go/gonodes: real Go
//! memberlist 0.2.2 nodes driven by JSON lines), shared by the tests that
//! run live Go nodes (`#[path = "common/gonodes.rs"] mod gonodes;`, beside
//! `#[path = "common/child.rs"] mod child;`), and [`GoNodes`], a plain
//! driver of it (tests/go_live.rs has its own, which also keeps Go's log
//! and stops the process).
// go_live uses `gonodes_bin` alone.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

/// How long `gonodes` may take to answer a command; a test that waits
/// longer fails.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

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

/// A `gonodes` process (real Go memberlist 0.2.2 nodes, JSON lines on its
/// stdin and stdout; memberlist's log discarded); killed on drop.
pub struct GoNodes {
    child: Child,
    answers: Receiver<String>,
}

impl GoNodes {
    /// `gonodes`, run by `launcher` first where there is one (`["ip",
    /// "netns", "exec", NS]`: in a network namespace).
    pub fn spawn(launcher: &[&str]) -> GoNodes {
        let mut command = match launcher {
            [program, args @ ..] => {
                let mut command = Command::new(program);
                command.args(args).arg(gonodes_bin());
                command
            }
            [] => Command::new(gonodes_bin()),
        };
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start gonodes");
        let answers = crate::child::lines(child.stdout.take().expect("piped"));
        GoNodes { child, answers }
    }

    /// One command that must succeed; its answer.
    pub fn call(&mut self, request: Value) -> Value {
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "{request}").expect("write to gonodes");
        let line =
            self.answers.recv_timeout(ANSWER_DEADLINE).unwrap_or_else(|_| panic!("gonodes did not answer {request}"));
        let answer: Value = serde_json::from_str(&line).expect("gonodes answers JSON");
        assert_eq!(answer["ok"], true, "gonodes refused {request}: {answer}");
        answer
    }

    /// Go node `node`'s table entry for `name`.
    pub fn member(&mut self, node: &str, name: &str) -> Option<Value> {
        let answer = self.call(serde_json::json!({"cmd": "members", "node": node}));
        let table = answer["views"][node].as_array().cloned().unwrap_or_default();
        table.into_iter().find(|m| m["name"] == name)
    }
}

impl Drop for GoNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
