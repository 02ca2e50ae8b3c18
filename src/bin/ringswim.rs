//! The `ringswim` command line.
//!
//! - `ringswim decode [--key BASE64]... [--label TEXT] [--stream] [FILE]`:
//!   one raw UDP packet (or TCP stream message) → one JSON object on stdout.
//! - `ringswim encode [--compress] [--crc] [--key BASE64 [--encryption-version 0|1]]
//!   [--label TEXT] [--stream]`: `{"messages":[...]}` on stdin → bytes on stdout.
//! - `ringswim cluster --nodes N [--profile local|lan|wan] [--backend uring|portable] [--cores C] [--duration SECS] [--kill K] [--broadcasts M] [--key BASE64] --json`
//! - `ringswim sim --nodes N [--join-spread SECS] [--profile local|lan|wan] [--loss P] [--duplicate P] [--corrupt P] [--slow FRACTION]
//!   [--slow-delay SECS] [--slow-mode inbound|all] [--partition SECS] [--kill K] [--duration SECS] [--window SECS] [--seed S]
//!   [--churn PER_SEC] [--user-rate PER_SEC] [--broadcasts M] [--broadcast-bytes B] [--retransmit-mult R] [--no-lifeguard] [--no-compression] [--skip-wire] [--behaviour go|ringswim] [--progress auto|always|never] --json`: runs a cluster in the
//!   deterministic simulator and prints one JSON object (see
//!   `ringswim::sim::scenario`). A size whose estimated memory exceeds what
//!   the machine has available is refused (exit 2) before anything runs.
//! - `ringswim swarm --runs R [--seed S] [--max-nodes N] [--jobs J] --json`: R random
//!   worlds (run `i` from seed `S + i`) under the invariant checkers of
//!   `ringswim::sim::check`; one JSON line per run (`run, seed, nodes, ok,
//!   violation, replay`, …), then `{"runs":R,"failed":F}`; exit 1 if any
//!   failed (see `ringswim::sim::swarm`).
//!
//! - `ringswim agent --name NAME --bind IP:PORT [--advertise IP:PORT] [--join ADDR]... [--profile local|lan|wan]
//!   [--key BASE64]... [--label TEXT] [--no-compression] [--http IP:PORT] [--backend uring|portable]`: one member
//!   until SIGINT/SIGTERM, then a graceful leave; `ringswim members --http IP:PORT`: a running agent's members
//!   (see `agent.rs`).
//!
//! Bad input prints one line naming the problem on stderr and exits 1; nothing
//! is written to stdout then.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Parser, Subcommand, ValueEnum};
use ringswim::inspect::{self, DecodeRequest, EncodeRequest};
use ringswim::sim::scenario::{self, Profile, Scenario, SlowMode};
use ringswim::sim::swarm;
use ringswim::wire::{Compression, EncryptionVersion};

// Beside this file, not in src/bin/ (where cargo would take it for a binary).
#[path = "ringswim/agent.rs"]
mod agent;

#[derive(Parser)]
#[command(name = "ringswim", version, about = "SWIM + Lifeguard membership, wire-compatible with Go memberlist 0.2.2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode one packet (or stream message) to JSON.
    Decode {
        /// Decryption key, base64 (16, 24 or 32 bytes); repeat for a keyring.
        /// With a key given, the input must be encrypted.
        #[arg(long = "key", value_name = "BASE64")]
        keys: Vec<String>,
        /// Require this label (without it, any label is accepted and reported).
        #[arg(long)]
        label: Option<String>,
        /// The input is one TCP stream message, not a UDP packet.
        #[arg(long)]
        stream: bool,
        /// Input file (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Encode JSON messages from stdin to packet (or stream) bytes on stdout.
    Encode {
        /// Compress (LZW unless --compression says otherwise).
        #[arg(long)]
        compress: bool,
        /// Compression algorithm; lz4 is understood by ringswim peers only.
        #[arg(long, value_enum, default_value_t = Algo::Lzw)]
        compression: Algo,
        /// Add a CRC32 header (packets only).
        #[arg(long)]
        crc: bool,
        /// Encryption key, base64; the first one encrypts.
        #[arg(long = "key", value_name = "BASE64")]
        keys: Vec<String>,
        /// Encryption format version (0: PKCS#7 padded, 1: unpadded).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        encryption_version: u8,
        /// Label header, also authenticated when encrypting.
        #[arg(long, default_value = "")]
        label: String,
        /// Build one TCP stream message instead of a UDP packet.
        #[arg(long)]
        stream: bool,
    },
    /// Run a simulated cluster (virtual time, deterministic) and print one
    /// JSON object of measurements.
    Sim(SimArgs),
    /// Run many random simulated worlds under invariant checkers: one JSON
    /// line per run, then a summary; exit 1 if any run broke a rule.
    Swarm(SwarmArgs),
    /// Run N real members in this process on 127.0.0.1 (each its own UDP
    /// and TCP port, all joining node 0) and print one JSON line of
    /// measurements.
    Cluster(ClusterArgs),
    /// Run one member until SIGINT/SIGTERM (then leave): membership events
    /// as JSON lines on stdout; with --http, GET /members, /metrics, /health.
    Agent(agent::AgentArgs),
    /// Print the members of a running agent (its --http address) as a table.
    Members(agent::MembersArgs),
    /// Benchmarks: `ringswim bench engine`.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The packet path on loopback, per backend, then the ping -> ack round
    /// trip between two processes: one JSON line each.
    Engine(BenchEngineArgs),
}

#[derive(clap::Args)]
struct BenchEngineArgs {
    /// Which backend(s) to measure.
    #[arg(long, default_value = "all", value_parser = ["uring", "portable", "all"])]
    backend: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Instead: one busy node, hosted on one engine thread or spread over
    /// two (`Runtime::host_spread`), plaintext and encrypted; one JSON line
    /// per backend, mode and encryption.
    #[arg(long)]
    spread: bool,
    /// Serve the round-trip benchmark's node: print its address, run until
    /// stdin closes (what the benchmark starts in a second process).
    #[arg(long, hide = true)]
    serve_rtt: bool,
    /// Print JSON lines (the only output format).
    #[arg(long, required_unless_present = "serve_rtt")]
    json: bool,
}

fn run_bench_engine(args: &BenchEngineArgs) -> Result<ExitCode, String> {
    use ringswim::engine::{Backend, bench};
    let backends: Vec<Backend> = match args.backend.as_str() {
        "uring" => vec![Backend::Uring],
        "portable" => vec![Backend::Portable],
        _ => vec![Backend::Uring, Backend::Portable],
    };
    let line = |v: serde_json::Value| {
        let mut l = v.to_string().into_bytes();
        l.push(b'\n');
        write_stdout(&l)
    };
    if args.serve_rtt {
        let (_rt, node) = bench::bench_node(backends[0]).map_err(|e| e.to_string())?;
        let addr = node.local_node().map_err(|e| e.to_string())?.address();
        line(serde_json::json!({ "addr": addr.to_string() }))?;
        // Until the parent closes our stdin (or dies).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return Ok(ExitCode::SUCCESS);
    }
    if args.spread {
        for &backend in &backends {
            for encrypted in [false, true] {
                for threads in [1, 2] {
                    line(match bench::spread_path(backend, threads, encrypted, args.seconds) {
                        Ok(r) => serde_json::json!({
                            "backend": r.backend,
                            "mode": r.mode,
                            "threads": r.threads,
                            "encrypted": r.encrypted,
                            "packets_per_s": r.packets_per_s.round(),
                            "cpu_ns_per_packet": r.cpu_ns_per_packet.round(),
                            "owner_cpu_ns_per_packet": r.owner_cpu_ns_per_packet.round(),
                            "packets": r.packets,
                            "seconds": (r.seconds * 1e3).round() / 1e3,
                            "handoff_messages": r.handoff_messages,
                            "handoff_dropped": r.handoff_dropped,
                            "open_ns_per_packet": r.open_ns_per_packet.round(),
                            "seal_ns_per_ack": r.seal_ns_per_ack.round(),
                            "cpus": std::thread::available_parallelism().map_or(1, usize::from),
                        }),
                        Err(e) => {
                            serde_json::json!({ "backend": backend.name(), "threads": threads, "error": e.to_string() })
                        }
                    })?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path_line = |name: &str, result: Result<bench::PacketPath, ringswim::engine::Error>| match result {
        Ok(r) => line(serde_json::json!({
            "backend": r.backend,
            "packets_per_s_per_core": r.packets_per_s_per_core.round(),
            "cpu_ns_per_packet": r.cpu_ns_per_packet.round(),
            "packets": r.packets,
            "seconds": (r.seconds * 1e3).round() / 1e3,
        })),
        Err(e) => line(serde_json::json!({ "backend": name, "error": e.to_string() })),
    };
    for &backend in &backends {
        path_line(backend.name(), bench::packet_path(backend, args.seconds))?;
    }
    #[cfg(target_os = "linux")]
    if args.backend != "portable" {
        path_line("echo", bench::echo(args.seconds))?;
    }
    let rtt_backend = backends
        .iter()
        .copied()
        .find(|&b| b == Backend::Uring && args.backend != "portable")
        .unwrap_or(backends[backends.len() - 1]);
    let rtt = rtt_between_processes(rtt_backend, args.seconds)?;
    line(serde_json::json!({
        "backend": rtt_backend.name(),
        "rtt_p50_us": (rtt.p50_us * 10.0).round() / 10.0,
        "rtt_p99_us": (rtt.p99_us * 10.0).round() / 10.0,
        "rtt_p999_us": (rtt.p999_us * 10.0).round() / 10.0,
        "samples": rtt.samples,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// Starts `ringswim bench engine --serve-rtt` as a second process and pings
/// its node.
fn rtt_between_processes(
    backend: ringswim::engine::Backend,
    seconds: f64,
) -> Result<ringswim::engine::bench::RoundTrip, String> {
    use std::io::BufRead;
    use std::process::{Command as Process, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("finding ringswim: {e}"))?;
    let mut child = Process::new(exe)
        .args(["bench", "engine", "--serve-rtt", "--backend", backend.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the round-trip node: {e}"))?;
    let mut first = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(stdout).read_line(&mut first).map_err(|e| e.to_string())?;
    let result = serde_json::from_str::<serde_json::Value>(&first)
        .ok()
        .and_then(|v| v["addr"].as_str().and_then(|a| a.parse().ok()))
        .ok_or_else(|| format!("the round-trip node said {first:?}"))
        .and_then(|addr| ringswim::engine::bench::round_trip(addr, seconds).map_err(|e| e.to_string()));
    drop(child.stdin.take());
    let _ = child.wait();
    result
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// Members.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    nodes: u64,
    /// memberlist defaults: local, lan or wan.
    #[arg(long, default_value = "local", value_parser = ["local", "lan", "wan"])]
    profile: String,
    /// The I/O backend (by default what RINGSWIM_BACKEND says, else
    /// io_uring where the kernel allows it, the portable one where not).
    #[arg(long, value_parser = ["uring", "portable"])]
    backend: Option<String>,
    /// Engine threads (the CPUs this process may use, by default).
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=1024))]
    cores: Option<u64>,
    /// The longest the run may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = positive_seconds)]
    duration: f64,
    /// Members stopped without leaving after the broadcasts.
    #[arg(long, value_name = "K", default_value_t = 1)]
    kill: u64,
    /// User broadcasts node 0 sends after convergence.
    #[arg(long, value_name = "M", default_value_t = 3)]
    broadcasts: u64,
    /// Encrypt with this key (base64 of 16, 24 or 32 bytes).
    #[arg(long, value_name = "BASE64")]
    key: Option<String>,
    /// The steady window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    window: f64,
    /// Turn memberlist's LZW compression off (Go `EnableCompression`).
    #[arg(long)]
    no_compression: bool,
    /// Progress on stderr: auto shows it when stderr is a terminal.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    progress: String,
    /// Print the result as one JSON object (the only output format).
    #[arg(long, required = true)]
    json: bool,
}

/// Wall-clock seconds, in (0, [`MAX_DURATION_S`]].
fn positive_seconds(s: &str) -> Result<f64, String> {
    seconds_within(s, "a number of seconds in", "")
}

fn run_cluster(args: &ClusterArgs) -> Result<ExitCode, String> {
    use ringswim::engine::{Backend, BackendChoice, cluster};
    let _ = args.json;
    if args.kill >= args.nodes {
        return Err(format!("--kill {} leaves no member of {}", args.kill, args.nodes));
    }
    let key = args
        .key
        .as_deref()
        .map(|k| base64::engine::general_purpose::STANDARD.decode(k).map_err(|e| format!("--key: {e}")))
        .transpose()?;
    if let Some(k) = &key
        && ![16, 24, 32].contains(&k.len())
    {
        return Err(format!("--key: {} bytes; AES needs 16, 24 or 32", k.len()));
    }
    let options = cluster::ClusterOptions {
        nodes: usize::try_from(args.nodes).map_err(|e| e.to_string())?,
        profile: args.profile.parse::<Profile>()?,
        backend: match args.backend.as_deref() {
            Some("uring") => BackendChoice::Only(Backend::Uring),
            Some("portable") => BackendChoice::Only(Backend::Portable),
            _ => BackendChoice::Auto,
        },
        cores: args
            .cores
            .map_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get), |c| c as usize),
        duration: std::time::Duration::from_secs_f64(args.duration),
        kill: args.kill as usize,
        broadcasts: args.broadcasts as usize,
        key,
        window: std::time::Duration::from_secs_f64(args.window),
        compression: !args.no_compression,
        progress: match args.progress.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stderr().is_terminal(),
        },
    };
    let report = cluster::run(&options).map_err(|e| e.to_string())?;
    let mut line = report.to_json().to_string().into_bytes();
    line.push(b'\n');
    write_stdout(&line)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
struct SwarmArgs {
    /// How many runs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    runs: u64,
    /// Run i draws its world from seed S + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most nodes a run's world has (joins included).
    #[arg(long, value_name = "N", default_value_t = swarm::DEFAULT_MAX_NODES as u64,
          value_parser = clap::value_parser!(u64).range(swarm::MIN_NODES as u64..=256))]
    max_nodes: u64,
    /// Runs at once (threads); the number of CPUs by default. Output is in
    /// run order either way.
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Print JSON lines (the only output format).
    #[arg(long, required = true)]
    json: bool,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Cluster size.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16_000_000))]
    nodes: u64,
    /// memberlist defaults and network: local, lan or wan.
    #[arg(long, default_value = "local", value_parser = ["local", "lan", "wan"])]
    profile: String,
    /// Datagram loss on every link, 0 to 1 (stream segments too: a lost
    /// one is resent after 200 ms, doubling, so streams arrive late).
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    loss: f64,
    /// Probability that a datagram is delivered twice, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    duplicate: f64,
    /// Probability that a datagram arrives with one byte changed, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    corrupt: f64,
    /// Fraction of the nodes that turn slow (packets and streams handled
    /// --slow-delay late, in order, at any rate; see --slow-mode) after
    /// convergence, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    slow: f64,
    /// How late a slow node handles each input, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = non_negative)]
    slow_delay: f64,
    /// inbound: a slow node's own timers fire on time (a starved receive
    /// path, Lifeguard's slow node); all: its timers lag too.
    #[arg(long, default_value = "inbound", value_parser = ["inbound", "all"])]
    slow_mode: String,
    /// Split the cluster 50/50 after convergence for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = non_negative)]
    partition: f64,
    /// Start the nodes evenly over SECS seconds (node 0 first, each joining
    /// node 0) instead of all at once.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = non_negative)]
    join_spread: f64,
    /// Kill K random nodes (without leaving) after convergence.
    #[arg(long, value_name = "K", default_value_t = 0)]
    kill: usize,
    /// Virtual seconds to run, more than 0 and at most 1,000,000 (11.6
    /// days of virtual time).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = run_duration)]
    duration: f64,
    /// Steady-state window (after convergence, once every queue is empty)
    /// that bytes/packets per node per second are measured over, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = non_negative)]
    window: f64,
    /// The world's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Membership changes per second from the faults on: a node joins, then
    /// a random node leaves gracefully, alternately.
    #[arg(long, value_name = "PER_SEC", default_value_t = 0.0, value_parser = non_negative)]
    churn: f64,
    /// User broadcasts per second from the faults on, each from a random
    /// live node; delivery is reported as user_* fields.
    #[arg(long, value_name = "PER_SEC", default_value_t = 0.0, value_parser = non_negative)]
    user_rate: f64,
    /// User broadcasts node 0 sends after convergence.
    #[arg(long, value_name = "M", default_value_t = 3)]
    broadcasts: u32,
    /// Size of each user broadcast in bytes (at least 4: its number).
    #[arg(long, value_name = "BYTES", default_value_t = scenario::BROADCAST_BYTES, value_parser = broadcast_size)]
    broadcast_bytes: usize,
    /// RetransmitMult for membership and user broadcasts (the profile's by
    /// default): e.g. 4 for "Go tuned".
    #[arg(long, value_name = "MULT", value_parser = retransmit_mult)]
    retransmit_mult: Option<usize>,
    /// Turn Lifeguard's awareness and dynamic suspicion off.
    #[arg(long)]
    no_lifeguard: bool,
    /// Turn memberlist's LZW compression off (faster simulation, other byte
    /// counts).
    #[arg(long)]
    no_compression: bool,
    /// Pass push/pulls between simulated nodes unencoded: same behaviour,
    /// a fraction of the CPU at thousands of nodes (packets stay encoded;
    /// stream bytes are counted at their plain encoded length).
    #[arg(long)]
    skip_wire: bool,
    /// go: Go memberlist 0.2.2's behaviour, step for step; ringswim: with
    /// ringswim's extensions (see `Config::extensions`).
    #[arg(long, default_value = "ringswim", value_parser = ["go", "ringswim"])]
    behaviour: String,
    /// Print the result as one JSON object (the only output format).
    #[arg(long, required = true)]
    json: bool,
    /// Progress on stderr (virtual time, nodes, wall time, about once a
    /// second): auto shows it when stderr is a terminal.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    progress: String,
}

fn fraction(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&x) { Ok(x) } else { Err(format!("{x} is not between 0 and 1")) }
}

fn broadcast_size(s: &str) -> Result<usize, String> {
    let x: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (4..=1024).contains(&x) { Ok(x) } else { Err(format!("{x} is not between 4 and 1024")) }
}

fn retransmit_mult(s: &str) -> Result<usize, String> {
    let x: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (1..=64).contains(&x) { Ok(x) } else { Err(format!("{x} is not between 1 and 64")) }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if x.is_finite() && x >= 0.0 { Ok(x) } else { Err(format!("{x} is not a non-negative number")) }
}

/// The longest `--duration`, virtual seconds.
const MAX_DURATION_S: f64 = 1_000_000.0;

fn run_duration(s: &str) -> Result<f64, String> {
    seconds_within(s, "a run length in", " virtual seconds")
}

/// A number in (0, [`MAX_DURATION_S`]]; the error says `x is not {what}
/// (0, max]{unit}`.
fn seconds_within(s: &str, what: &str, unit: &str) -> Result<f64, String> {
    let x = non_negative(s)?;
    if x > 0.0 && x <= MAX_DURATION_S { Ok(x) } else { Err(format!("{x} is not {what} (0, {MAX_DURATION_S}]{unit}")) }
}

#[derive(Clone, Copy, ValueEnum)]
enum Algo {
    Lzw,
    Lz4,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refuse_arguments(&e),
    };
    if let Command::Sim(args) = &cli.command
        && let Err(msg) = sim_fits_in_memory(args.nodes).and_then(|()| sim_faults_fit(args))
    {
        // Exit 2, as for other arguments refused before anything runs.
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    run(cli.command).unwrap_or_else(|msg| {
        eprintln!("error: {msg}");
        ExitCode::FAILURE
    })
}

/// Help and version as clap prints them (exit 0); a refused argument as
/// one line on stderr, clap's first paragraph (exit 2), without the usage
/// and tips that follow it.
fn refuse_arguments(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // Clap's first paragraph names the problem (e.g. the missing flags on
    // the lines after "required arguments were not provided:").
    let rendered = e.render().to_string();
    let problem: Vec<&str> = rendered.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
    eprintln!("{}", problem.join(" "));
    ExitCode::from(2)
}

/// `ringswim swarm`: the lines as runs finish (in run order), the summary,
/// and exit 1 if any run failed.
fn run_swarm(args: &SwarmArgs) -> Result<ExitCode, String> {
    let _ = args.json;
    let runs = usize::try_from(args.runs).map_err(|e| e.to_string())?;
    let max_nodes = usize::try_from(args.max_nodes).map_err(|e| e.to_string())?;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let jobs = args.jobs.map_or(Ok(cpus), usize::try_from).map_err(|e| e.to_string())?;
    let mut written = Ok(());
    let failed = swarm::swarm(runs, args.seed, max_nodes, jobs, |i, outcome| {
        if written.is_ok() {
            let mut line = outcome.to_json(i).to_string().into_bytes();
            line.push(b'\n');
            written = write_stdout(&line);
        }
    });
    written?;
    let mut line = serde_json::json!({ "runs": runs, "failed": failed }).to_string().into_bytes();
    line.push(b'\n');
    write_stdout(&line)?;
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs one command: its exit code, or the message for bad input.
fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Agent(args) => agent::run_agent(&args),
        Command::Members(args) => agent::run_members(&args),
        Command::Swarm(args) => run_swarm(&args),
        Command::Cluster(args) => run_cluster(&args),
        Command::Bench(BenchCommand::Engine(args)) => run_bench_engine(&args),
        Command::Decode { keys, label, stream, file } => {
            let bytes = match file {
                Some(path) => std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => read_stdin()?,
            };
            let req = DecodeRequest { keys: decode_keys(&keys)?, label, stream };
            let json = inspect::decode_to_json(&bytes, &req).map_err(|e| e.to_string())?;
            // Written as one piece; a closed pipe is an error, not a panic.
            let mut line = json.to_string().into_bytes();
            line.push(b'\n');
            write_stdout(&line).map(|()| ExitCode::SUCCESS)
        }
        Command::Encode { compress, compression, crc, keys, encryption_version, label, stream } => {
            let input = read_stdin()?;
            let value: serde_json::Value = serde_json::from_slice(&input).map_err(|e| format!("json: {e}"))?;
            let req = EncodeRequest {
                compression: compress.then_some(match compression {
                    Algo::Lzw => Compression::Lzw,
                    Algo::Lz4 => Compression::Lz4,
                }),
                crc,
                keys: decode_keys(&keys)?,
                encryption_version: if encryption_version == 0 { EncryptionVersion::V0 } else { EncryptionVersion::V1 },
                label,
                stream,
            };
            let bytes = inspect::encode_from_json(&value, &req).map_err(|e| e.to_string())?;
            write_stdout(&bytes).map(|()| ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            let _ = args.json;
            let scenario = Scenario {
                nodes: usize::try_from(args.nodes).map_err(|e| e.to_string())?,
                join_spread_s: args.join_spread,
                profile: args.profile.parse::<Profile>()?,
                loss: args.loss,
                duplicate: args.duplicate,
                corrupt: args.corrupt,
                slow: args.slow,
                slow_delay_s: args.slow_delay,
                slow_mode: args.slow_mode.parse::<SlowMode>()?,
                partition_s: args.partition,
                kill: args.kill,
                duration_s: args.duration,
                window_s: args.window,
                seed: args.seed,
                lifeguard: !args.no_lifeguard,
                churn: args.churn,
                user_rate: args.user_rate,
                broadcasts: args.broadcasts,
                broadcast_bytes: args.broadcast_bytes,
                retransmit_mult: args.retransmit_mult,
                compression: !args.no_compression,
                go_behaviour: args.behaviour == "go",
                skip_wire: args.skip_wire,
            };
            let report = match args.progress.as_str() {
                "never" => scenario::run(&scenario),
                "auto" if !std::io::stderr().is_terminal() => scenario::run(&scenario),
                _ => run_showing_progress(&scenario),
            };
            let mut line = report.to_json().to_string().into_bytes();
            line.push(b'\n');
            write_stdout(&line).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// Memory the simulator is assumed to have when `/proc/meminfo` cannot be
/// read.
const ASSUMED_MEMORY: u64 = 1 << 40;

/// Refuses faults the world cannot apply: more nodes to kill than it has.
fn sim_faults_fit(args: &SimArgs) -> Result<(), String> {
    if u64::try_from(args.kill).unwrap_or(u64::MAX) > args.nodes {
        return Err(format!("--kill {} is more than the {} nodes of the world", args.kill, args.nodes));
    }
    Ok(())
}

/// Refuses a simulation whose estimated peak memory
/// ([`scenario::estimated_peak_bytes`]) exceeds the memory available.
fn sim_fits_in_memory(nodes: u64) -> Result<(), String> {
    let need = scenario::estimated_peak_bytes(usize::try_from(nodes).unwrap_or(usize::MAX));
    let (have, what) = match scenario::available_memory_bytes() {
        Some(bytes) => (bytes, "available (MemAvailable)"),
        None => (ASSUMED_MEMORY, "assumed (/proc/meminfo unreadable)"),
    };
    if need <= have {
        return Ok(());
    }
    Err(format!(
        "--nodes {nodes} would need about {} of memory ({nodes}² node-member pairs × {} bytes, measured up to 10,000 nodes); {} {what}",
        bytes_for_people(need),
        scenario::PEAK_BYTES_PER_PAIR,
        bytes_for_people(have),
    ))
}

/// `bytes` in the largest binary unit that keeps it at 1 or more.
fn bytes_for_people(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Runs `scenario` with a progress line on stderr about once a second of
/// wall time: rewritten in place on a terminal, one line each otherwise.
fn run_showing_progress(scenario: &Scenario) -> scenario::Report {
    let in_place = std::io::stderr().is_terminal();
    let mut last_shown: Option<std::time::Duration> = None;
    let report = scenario::run_with_progress(scenario, &mut |p| {
        if last_shown.is_some_and(|at| p.wall < at + std::time::Duration::from_secs(1)) {
            return;
        }
        last_shown = Some(p.wall);
        let line = format!(
            "sim: {:.1} of {:.1} virtual s, {} nodes, {:.1} wall s",
            p.virtual_s,
            p.duration_s,
            p.nodes,
            p.wall.as_secs_f64()
        );
        // Progress is best effort: a closed stderr must not stop the run.
        let mut err = std::io::stderr().lock();
        let _ = if in_place { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    });
    if in_place {
        // Leave the terminal as it was.
        eprint!("\r\x1b[K");
    }
    report
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("stdin: {e}"))?;
    Ok(buf)
}

fn decode_keys(keys: &[String]) -> Result<Vec<Vec<u8>>, String> {
    keys.iter()
        .map(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|e| format!("--key {k:?}: not base64: {e}"))
        })
        .collect()
}
