//! `ringswim agent`: one member run until SIGINT/SIGTERM (then a graceful
//! leave), its membership events as JSON lines on stdout and, with `--http`,
//! `GET /members`, `/metrics` (Prometheus text) and `/health`; and
//! `ringswim members --http`, the table of a running agent's members (as
//! `serf members`).
//!
//! - stdout: `{"event":"join"|"leave"|"update","node":NAME,"addr":"IP:PORT","meta":HEX}`
//!   per membership event (the agent's own join first).
//! - stderr: `ringswim agent NAME: member at IP:PORT[; http at IP:PORT]` once
//!   bound (the ports the kernel picked, for port 0), a line at each signal,
//!   and `error: …` (one line, exit 1; bad flags exit 2) on failure.
//! - Meta: `--meta HEX` or `--meta-file PATH` (hex, whitespace ignored; at
//!   most 512 bytes, Go `MetaMaxSize`). SIGHUP re-reads the file and
//!   re-announces the member (Go `UpdateNode`): the others print `update`.
//!   A file that no longer reads as meta keeps the old meta (one stderr
//!   line); SIGHUP never stops the agent.
//! - `GET /members`: a JSON array, by name, of every member of the table
//!   (dead and left ones too): `{"name","addr" (IP),"port","state" (alive,
//!   suspect, dead, left),"incarnation","meta" (hex)}`.
//! - `GET /metrics`: the engine's metrics (src/engine/telemetry.rs) as
//!   `metrics-exporter-prometheus` renders them: dots become underscores, as
//!   Go's go-metrics Prometheus sink spells them (`memberlist.udp.sent` →
//!   `memberlist_udp_sent`), counters without a `_total` suffix, histograms
//!   as summaries (quantiles, `_sum`, `_count`). Shards export once a second.
//! - `GET /health`: Lifeguard's health score, a bare JSON number (0 is
//!   healthy; Go `GetHealthScore`).
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ringswim::config::{Config, DEFAULT_PORT, META_MAX_SIZE};
use ringswim::delegate::{ChannelEventDelegate, Delegate, Node, NodeEvent, NodeEventKind};
use ringswim::engine::{Backend, BackendChoice, MemberInfo, Memberlist, Runtime, RuntimeOptions};
use ringswim::wire::Keyring;
use serde_json::json;

use super::write_stdout;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The member's name, unique in the cluster (Go `Config.Name`).
    #[arg(long)]
    name: String,
    /// Where to bind UDP and TCP (port 0: one the kernel picks, advertised).
    #[arg(long, value_name = "IP:PORT")]
    bind: SocketAddr,
    /// The address to advertise to the other members (NAT), when it is not
    /// the bound one (Go `AdvertiseAddr`, `AdvertisePort`).
    #[arg(long, value_name = "IP:PORT")]
    advertise: Option<SocketAddr>,
    /// A member to join at start: IP:PORT, IP (port 7946), [v6]:PORT, [v6]
    /// or a host name (every A and AAAA address); repeat for several. The
    /// agent exits 1 when none answers.
    #[arg(long = "join", value_name = "ADDR")]
    joins: Vec<String>,
    /// memberlist defaults: local, lan or wan (Go `DefaultLocalConfig`, …).
    #[arg(long, default_value = "lan", value_parser = ["local", "lan", "wan"])]
    profile: String,
    /// Encryption key, base64 of 16, 24 or 32 bytes; repeat for a keyring
    /// (the first encrypts, all decrypt).
    #[arg(long = "key", value_name = "BASE64")]
    keys: Vec<String>,
    /// Label every packet and stream with TEXT and require it inbound (Go
    /// 0.5 `Label`).
    #[arg(long, value_name = "TEXT", default_value = "")]
    label: String,
    /// Turn memberlist's LZW compression off (Go `EnableCompression`).
    #[arg(long)]
    no_compression: bool,
    /// Never fall back to a TCP ping when a probe's UDP ping and indirect
    /// pings go unanswered (Go `DisableTcpPings`): a member that only UDP
    /// cannot reach is then declared dead rather than kept alive.
    #[arg(long)]
    disable_tcp_pings: bool,
    /// Serve GET /members, /metrics and /health here (port 0: a free one).
    #[arg(long, value_name = "IP:PORT")]
    http: Option<SocketAddr>,
    /// The I/O backend (by default what RINGSWIM_BACKEND says, else
    /// io_uring where the kernel allows it, the portable one where not).
    #[arg(long, value_parser = ["uring", "portable"])]
    backend: Option<String>,
    /// The longest the leave broadcast may wait on SIGINT/SIGTERM, and a
    /// meta update's on SIGHUP, seconds (serf's `BroadcastTimeout` covers
    /// both too).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = super::positive_seconds)]
    leave_timeout: f64,
    /// This member's metadata (Go `Delegate.NodeMeta`), in hex as the agent
    /// prints meta: at most 512 bytes (Go `MetaMaxSize`).
    #[arg(long, value_name = "HEX", value_parser = parse_meta, conflicts_with = "meta_file")]
    meta: Option<Meta>,
    /// Read the metadata from FILE (hex as for --meta, whitespace ignored)
    /// at start and again on each SIGHUP, which re-announces the member
    /// with it (Go `UpdateNode`).
    #[arg(long, value_name = "FILE")]
    meta_file: Option<PathBuf>,
}

/// Node metadata as the agent takes it (`--meta`, `--meta-file`).
#[derive(Clone, Debug, Default)]
struct Meta(Vec<u8>);

/// Meta in hex, as the agent prints it, ASCII whitespace ignored (so that
/// `xxd -p`'s lines serve); at most [`META_MAX_SIZE`] bytes, which Go
/// refuses to announce (`MetaMaxSize`).
fn parse_meta(text: &str) -> Result<Meta, String> {
    let digits: String = text.split_ascii_whitespace().collect();
    let meta = hex::decode(&digits).map_err(|e| format!("not hex: {e}"))?;
    if meta.len() > META_MAX_SIZE {
        return Err(format!("{} bytes, over the limit of {META_MAX_SIZE} (Go MetaMaxSize)", meta.len()));
    }
    Ok(Meta(meta))
}

/// `--meta-file`'s meta.
fn read_meta_file(path: &Path) -> Result<Meta, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--meta-file {}: {e}", path.display()))?;
    parse_meta(&text).map_err(|e| format!("--meta-file {}: {e}", path.display()))
}

/// The member's metadata, handed to the core whenever it builds this
/// member's alive message (at start, on [`Memberlist::update_node`]).
#[derive(Default)]
struct AgentMeta(Mutex<Meta>);

impl AgentMeta {
    fn set(&self, meta: Meta) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = meta;
    }
}

impl Delegate for AgentMeta {
    fn node_meta(&self, _limit: usize) -> Vec<u8> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0.clone()
    }
}

#[derive(clap::Args)]
pub struct MembersArgs {
    /// The agent's --http address.
    #[arg(long, value_name = "IP:PORT")]
    http: SocketAddr,
}

/// How long `ringswim members` waits for the agent's answer.
const MEMBERS_TIMEOUT: Duration = Duration::from_secs(10);

/// `ringswim agent`: runs the member until SIGINT or SIGTERM, then leaves
/// and exits 0; SIGHUP re-reads `--meta-file`. Errors before that (bad
/// key, bind, join, meta file) are one line.
pub fn run_agent(args: &AgentArgs) -> Result<ExitCode, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // First, so that a signal during the join is not the default (death).
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("signal handlers: {e}"))?;
    let meta = Arc::new(AgentMeta::default());
    meta.set(match &args.meta_file {
        Some(path) => read_meta_file(path)?,
        None => args.meta.clone().unwrap_or_default(),
    });
    let seeds = args.joins.iter().map(|j| resolve_join(j)).collect::<Result<Vec<_>, _>>()?.concat();
    // The HTTP port before the member's: a refused --http starts nothing.
    let http = args
        .http
        .map(|at| tiny_http::Server::http(at).map(Arc::new).map_err(|e| format!("--http {at}: {e}")))
        .transpose()?;
    // Before the engine starts: its shards export to the recorder found then.
    let prometheus = match http {
        Some(_) => Some(PrometheusBuilder::new().install_recorder().map_err(|e| format!("metrics recorder: {e}"))?),
        None => None,
    };

    let (event_tx, events) = std::sync::mpsc::channel();
    let config = agent_config(args)?
        .with_events(Arc::new(ChannelEventDelegate::new(event_tx)))
        .with_delegate(Arc::clone(&meta) as Arc<dyn Delegate>);
    let backend = match args.backend.as_deref() {
        Some("uring") => BackendChoice::Only(Backend::Uring),
        Some("portable") => BackendChoice::Only(Backend::Portable),
        _ => BackendChoice::Auto,
    };
    let runtime = Runtime::new(RuntimeOptions { threads: 1, backend, pin: false }).map_err(|e| e.to_string())?;
    let member = Arc::new(runtime.host(config).map_err(|e| e.to_string())?);
    drop(runtime); // the member holds it
    let printer = std::thread::spawn(move || print_events(&events));

    let server = http.zip(prometheus).map(|(server, prometheus)| {
        let serving = std::thread::spawn({
            let (server, member) = (Arc::clone(&server), Arc::clone(&member));
            move || serve(&server, &member, &prometheus)
        });
        (server, serving)
    });
    let local = member.local_node().map_err(|e| e.to_string())?;
    let http = server.as_ref().and_then(|(s, _)| s.server_addr().to_ip());
    eprintln!(
        "ringswim agent {}: member at {}{}",
        local.name,
        local.address(),
        http.map(|a| format!("; http at {a}")).unwrap_or_default()
    );
    if !seeds.is_empty() {
        member.join(&seeds).map_err(|e| e.to_string())?;
    }

    let broadcast_timeout = Duration::from_secs_f64(args.leave_timeout);
    let mut signal = None;
    for caught in signals.forever() {
        if caught != SIGHUP {
            signal = Some(caught);
            break;
        }
        let outcome = match &args.meta_file {
            Some(path) => update_meta(&member, &meta, path, broadcast_timeout),
            None => "no --meta-file to re-read".to_owned(),
        };
        eprintln!("ringswim agent {}: signal {SIGHUP}: {outcome}", local.name);
    }
    eprintln!("ringswim agent {}: signal {}, leaving", local.name, signal.unwrap_or_default());
    if let Err(e) = member.leave(broadcast_timeout) {
        eprintln!("ringswim agent {}: {e}; shutting down anyway", local.name);
    }
    if let Some((server, serving)) = server {
        server.unblock();
        let _ = serving.join();
    }
    let _ = member.shutdown();
    // The last handle: the runtime stops, the event channel closes, and
    // the printer ends once every event is out.
    drop(member);
    let _ = printer.join();
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: the meta from `path`, announced (Go `UpdateNode`); what
/// happened, for the agent's stderr line. A file that does not read as meta
/// changes nothing.
fn update_meta(member: &Memberlist, meta: &AgentMeta, path: &Path, timeout: Duration) -> String {
    let new = match read_meta_file(path) {
        Ok(new) => new,
        Err(e) => return format!("{e}; meta unchanged"),
    };
    let len = new.0.len();
    meta.set(new);
    match member.update_node(timeout) {
        Ok(()) => format!("meta updated from {} ({len} bytes)", path.display()),
        Err(e) => format!("meta updated from {} ({len} bytes), not yet announced: {e}", path.display()),
    }
}

/// The member's `Config` from the flags (event and meta delegates aside).
fn agent_config(args: &AgentArgs) -> Result<Config, String> {
    let mut config = match args.profile.as_str() {
        "local" => Config::default_local(),
        "wan" => Config::default_wan(),
        _ => Config::default_lan(),
    }
    .with_name(args.name.clone());
    config.bind_addr = args.bind.ip();
    config.bind_port = args.bind.port();
    if let Some(advertise) = args.advertise {
        config.advertise_addr = Some(advertise.ip());
        config.advertise_port = advertise.port();
    }
    if !args.keys.is_empty() {
        let keys = args
            .keys
            .iter()
            .map(|k| {
                base64::engine::general_purpose::STANDARD.decode(k.trim()).map_err(|e| format!("--key {k:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let all: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let keyring = Keyring::new(&all, Some(&keys[0])).map_err(|e| format!("--key: {e}"))?;
        config = config.with_keyring(keyring);
    }
    config.label = args.label.clone();
    config.enable_compression = !args.no_compression;
    config.disable_tcp_pings = args.disable_tcp_pings;
    Ok(config)
}

/// The addresses of one `--join` value: `IP:PORT`, `IP`, `[v6]:PORT`,
/// `[v6]`, `HOST:PORT` or `HOST` (every address it resolves to), the port
/// 7946 (Go `DefaultLANConfig().BindPort`) where none is given.
fn resolve_join(value: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let unbracketed = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    let has_port =
        value.rsplit_once(':').is_some_and(|(host, port)| !host.contains(':') && port.parse::<u16>().is_ok());
    let resolved = if has_port { value.to_socket_addrs() } else { (value, DEFAULT_PORT).to_socket_addrs() };
    let addrs: Vec<SocketAddr> = resolved.map_err(|e| format!("--join {value}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("--join {value}: no address"));
    }
    Ok(addrs)
}

/// One JSON line per membership event until the channel closes.
fn print_events(events: &Receiver<NodeEvent>) {
    for event in events {
        let kind = match event.kind {
            NodeEventKind::Join => "join",
            NodeEventKind::Leave => "leave",
            NodeEventKind::Update => "update",
        };
        let node: &Node = &event.node;
        let line = json!({
            "event": kind,
            "node": node.name.as_str(),
            "addr": node.address().to_string(),
            "meta": hex::encode(&node.meta),
        });
        // Nobody reading stdout is no reason to stop the member.
        let _ = write_stdout(format!("{line}\n").as_bytes());
    }
}

/// Answers requests until the server is unblocked.
fn serve(server: &tiny_http::Server, member: &Memberlist, prometheus: &PrometheusHandle) {
    for request in server.incoming_requests() {
        let (status, content_type, body) = if *request.method() != tiny_http::Method::Get {
            (405, "text/plain", "GET only\n".to_owned())
        } else {
            match request.url() {
                "/members" => (200, "application/json", members_json(&mut member.member_states()).to_string()),
                "/metrics" => {
                    // Histograms are drained here, the recorder's upkeep.
                    prometheus.run_upkeep();
                    (200, "text/plain; version=0.0.4", prometheus.render())
                }
                "/health" => (200, "application/json", format!("{}\n", member.health_score())),
                _ => (404, "text/plain", "not found: GET /members, /metrics or /health\n".to_owned()),
            }
        };
        let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
        // A client that hung up is its own problem.
        let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status).with_header(header));
    }
}

/// `GET /members`: every member of the table, by name.
fn members_json(members: &mut [MemberInfo]) -> serde_json::Value {
    members.sort_by(|x, y| x.node.name.as_str().cmp(y.node.name.as_str()));
    members
        .iter()
        .map(|m| {
            json!({
                "name": m.node.name.as_str(),
                "addr": m.node.addr.to_string(),
                "port": m.node.port,
                "state": m.node.state.as_str(),
                "incarnation": m.incarnation,
                "meta": hex::encode(&m.node.meta),
            })
        })
        .collect()
}

/// `ringswim members --http IP:PORT`: the agent's `/members` as a table.
pub fn run_members(args: &MembersArgs) -> Result<ExitCode, String> {
    let url = format!("http://{}/members", args.http);
    let agent = ureq::Agent::config_builder().timeout_global(Some(MEMBERS_TIMEOUT)).build().new_agent();
    let body = agent
        .get(&url)
        .call()
        .and_then(|mut response| response.body_mut().read_to_string())
        .map_err(|e| format!("{url}: {e}"))?;
    let members: Vec<serde_json::Value> = serde_json::from_str(&body).map_err(|e| format!("{url}: {e}"))?;
    let mut rows = vec![["Name".to_owned(), "Address".to_owned(), "Status".to_owned(), "Incarnation".to_owned()]];
    for m in &members {
        let ip: IpAddr = m["addr"].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| format!("{url}: bad addr"))?;
        let port = m["port"].as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("{url}: bad port"))?;
        let text = |field: &str| m[field].as_str().map(str::to_owned).ok_or_else(|| format!("{url}: bad {field}"));
        let incarnation = m["incarnation"].as_u64().ok_or_else(|| format!("{url}: bad incarnation"))?;
        rows.push([text("name")?, SocketAddr::new(ip, port).to_string(), text("state")?, incarnation.to_string()]);
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    write_stdout(table.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_addresses_take_every_form_operators_write() {
        let one = |s: &str| resolve_join(s).expect(s);
        assert_eq!(one("10.0.0.1:7000"), ["10.0.0.1:7000".parse().unwrap()]);
        assert_eq!(one("10.0.0.1"), ["10.0.0.1:7946".parse().unwrap()]);
        assert_eq!(one("[fe80::1]:7000"), ["[fe80::1]:7000".parse().unwrap()]);
        assert_eq!(one("[fe80::1]"), ["[fe80::1]:7946".parse().unwrap()]);
        assert_eq!(one("fe80::1"), ["[fe80::1]:7946".parse().unwrap()]);
        // A host name: every address it has, the port given or 7946.
        let named = one("localhost:7000");
        assert!(!named.is_empty() && named.iter().all(|a| a.ip().is_loopback() && a.port() == 7000), "{named:?}");
        assert!(one("localhost").iter().all(|a| a.port() == 7946));
        let refused = resolve_join("no-such-host.invalid").expect_err("no such host");
        assert!(refused.starts_with("--join no-such-host.invalid: "), "{refused}");
    }
}
