//! ringswim's default configurations and config helpers against Go memberlist's.
//!
//! Builds and runs `tests/interop/defaults/main.go` (offline, against the
//! system copy of memberlist 0.2.2 under /usr/share/gocode), which prints
//! every field of Go's `DefaultLANConfig`, `DefaultWANConfig` and
//! `DefaultLocalConfig` plus the results of Go's `ParseCIDRs`, `IPAllowed`,
//! `BuildVsnArray` and `EncryptionEnabled` on fixed inputs, and compares them
//! field by field with ringswim's.
//!
//! Go is required: without it these tests fail (they never skip).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use ringswim::config::{self, Config, TransportChoice, parse_cidrs};
use serde_json::{Value, json};

const GOPATH: &str = "/usr/share/gocode";
const SETUP_HINT: &str =
    "run .ci/run, or install the Debian packages golang-go and golang-github-hashicorp-memberlist-dev";

/// Go's output, built and run once per test binary.
fn go() -> &'static Value {
    static OUTPUT: OnceLock<Value> = OnceLock::new();
    OUTPUT.get_or_init(run_go_program)
}

fn run_go_program() -> Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-defaults");
    std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("cannot create {}: {e}", work.display()));
    let memberlist = Path::new(GOPATH).join("src/github.com/hashicorp/memberlist");
    assert!(memberlist.is_dir(), "Go memberlist sources not found at {}: {SETUP_HINT}", memberlist.display());

    let binary = work.join("defaults");
    let build = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg("./tests/interop/defaults")
        .current_dir(manifest)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", work.join("gocache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output();
    let build = match build {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "the `go` command is not installed, so ringswim's defaults cannot be checked against Go memberlist's: {SETUP_HINT}"
            )
        }
        Err(e) => panic!("cannot run `go build`: {e} ({SETUP_HINT})"),
    };
    assert!(
        build.status.success(),
        "`go build ./tests/interop/defaults` failed ({}):\n{}\n{SETUP_HINT}",
        build.status,
        String::from_utf8_lossy(&build.stderr)
    );

    let run = Command::new(&binary).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}",
        binary.display(),
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("Go program printed invalid JSON ({e}):\n{}", String::from_utf8_lossy(&run.stdout)))
}

fn nanos(d: Duration) -> Value {
    json!(u64::try_from(d.as_nanos()).expect("duration fits in u64 nanoseconds"))
}

fn presence(set: bool) -> Value {
    if set { json!("set") } else { Value::Null }
}

/// Go fields ringswim has no field for, on purpose: why is in the table of
/// `src/config.rs` (checked by `every_go_field_is_in_the_config_table`).
const ABSENT: [&str; 3] = ["DNSConfigPath", "LogOutput", "Logger"];

/// ringswim's config in the encoding the Go program uses, keyed by Go field
/// name. Every Go 0.2.2 field appears exactly once, but those in [`ABSENT`].
fn as_go_fields(c: &Config) -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("Name", json!(c.name)),
        // Go's nil Transport ("build the default one") is ringswim's Auto.
        (
            "Transport",
            match c.transport {
                TransportChoice::Auto => Value::Null,
                other => json!(format!("{other:?}")),
            },
        ),
        ("BindAddr", json!(c.bind_addr.to_string())),
        ("BindPort", json!(c.bind_port)),
        ("AdvertiseAddr", json!(c.advertise_addr.map(|a| a.to_string()).unwrap_or_default())),
        ("AdvertisePort", json!(c.advertise_port)),
        ("ProtocolVersion", json!(c.protocol_version)),
        ("TCPTimeout", nanos(c.tcp_timeout)),
        ("IndirectChecks", json!(c.indirect_checks)),
        ("RetransmitMult", json!(c.retransmit_mult)),
        ("SuspicionMult", json!(c.suspicion_mult)),
        ("SuspicionMaxTimeoutMult", json!(c.suspicion_max_timeout_mult)),
        ("PushPullInterval", nanos(c.push_pull_interval)),
        ("ProbeInterval", nanos(c.probe_interval)),
        ("ProbeTimeout", nanos(c.probe_timeout)),
        ("DisableTcpPings", json!(c.disable_tcp_pings)),
        ("DisableTcpPingsForNode", presence(c.disable_tcp_pings_for_node.is_some())),
        ("AwarenessMaxMultiplier", json!(c.awareness_max_multiplier)),
        ("GossipInterval", nanos(c.gossip_interval)),
        ("GossipNodes", json!(c.gossip_nodes)),
        ("GossipToTheDeadTime", nanos(c.gossip_to_the_dead_time)),
        ("GossipVerifyIncoming", json!(c.gossip_verify_incoming)),
        ("GossipVerifyOutgoing", json!(c.gossip_verify_outgoing)),
        ("EnableCompression", json!(c.enable_compression)),
        (
            "SecretKey",
            c.secret_key.as_ref().map_or(Value::Null, |k| json!(base64::engine::general_purpose::STANDARD.encode(k))),
        ),
        ("Keyring", c.keyring.as_ref().map_or(Value::Null, |r| json!({ "keys": r.keys().len() }))),
        ("Delegate", presence(c.delegate.is_some())),
        ("DelegateProtocolVersion", json!(c.delegate_protocol_version)),
        ("DelegateProtocolMin", json!(c.delegate_protocol_min)),
        ("DelegateProtocolMax", json!(c.delegate_protocol_max)),
        ("Events", presence(c.events.is_some())),
        ("Conflict", presence(c.conflict.is_some())),
        ("Merge", presence(c.merge.is_some())),
        ("Ping", presence(c.ping.is_some())),
        ("Alive", presence(c.alive.is_some())),
        ("HandoffQueueDepth", json!(c.handoff_queue_depth)),
        ("UDPBufferSize", json!(c.udp_buffer_size)),
        ("DeadNodeReclaimTime", nanos(c.dead_node_reclaim_time)),
        ("RequireNodeNames", json!(c.require_node_names)),
        (
            "CIDRsAllowed",
            c.cidrs_allowed
                .as_ref()
                .map_or(Value::Null, |nets| json!(nets.iter().map(ToString::to_string).collect::<Vec<_>>())),
        ),
    ])
}

fn compare_profile(profile: &str, rust: &Config) {
    let go = go()[profile].as_object().unwrap_or_else(|| panic!("Go output has no `{profile}` object"));
    let rust = as_go_fields(rust);
    let mut problems = Vec::new();
    for (field, go_value) in go {
        match rust.get(field.as_str()) {
            None if ABSENT.contains(&field.as_str()) => {}
            None => problems.push(format!(
                "{profile}: Go has field `{field}` = {go_value}, which ringswim's Config does not map (add it to Config and to as_go_fields)"
            )),
            Some(rust_value) if rust_value != go_value => {
                let hint = if field == "Name" {
                    " (Name is the host name: Go's os.Hostname and /proc/sys/kernel/hostname disagree)"
                } else {
                    ""
                };
                problems.push(format!("{profile}: field `{field}`: Go = {go_value}, ringswim = {rust_value}{hint}"));
            }
            Some(_) => {}
        }
    }
    for field in rust.keys() {
        if !go.contains_key(*field) {
            problems.push(format!("{profile}: ringswim maps `{field}`, which Go's Config does not have"));
        }
    }
    assert!(problems.is_empty(), "{} mismatch(es) with Go memberlist:\n  {}", problems.len(), problems.join("\n  "));
}

#[test]
fn lan_defaults_match_go() {
    compare_profile("lan", &Config::default_lan());
    compare_profile("lan", &Config::default());
}

#[test]
fn wan_defaults_match_go() {
    compare_profile("wan", &Config::default_wan());
}

#[test]
fn local_defaults_match_go() {
    compare_profile("local", &Config::default_local());
}

/// A Go user looks up a Go field name in `config`'s documentation: each has
/// a row in its table, naming the ringswim field or why there is none.
#[test]
fn every_go_field_is_in_the_config_table() {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs")).expect("config.rs");
    let rows: Vec<&str> = source.lines().filter_map(|l| l.strip_prefix("//! | ")).collect();
    let go_fields = go()["lan"].as_object().expect("Go's LAN config");
    assert!(go_fields.len() > 40, "{} Go fields", go_fields.len());
    let mut problems = Vec::new();
    for field in go_fields.keys() {
        // The first column: the Go names of the row.
        let row = rows.iter().find(|r| r.split(" | ").next().is_some_and(|go| go.contains(&format!("`{field}`"))));
        match row {
            None => problems.push(format!("`{field}` has no row")),
            Some(row) => {
                let ours = row.split(" | ").nth(1).unwrap_or_default();
                let absent = ours == "—";
                if absent != ABSENT.contains(&field.as_str()) {
                    problems
                        .push(format!("`{field}`: the table says {ours:?}, tests/config_defaults.rs ABSENT disagrees"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "the Go field table in src/config.rs:\n  {}", problems.join("\n  "));
}

#[test]
fn constants_match_go() {
    let go = go();
    for (name, rust) in [
        ("ProtocolVersionMin", u64::from(config::PROTOCOL_VERSION_MIN)),
        ("ProtocolVersion2Compatible", u64::from(config::PROTOCOL_VERSION_2_COMPATIBLE)),
        ("ProtocolVersionMax", u64::from(config::PROTOCOL_VERSION_MAX)),
        ("MetaMaxSize", config::META_MAX_SIZE as u64),
    ] {
        assert_eq!(go[name].as_u64(), Some(rust), "constant `{name}`: Go = {}, ringswim = {rust}", go[name]);
    }
}

#[test]
fn helpers_on_defaults_match_go() {
    for (profile, config) in
        [("lan", Config::default_lan()), ("wan", Config::default_wan()), ("local", Config::default_local())]
    {
        let vsn = &go()["BuildVsnArray"][profile];
        assert_eq!(
            vsn,
            &json!(config.build_vsn_array()),
            "{profile}: BuildVsnArray: Go = {vsn}, ringswim = {:?}",
            config.build_vsn_array()
        );
        let enc = &go()["EncryptionEnabled"][profile];
        assert_eq!(enc, &json!(config.encryption_enabled()), "{profile}: EncryptionEnabled: Go = {enc}");
    }
}

#[test]
fn label_settings_default_to_off() {
    // memberlist 0.5's defaults leave Label and SkipInboundLabelCheck at their
    // zero values; 0.2.2 (which the Go program uses) has neither.
    for config in [Config::default_lan(), Config::default_wan(), Config::default_local()] {
        assert_eq!(config.label, "");
        assert!(!config.skip_inbound_label_check);
    }
}

/// A parsed network the way the Go program prints it.
fn net_json(net: &IpNet) -> Value {
    let ip = match net.network() {
        IpAddr::V4(a) => hex::encode(a.octets()),
        IpAddr::V6(a) => hex::encode(a.octets()),
    };
    json!({ "ip": ip, "ones": net.prefix_len(), "bits": net.max_prefix_len() })
}

/// The entries Go's multierror message lists as invalid.
fn go_invalid_entries(message: &str) -> Vec<String> {
    message.lines().filter_map(|line| line.strip_prefix("\t* invalid cidr: ")).map(str::to_owned).collect()
}

#[test]
fn parse_cidrs_matches_go() {
    let cases = go()["ParseCIDRs"].as_array().expect("ParseCIDRs cases");
    assert!(!cases.is_empty());
    let mut problems = Vec::new();
    for case in cases {
        let input: Vec<String> = match &case["input"] {
            Value::Null => Vec::new(),
            list => serde_json::from_value(list.clone()).expect("input list"),
        };
        let (nets, invalid) = match parse_cidrs(&input) {
            Ok(nets) => (nets, Vec::new()),
            Err(e) => (e.parsed, e.invalid),
        };
        let rust_nets: Vec<Value> = nets.iter().map(net_json).collect();
        if json!(rust_nets) != case["nets"] {
            problems.push(format!(
                "ParseCIDRs({input:?}): networks: Go = {}, ringswim = {}",
                case["nets"],
                json!(rust_nets)
            ));
        }
        let go_invalid = case["error"].as_str().map(go_invalid_entries).unwrap_or_default();
        if go_invalid != invalid {
            problems
                .push(format!("ParseCIDRs({input:?}): invalid entries: Go = {go_invalid:?}, ringswim = {invalid:?}"));
        }
        if case["error"].is_null() != invalid.is_empty() {
            problems
                .push(format!("ParseCIDRs({input:?}): Go error = {}, ringswim invalid = {invalid:?}", case["error"]));
        }
    }
    assert!(problems.is_empty(), "{} mismatch(es) with Go:\n  {}", problems.len(), problems.join("\n  "));
}

#[test]
fn ip_allowed_matches_go() {
    let cases = go()["IPAllowed"].as_array().expect("IPAllowed cases");
    assert!(!cases.is_empty());
    let mut problems = Vec::new();
    for case in cases {
        let cidrs: Option<Vec<String>> = serde_json::from_value(case["cidrs"].clone()).expect("cidrs");
        let nets = cidrs.as_ref().map(|list| parse_cidrs(list).expect("Go parsed this list"));
        let config = Config::default_lan().with_cidrs_allowed(nets);
        let ip: IpAddr = case["ip"].as_str().expect("ip").parse().expect("valid ip");
        let must = config.ip_must_be_checked();
        let allowed = config.ip_allowed(ip).is_ok();
        if json!(must) != case["must_check"] {
            problems.push(format!(
                "CIDRsAllowed {cidrs:?}: IPMustBeChecked: Go = {}, ringswim = {must}",
                case["must_check"]
            ));
        }
        if json!(allowed) != case["allowed"] {
            problems.push(format!(
                "CIDRsAllowed {cidrs:?}: IPAllowed({ip}): Go = {}, ringswim = {allowed}",
                case["allowed"]
            ));
        }
    }
    assert!(problems.is_empty(), "{} mismatch(es) with Go:\n  {}", problems.len(), problems.join("\n  "));
}
