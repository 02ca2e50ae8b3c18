//! `ringswim agent` and `ringswim members`, as an operator runs them: agents
//! as child processes on loopback (free ports: each agent says where it
//! bound on its first stderr line), their stdout event lines, their HTTP
//! endpoints, SIGTERM, and the refusals (bad flags, a port in use, a join
//! that reaches nobody, a keyless agent against an encrypted cluster).
//!
//! One test joins an agent to a real Go memberlist 0.2.2 node (`gonodes`,
//! see tests/go_live.rs).
//!
//! Every test that starts an agent runs on both engine backends
//! (`--backend uring|portable`), as `uring::NAME` and `portable::NAME`
//! (tests/common/backends.rs); the uring ones skip where the kernel refuses
//! io_uring.
//!
//! Every wait has a deadline; agents are killed when a test ends, passed or
//! not.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use ringswim::engine::Backend;
use serde_json::{Value, json};

#[path = "common/backends.rs"]
#[macro_use]
mod backends;
#[path = "common/child.rs"]
mod child;
#[path = "common/gonodes.rs"]
mod gonodes;
use child::lines;
use gonodes::GoNodes;

/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);
const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // b"0123456789abcdef"
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

fn ringswim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringswim"))
}

/// One running `ringswim agent`; killed on drop.
struct Agent {
    name: String,
    child: Child,
    /// Its stdout, line by line.
    events: Receiver<String>,
    /// Its stderr after the first line.
    stderr: Receiver<String>,
    /// Where its member and its HTTP server are bound.
    member: SocketAddr,
    http: SocketAddr,
}

impl Agent {
    /// Starts `ringswim agent --name NAME --backend BACKEND` on free
    /// loopback ports with the `local` profile, plus `extra` flags; panics
    /// if it does not come up.
    fn start(backend: Backend, name: &str, extra: &[&str]) -> Agent {
        Agent::start_on(backend, "127.0.0.1", name, extra)
    }

    /// [`Agent::start`] on loopback address `ip` (`127.0.0.1`, `[::1]`).
    fn start_on(backend: Backend, ip: &str, name: &str, extra: &[&str]) -> Agent {
        let (bind, http) = (format!("{ip}:0"), format!("{ip}:0"));
        let mut child = ringswim()
            .args(["agent", "--name", name, "--bind", &bind, "--http", &http, "--profile", "local"])
            .args(["--backend", backend.name()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringswim agent");
        let events = lines(child.stdout.take().expect("piped"));
        let stderr = lines(child.stderr.take().expect("piped"));
        let first = match stderr.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("agent {name} said nothing on stderr ({e:?}); exit {:?}", child.wait());
            }
        };
        // "ringswim agent NAME: member at IP:PORT; http at IP:PORT"
        let addr_after = |marker: &str| -> SocketAddr {
            let rest = first.split(marker).nth(1).unwrap_or_else(|| panic!("agent {name}: {first}"));
            rest.split(';').next().expect("an address").trim().parse().unwrap_or_else(|e| panic!("{first}: {e}"))
        };
        let (member, http) = (addr_after("member at "), addr_after("http at "));
        Agent { name: name.to_owned(), child, events, stderr, member, http }
    }

    /// Reads event lines until one has `event` for `node`; panics at the
    /// deadline with the lines seen.
    fn wait_event(&self, event: &str, node: &str) -> Value {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let line = match self.events.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(e) => panic!("{}: no {event} of {node} ({e:?}); stdout was {seen:#?}", self.name),
            };
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.name));
            if value["event"] == event && value["node"] == node {
                return value;
            }
            seen.push(line);
        }
    }

    fn get(&self, path: &str) -> String {
        get(self.http, path)
    }

    /// `GET /members`, by name.
    fn members(&self) -> std::collections::BTreeMap<String, Value> {
        let list: Vec<Value> = serde_json::from_str(&self.get("/members")).expect("a JSON array");
        list.into_iter().map(|m| (m["name"].as_str().expect("name").to_owned(), m)).collect()
    }

    /// Sends signal `name` (`TERM`, `HUP`) with kill(1).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{name} {}", self.name);
    }

    /// Reads stderr lines until one contains `words`; panics at the
    /// deadline with the lines seen.
    fn wait_stderr(&self, words: &str) -> String {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            match self.stderr.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(words) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("{}: no {words:?} on stderr ({e:?}); it said {seen:#?}", self.name),
            }
        }
    }

    /// Sends SIGTERM (with kill(1)) and waits for the exit; its status.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal("TERM");
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let stderr = self.stderr.try_iter().collect();
                return (status, stderr);
            }
            assert!(Instant::now() < until, "{} did not exit after SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(http: SocketAddr, path: &str) -> String {
    let url = format!("http://{http}{path}");
    ureq::get(&url).call().and_then(|mut r| r.body_mut().read_to_string()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Polls `check` every 20 ms until it returns `Ok` or [`DEADLINE`] passes;
/// then panics with its last complaint.
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() >= until => panic!("timed out waiting for {what}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs a `ringswim` command that must end by itself (killed at the deadline).
fn run(args: &[&str]) -> Output {
    let child = ringswim()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringswim");
    let pid = child.id();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("ringswim ran"),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("ringswim {args:?} did not end");
        }
    }
}

/// Asserts a refusal: exit status non-zero, nothing on stdout but the
/// agent's own join (it may have started before the refusal), one line on
/// stderr containing every one of `words`.
fn assert_refused(args: &[&str], words: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ringswim {args:?} succeeded: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line from {args:?}: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "the error ends stderr: {stderr}");
    for word in words {
        assert!(errors[0].contains(word), "{args:?}: {word:?} not in {stderr}");
    }
}

/// A file in the temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    /// `ringswim-agent-test-PID-TAG`, holding `contents`.
    fn new(tag: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("ringswim-agent-test-{}-{tag}", std::process::id()));
        let file = TempFile(path);
        file.write(contents);
        file
    }

    fn write(&self, contents: &str) {
        std::fs::write(&self.0, contents).unwrap_or_else(|e| panic!("write {}: {e}", self.0.display()));
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A loopback port nobody listens on for TCP: a UDP socket holds it.
fn unanswered_port() -> (UdpSocket, u16) {
    let holder = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("bound").port();
    (holder, port)
}

on_each_backend!(
    two_agents_join_serve_their_members_and_metrics_and_leave_on_sigterm,
    an_advertised_address_is_what_the_cluster_sees,
    agents_on_ipv6_loopback_join_and_list_each_other,
    encrypted_agents_join_and_a_keyless_agent_is_refused,
    a_running_agent_refuses_its_ports_and_a_join_to_nobody,
    an_agent_joins_a_go_memberlist_node,
    meta_from_a_file_is_announced_again_on_sighup,
);

fn two_agents_join_serve_their_members_and_metrics_and_leave_on_sigterm(backend: Backend) {
    let a = Agent::start(backend, "a", &[]);
    // By host name: `localhost` resolves to 127.0.0.1 (and maybe ::1,
    // where nobody listens: one answer is a join).
    let b = Agent::start(backend, "b", &["--join", &format!("localhost:{}", a.member.port())]);

    // Each prints its own join and the other's.
    for (agent, other) in [(&a, &b), (&b, &a)] {
        agent.wait_event("join", &agent.name);
        let joined = agent.wait_event("join", &other.name);
        assert_eq!(joined["addr"], other.member.to_string(), "{joined}");
        assert_eq!(joined["meta"], "", "{joined}");
    }

    for agent in [&a, &b] {
        eventually(&format!("{} lists both alive", agent.name), || {
            let members = agent.members();
            let states: Vec<(&String, &Value)> = members.iter().map(|(n, m)| (n, &m["state"])).collect();
            if states == [(&"a".to_owned(), &Value::from("alive")), (&"b".to_owned(), &Value::from("alive"))] {
                Ok(())
            } else {
                Err(format!("{members:?}"))
            }
        });
        for (name, member) in agent.members() {
            let at = if name == "a" { a.member } else { b.member };
            assert_eq!(member["addr"], at.ip().to_string(), "{member}");
            assert_eq!(member["port"], at.port(), "{member}");
            assert!(member["incarnation"].is_u64(), "{member}");
            assert_eq!(member["meta"], "", "{member}");
        }
        assert_eq!(agent.get("/health").trim(), "0", "a healthy member's score");
    }

    // `ringswim members` prints the table.
    let out = run(&["members", "--http", &a.http.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["Name", "Address", "Status", "Incarnation"], "{table}");
    let incarnation = |name: &str| a.members()[name]["incarnation"].to_string();
    assert_eq!(rows[1], ["a", &a.member.to_string(), "alive", &incarnation("a")], "{table}");
    assert_eq!(rows[2], ["b", &b.member.to_string(), "alive", &incarnation("b")], "{table}");
    assert_eq!(rows.len(), 3, "{table}");

    // Go's names, as the Prometheus recorder spells them (dots become
    // underscores, no `_total`): exported once a second.
    eventually("memberlist_udp_sent in /metrics", || {
        let metrics = a.get("/metrics");
        let sent = metrics
            .lines()
            .find_map(|l| l.strip_prefix("memberlist_udp_sent "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        match sent {
            Some(bytes) if bytes > 0.0 && metrics.contains("memberlist_health_score{node=\"a\"} 0") => Ok(()),
            _ => Err(metrics),
        }
    });

    let b_name = b.name.clone();
    let (status, _) = b.terminate();
    assert_eq!(status.code(), Some(0), "b exits 0 after SIGTERM");
    a.wait_event("leave", &b_name);
    eventually("a lists b as left", || {
        let state = a.members()[&b_name]["state"].clone();
        if state == "left" { Ok(()) } else { Err(state.to_string()) }
    });
}

fn an_advertised_address_is_what_the_cluster_sees(backend: Backend) {
    // Bound to port 0, the bound port is advertised with the address (Go
    // `refreshAdvertise`).
    let a = Agent::start(backend, "a", &["--advertise", "127.0.0.2:7000"]);
    let own = a.wait_event("join", "a");
    assert_eq!(own["addr"], format!("127.0.0.2:{}", a.member.port()), "{own}");
    assert_eq!(a.members()["a"]["addr"], "127.0.0.2");
}

fn agents_on_ipv6_loopback_join_and_list_each_other(backend: Backend) {
    if let Err(e) = std::net::UdpSocket::bind("[::1]:0") {
        eprintln!("no IPv6 loopback here ({e}): skipped");
        return;
    }
    let a = Agent::start_on(backend, "[::1]", "a6", &[]);
    let seed = format!("{}", a.member);
    let b = Agent::start_on(backend, "[::1]", "b6", &["--join", &seed]);
    let seen = a.wait_event("join", "b6");
    assert_eq!(seen["addr"], format!("{}", b.member), "{seen}");
    eventually("both alive at their IPv6 addresses", || {
        let members = b.members();
        for agent in [&a, &b] {
            let m = members.get(&agent.name).ok_or(format!("{} missing: {members:?}", agent.name))?;
            if m["state"] != "alive" || m["addr"] != "::1" || m["port"] != agent.member.port() {
                return Err(format!("{m}"));
            }
        }
        Ok(())
    });
}

fn encrypted_agents_join_and_a_keyless_agent_is_refused(backend: Backend) {
    // a encrypts with KEY_A, b with KEY_B; each has both in its keyring.
    let a = Agent::start(backend, "a", &["--key", KEY_A, "--key", KEY_B]);
    let b = Agent::start(backend, "b", &["--key", KEY_B, "--key", KEY_A, "--join", &a.member.to_string()]);
    a.wait_event("join", "b");
    b.wait_event("join", "a");

    let seed = a.member.to_string();
    let args = ["agent", "--name", "c", "--bind", "127.0.0.1:0", "--profile", "local", "--backend", backend.name()];
    let args = [&args[..], &["--join", &seed]].concat();
    assert_refused(&args, &["failed to join", &seed, "encrypted"]);
    let wrong_key = "MTExMTExMTExMTExMTExMQ=="; // b"1111111111111111"
    let mut with_wrong_key = args.clone();
    with_wrong_key.extend(["--key", wrong_key]);
    assert_refused(&with_wrong_key, &["failed to join", &seed, "decrypt"]);
    // Neither got in.
    let members = a.members();
    assert_eq!(members.keys().collect::<Vec<_>>(), ["a", "b"], "{members:?}");
}

/// `ringswim agent --name x --profile local [--backend BACKEND]` and `extra`.
fn agent_args<'a>(backend: Option<Backend>, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["agent", "--name", "x", "--profile", "local"];
    args.extend(backend.map(|b| ["--backend", b.name()]).iter().flatten());
    args.extend(extra);
    args
}

#[test]
fn bad_flags_are_refused_with_one_line() {
    let agent = |extra| agent_args(None, extra);
    assert_refused(&["agent", "--bind", "127.0.0.1:0"], &["--name"]);
    assert_refused(&agent(&["--bind", "nonsense"]), &["--bind", "nonsense"]);
    assert_refused(&["agent", "--name", "x", "--bind", "127.0.0.1:0", "--profile", "moon"], &["--profile", "moon"]);
    assert_refused(&agent(&["--bind", "127.0.0.1:0", "--key", "not base64!"]), &["--key"]);
    assert_refused(&agent(&["--bind", "127.0.0.1:0", "--key", "c2hvcnQ="]), &["--key"]);
    assert_refused(&agent(&["--bind", "127.0.0.1:0", "--backend", "carrier-pigeon"]), &["--backend"]);
    assert_refused(&agent(&["--bind", "127.0.0.1:0", "--join", "no-such-host.invalid"]), &["no-such-host.invalid"]);
}

#[test]
fn meta_is_hex_of_at_most_512_bytes_from_a_flag_or_a_file() {
    let too_long = "00".repeat(513);
    assert_refused(&agent_args(None, &["--bind", "127.0.0.1:0", "--meta", &too_long]), &["--meta", "513 bytes", "512"]);
    assert_refused(&agent_args(None, &["--bind", "127.0.0.1:0", "--meta", "role=web"]), &["--meta", "not hex"]);
    let file = TempFile::new("meta-too-long", &too_long);
    let out = run(&agent_args(None, &["--bind", "127.0.0.1:0", "--meta-file", file.path()]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "no member started: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("error: --meta-file {}: 513 bytes", file.path())), "{stderr}");
    let missing = format!("{}-missing", file.path());
    assert_refused(&agent_args(None, &["--bind", "127.0.0.1:0", "--meta-file", &missing]), &["--meta-file", &missing]);
    assert_refused(
        &agent_args(None, &["--bind", "127.0.0.1:0", "--meta", "00", "--meta-file", file.path()]),
        &["--meta"],
    );
}

/// `text` as the agent takes and prints meta: hex.
fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn meta_from_a_file_is_announced_again_on_sighup(backend: Backend) {
    let file = TempFile::new(&format!("meta-{}", backend.name()), &hex_of("role=web"));
    let a = Agent::start(backend, "a", &["--meta-file", file.path()]);
    let b = Agent::start(backend, "b", &["--join", &a.member.to_string(), "--meta", &hex_of("role=db")]);
    assert_eq!(b.wait_event("join", "a")["meta"], hex_of("role=web"));
    assert_eq!(a.wait_event("join", "b")["meta"], hex_of("role=db"));

    // The most Go announces (MetaMaxSize), in lines as `xxd -p` writes them.
    let longest: String = (0..512).map(|i| format!("{:02x}", i % 251)).collect();
    let in_lines: Vec<&str> = longest.as_bytes().chunks(60).map(|c| std::str::from_utf8(c).expect("hex")).collect();
    file.write(&(in_lines.join("\n") + "\n"));
    a.signal("HUP");
    a.wait_stderr(&format!("meta updated from {} (512 bytes)", file.path()));
    for agent in [&b, &a] {
        let update = agent.wait_event("update", "a");
        assert_eq!(update["meta"], longest, "{}: {update}", agent.name);
        assert_eq!(update["addr"], a.member.to_string(), "{update}");
    }
    eventually("b lists a's new meta", || {
        let meta = b.members()["a"]["meta"].clone();
        if meta == longest.as_str() { Ok(()) } else { Err(meta.to_string()) }
    });

    // A file that is no meta changes nothing: the next update b sees is the
    // one after it.
    file.write(&format!("{longest}00"));
    a.signal("HUP");
    a.wait_stderr("513 bytes, over the limit of 512 (Go MetaMaxSize); meta unchanged");
    file.write(&hex_of("role=web,v=2"));
    a.signal("HUP");
    a.wait_stderr("meta updated");
    assert_eq!(b.wait_event("update", "a")["meta"], hex_of("role=web,v=2"));
    assert_eq!(b.members()["a"]["state"], "alive");
}

fn a_running_agent_refuses_its_ports_and_a_join_to_nobody(backend: Backend) {
    // Ports in use: the member's and the HTTP server's.
    let running = Agent::start(backend, "running", &[]);
    let taken = running.member.to_string();
    assert_refused(&agent_args(Some(backend), &["--bind", &taken]), &[&taken]);
    let taken_http = running.http.to_string();
    let out = run(&agent_args(Some(backend), &["--bind", "127.0.0.1:0", "--http", &taken_http]));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no member started: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: --http {taken_http}: ")), "{stderr}");

    // A join that reaches nobody.
    let (_holder, port) = unanswered_port();
    let nobody = format!("127.0.0.1:{port}");
    assert_refused(
        &agent_args(Some(backend), &["--bind", "127.0.0.1:0", "--join", &nobody]),
        &["failed to join", &nobody],
    );

    // `members` with no agent there.
    assert_refused(&["members", "--http", &nobody], &[&nobody]);
}

fn an_agent_joins_a_go_memberlist_node(backend: Backend) {
    let mut go = GoNodes::spawn(&[]);
    let started = go.call(json!({"cmd": "start", "name": "go-0", "meta": hex_of("go")}));
    let go_addr = format!("{}:{}", started["addr"].as_str().expect("addr"), started["port"]);
    let file = TempFile::new(&format!("go-meta-{}", backend.name()), &hex_of("role=web"));
    let agent = Agent::start(backend, "rs", &["--join", &go_addr, "--meta-file", file.path()]);

    let joined = agent.wait_event("join", "go-0");
    assert_eq!(joined["addr"], go_addr, "{joined}");
    assert_eq!(joined["meta"], hex_of("go"), "{joined}");
    eventually("the agent lists go-0 alive", || {
        let state = agent.members().get("go-0").map(|m| m["state"].clone());
        if state == Some(Value::from("alive")) { Ok(()) } else { Err(format!("{state:?}")) }
    });
    eventually("go-0 lists the agent alive", || {
        let answer = go.call(json!({"cmd": "members", "node": "go-0"}));
        let table = answer["views"]["go-0"].as_array().cloned().unwrap_or_default();
        let rs = table.iter().find(|m| m["name"] == "rs");
        match rs {
            Some(m) if m["state"] == "alive" && m["port"] == agent.member.port() && m["meta"] == hex_of("role=web") => {
                Ok(())
            }
            _ => Err(format!("{table:?}")),
        }
    });

    // New meta on SIGHUP: Go's table has it, and Go's EventDelegate got
    // NotifyUpdate with it.
    file.write(&hex_of("role=web,v=2"));
    agent.signal("HUP");
    agent.wait_stderr("meta updated");
    eventually("go-0 got the agent's update", || {
        let answer = go.call(json!({"cmd": "events", "node": "go-0"}));
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        let updates: Vec<&Value> = events.iter().filter(|e| e["kind"] == "update" && e["name"] == "rs").collect();
        match updates[..] {
            [update] if update["meta"] == hex_of("role=web,v=2") => Ok(()),
            _ => Err(format!("{events:?}")),
        }
    });
    let answer = go.call(json!({"cmd": "members", "node": "go-0"}));
    let table = answer["views"]["go-0"].as_array().cloned().unwrap_or_default();
    let rs = table.iter().find(|m| m["name"] == "rs").unwrap_or_else(|| panic!("{table:?}"));
    assert_eq!((&rs["state"], &rs["meta"]), (&Value::from("alive"), &Value::from(hex_of("role=web,v=2"))), "{rs}");
}
