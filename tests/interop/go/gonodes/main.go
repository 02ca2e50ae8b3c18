// Command gonodes: K real Go memberlist 0.2.2 nodes in one process, on
// loopback, driven by JSON lines on stdin, for ringswim's live interop tests
// (tests/go_live.rs). Built by tests/interop/build.sh next to gointerop,
// against the same scratch copy of Debian's memberlist package; it uses the
// public API plus, from tests/interop/go/zz_ringswim_nodes.go,
// RingswimMemberStates (incarnations and dead/left members) and RingswimTap
// (what a node receives, decoded by Go's own receive paths).
//
// One JSON line in, one JSON line out: {"ok":true,...} or
// {"ok":false,"error":"..."}. Byte fields (msg, meta) are lowercase hex; keys
// are base64. Memberlist's own log goes to stderr, and each node keeps its
// own lines ("log").
//
//	{"cmd":"start","name":N,"compression":bool,"key":B64|"",
//	 "disable_tcp_pings":bool,"probe_interval_ms":0|ms,
//	 "push_pull_interval_ms":0|ms,"meta":HEX,"bind_addr":IP,"bind_port":P,
//	 "tap":bool}
//	    Create a node from DefaultLocalConfig bound to bind_addr:bind_port
//	    (default 127.0.0.1 and 0, a free port; "::1" for IPv6) ->
//	    {"ok":true,"name":N,"addr":IP,"port":P}.
//	    compression defaults to true (Go's default); probe_interval_ms and
//	    push_pull_interval_ms 0 keep Go's 1 s and 15 s. A name may start
//	    again once its node is shut down (same bind_port: same address).
//	    tap defaults to true; false gives the node memberlist's own
//	    NetTransport, without RingswimTap's second decode of every packet
//	    (what a CPU figure needs; "received" then answers an error).
//	{"cmd":"cluster","nodes":N,"prefix":P,"join_at_once":J, ...start's fields}
//	    Start N nodes named P0 .. P(N-1) (P defaults to "node-") as "start"
//	    would, each with the other fields given, then join P1 .. P(N-1) to
//	    P0, J joins at once (default 16, as `ringswim cluster`) ->
//	    {"start_s":s (first start to last join returned),"join_failed":n,
//	    "join_error":"first failure" (only when n > 0)}.
//	{"cmd":"alive"} -> {"alive":{N:n},"queued":q}  for every running node,
//	    the members it holds alive or suspect (NumMembers; what
//	    `ringswim cluster` counts with NotifyJoin/NotifyLeave), and the
//	    membership broadcasts still queued on all of them together.
//	{"cmd":"join","node":N,"addrs":["ip:port",...]}     -> {"joined":n}
//	{"cmd":"leave","node":N,"timeout_ms":ms}            Leave (keeps running)
//	{"cmd":"shutdown","node":N}  (also "kill")          Shutdown without leave
//	{"cmd":"members"[,"node":N]} -> {"views":{N:[{"name","addr","port",
//	    "state":"alive|suspect|dead|left","incarnation","meta"}]}} for every
//	    running node (or N): its whole member table, itself included.
//	{"cmd":"send","node":N,"to":NAME,"msg":HEX,"reliable":bool}
//	    SendBestEffort / SendReliable to the member NAME of N's table.
//	{"cmd":"messages","node":N} -> {"messages":[HEX...]}  user messages N got
//	    (NotifyMsg, or new in a push/pull's user state), oldest first.
//	{"cmd":"events","node":N} -> {"events":[{"kind":"join|leave|update",
//	    "name","state","meta"}]}  N's EventDelegate calls, oldest first.
//	{"cmd":"set_meta","node":N,"meta":HEX,"timeout_ms":ms}  NodeMeta, then
//	    UpdateNode(timeout).
//	{"cmd":"key","node":N,"op":"add|use|remove","key":B64}  N's Keyring.
//	{"cmd":"acks","node":N} -> {"acks":{NAME:{"count":n,"payload":HEX}}}
//	    N's PingDelegate: probes of NAME that got an ack, and the last ack's
//	    payload. Every node's AckPayload is its name prefixed "ack:".
//	{"cmd":"broadcast","node":N,"msg":HEX}  queue on N's TransmitLimitedQueue
//	    (GetBroadcasts piggybacks it; RetransmitMult as N's config).
//	{"cmd":"log","node":N} -> {"lines":[...]}  memberlist's log lines of N
//	    since it started ("[WARN] memberlist: handler queue full, ...").
//	{"cmd":"received","node":N} -> {"received":{KIND:n}}  what N's transport
//	    received, decoded as memberlist does (RingswimTap): "udp", "tcp"
//	    (packets, streams), "udp:nack", "tcp:push_pull", ... (messages by
//	    type, compound parts included), "udp:compressed", "tcp:compressed",
//	    "udp:undecoded", "tcp:undecoded" (encrypted: the tap has no key).
//	{"cmd":"quit"}                                       shut all down, exit 0
//
// User messages spread like ringswim's sim::Gossip delegate (serf's user
// events): a node queues every message it sees for the first time (received
// or its own broadcast) on its TransmitLimitedQueue, and its push/pull user
// state (LocalState / MergeRemoteState) carries every message seen, each as a
// 2-byte big-endian length and its bytes.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

type request struct {
	Cmd             string   `json:"cmd"`
	Name            string   `json:"name"`
	Node            string   `json:"node"`
	Compression     *bool    `json:"compression"`
	Key             string   `json:"key"`
	DisableTcpPings bool     `json:"disable_tcp_pings"`
	ProbeIntervalMs int      `json:"probe_interval_ms"`
	PushPullMs      int      `json:"push_pull_interval_ms"`
	Meta            string   `json:"meta"`
	Addrs           []string `json:"addrs"`
	TimeoutMs       int      `json:"timeout_ms"`
	To              string   `json:"to"`
	Msg             string   `json:"msg"`
	Reliable        bool     `json:"reliable"`
	Op              string   `json:"op"`
	BindAddr        string   `json:"bind_addr"`
	BindPort        int      `json:"bind_port"`
	Tap             *bool    `json:"tap"`
	Nodes           int      `json:"nodes"`
	Prefix          string   `json:"prefix"`
	JoinAtOnce      int      `json:"join_at_once"`
}

// broadcast is one user broadcast on a TransmitLimitedQueue.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

type event struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	State string `json:"state"`
	Meta  string `json:"meta"`
}

// node is one Go member with its delegates' records.
type node struct {
	name     string
	list     *memberlist.Memberlist
	keyring  *memberlist.Keyring
	queue    *memberlist.TransmitLimitedQueue
	tap      *memberlist.RingswimTap // nil when started with "tap":false
	log      *nodeLog
	mu       sync.Mutex
	meta     []byte
	messages []string
	seen     map[string]bool // every message seen, by its bytes
	events   []event
	acks     map[string]*ackRecord
}

// nodeLog is a node's memberlist log: each line goes to stderr (tagged with
// the node's name) and is kept for the "log" command.
type nodeLog struct {
	name  string
	mu    sync.Mutex
	lines []string
}

// Write takes one log line (log.Logger writes each line whole).
func (l *nodeLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	fmt.Fprintf(os.Stderr, "%s: %s\n", l.name, line)
	return len(p), nil
}

func (l *nodeLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

type ackRecord struct {
	Count   int    `json:"count"`
	Payload string `json:"payload"`
}

// Delegate
func (n *node) NodeMeta(limit int) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]byte(nil), n.meta...)
}
func (n *node) NotifyMsg(msg []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.messages = append(n.messages, hex.EncodeToString(msg))
	n.offerLocked(msg)
}

// offerLocked queues msg for broadcast if it is new (n.mu held).
func (n *node) offerLocked(msg []byte) {
	if !n.seen[string(msg)] {
		n.seen[string(msg)] = true
		n.queue.QueueBroadcast(broadcast(append([]byte(nil), msg...)))
	}
}
func (n *node) GetBroadcasts(overhead, limit int) [][]byte {
	return n.queue.GetBroadcasts(overhead, limit)
}
func (n *node) LocalState(join bool) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []byte
	for msg := range n.seen {
		out = append(out, byte(len(msg)>>8), byte(len(msg)))
		out = append(out, msg...)
	}
	return out
}
func (n *node) MergeRemoteState(buf []byte, join bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(buf) >= 2 {
		size := int(buf[0])<<8 | int(buf[1])
		if len(buf) < 2+size {
			return
		}
		msg := buf[2 : 2+size]
		if !n.seen[string(msg)] {
			n.messages = append(n.messages, hex.EncodeToString(msg))
			n.offerLocked(msg)
		}
		buf = buf[2+size:]
	}
}

// PingDelegate
func (n *node) AckPayload() []byte { return []byte("ack:" + n.name) }
func (n *node) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.acks[other.Name]
	if !ok {
		r = &ackRecord{}
		n.acks[other.Name] = r
	}
	r.Count++
	r.Payload = hex.EncodeToString(payload)
}

// EventDelegate
func (n *node) record(kind string, m *memberlist.Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, event{kind, m.Name, stateName(m.State), hex.EncodeToString(m.Meta)})
}
func (n *node) NotifyJoin(m *memberlist.Node)   { n.record("join", m) }
func (n *node) NotifyLeave(m *memberlist.Node)  { n.record("leave", m) }
func (n *node) NotifyUpdate(m *memberlist.Node) { n.record("update", m) }

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return fmt.Sprintf("unknown(%d)", int(s))
}

type member struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Port        uint16 `json:"port"`
	State       string `json:"state"`
	Incarnation uint32 `json:"incarnation"`
	Meta        string `json:"meta"`
}

func view(n *node) []member {
	out := []member{}
	for _, s := range n.list.RingswimMemberStates() {
		out = append(out, member{s.Node.Name, s.Node.Addr.String(), s.Node.Port, stateName(s.State), s.Incarnation, hex.EncodeToString(s.Node.Meta)})
	}
	return out
}

type harness struct {
	nodes map[string]*node // running nodes only
}

func (h *harness) get(name string) (*node, error) {
	n, ok := h.nodes[name]
	if !ok {
		return nil, fmt.Errorf("no running node %q", name)
	}
	return n, nil
}

func (h *harness) start(r *request) (map[string]interface{}, error) {
	if r.Name == "" {
		return nil, fmt.Errorf("start: no name")
	}
	if _, ok := h.nodes[r.Name]; ok {
		return nil, fmt.Errorf("start: %q is running", r.Name)
	}
	meta, err := hex.DecodeString(r.Meta)
	if err != nil {
		return nil, fmt.Errorf("start: meta: %v", err)
	}
	n := &node{name: r.Name, meta: meta, seen: map[string]bool{}, acks: map[string]*ackRecord{}}
	n.log = &nodeLog{name: r.Name}
	logger := log.New(n.log, "", log.LstdFlags)
	bindAddr := r.BindAddr
	if bindAddr == "" {
		bindAddr = "127.0.0.1"
	}
	conf := memberlist.DefaultLocalConfig()
	conf.Name = r.Name
	conf.BindAddr = bindAddr
	conf.Logger = logger
	if r.Compression != nil {
		conf.EnableCompression = *r.Compression
	}
	conf.DisableTcpPings = r.DisableTcpPings
	if r.PushPullMs > 0 {
		conf.PushPullInterval = time.Duration(r.PushPullMs) * time.Millisecond
	}
	if r.ProbeIntervalMs > 0 {
		conf.ProbeInterval = time.Duration(r.ProbeIntervalMs) * time.Millisecond
	}
	if r.Key != "" {
		key, err := base64.StdEncoding.DecodeString(r.Key)
		if err != nil {
			return nil, fmt.Errorf("start: key: %v", err)
		}
		conf.SecretKey = key
	}
	conf.Delegate = n
	conf.Events = n
	conf.Ping = n
	n.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: conf.RetransmitMult}
	conf.BindPort = r.BindPort
	if r.Tap == nil || *r.Tap {
		// Bound here (not by Create) so that the tap sees what the node gets.
		tap, err := memberlist.NewRingswimTap(bindAddr, r.BindPort, logger)
		if err != nil {
			return nil, fmt.Errorf("start: %v", err)
		}
		n.tap = tap
		conf.Transport = tap
		conf.BindPort = tap.GetAutoBindPort()
		conf.AdvertisePort = conf.BindPort
	}
	list, err := memberlist.Create(conf)
	if err != nil {
		if n.tap != nil {
			n.tap.Shutdown()
		}
		return nil, err
	}
	n.list = list
	n.keyring = conf.Keyring // Create installs SecretKey into a new keyring
	n.queue.NumNodes = list.NumMembers
	h.nodes[r.Name] = n
	local := list.LocalNode()
	return map[string]interface{}{"name": local.Name, "addr": local.Addr.String(), "port": local.Port}, nil
}

// cluster is the "cluster" command: nodes started one after another, then
// joined to the first, r.JoinAtOnce at a time.
func (h *harness) cluster(r *request) (map[string]interface{}, error) {
	if r.Nodes < 1 {
		return nil, fmt.Errorf("cluster: nodes %d", r.Nodes)
	}
	prefix := r.Prefix
	if prefix == "" {
		prefix = "node-"
	}
	atOnce := r.JoinAtOnce
	if atOnce < 1 {
		atOnce = 16
	}
	t0 := time.Now()
	nodes := make([]*node, r.Nodes)
	for i := range nodes {
		one := *r
		one.Name = fmt.Sprintf("%s%d", prefix, i)
		if _, err := h.start(&one); err != nil {
			return nil, fmt.Errorf("cluster: %s: %v", one.Name, err)
		}
		nodes[i] = h.nodes[one.Name]
	}
	seed := nodes[0].list.LocalNode()
	addr := net.JoinHostPort(seed.Addr.String(), strconv.Itoa(int(seed.Port)))
	var mu sync.Mutex
	failed, firstError := 0, ""
	joins := make(chan *node)
	var wg sync.WaitGroup
	for w := 0; w < atOnce; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range joins {
				// A failed join leaves the node alone until a push/pull
				// finds it; the caller sees it in join_failed.
				if _, err := n.list.Join([]string{addr}); err != nil {
					mu.Lock()
					if failed == 0 {
						firstError = err.Error()
					}
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range nodes[1:] {
		joins <- n
	}
	close(joins)
	wg.Wait()
	answer := map[string]interface{}{"start_s": time.Since(t0).Seconds(), "join_failed": failed}
	if failed > 0 {
		answer["join_error"] = firstError
	}
	return answer, nil
}

func (h *harness) handle(r *request) (map[string]interface{}, error) {
	switch r.Cmd {
	case "start":
		return h.start(r)
	case "cluster":
		return h.cluster(r)
	case "alive":
		alive, queued := map[string]int{}, 0
		for name, n := range h.nodes {
			alive[name] = n.list.NumMembers()
			queued += n.list.RingswimQueuedBroadcasts()
		}
		return map[string]interface{}{"alive": alive, "queued": queued}, nil
	}
	if r.Cmd == "members" {
		views := map[string][]member{}
		for name, n := range h.nodes {
			if r.Node == "" || r.Node == name {
				views[name] = view(n)
			}
		}
		if r.Node != "" && len(views) == 0 {
			return nil, fmt.Errorf("no running node %q", r.Node)
		}
		return map[string]interface{}{"views": views}, nil
	}
	n, err := h.get(r.Node)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(r.TimeoutMs) * time.Millisecond
	switch r.Cmd {
	case "join":
		joined, err := n.list.Join(r.Addrs)
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{"joined": joined}, nil
	case "leave":
		return nil, n.list.Leave(timeout)
	case "shutdown", "kill":
		delete(h.nodes, r.Node)
		return nil, n.list.Shutdown()
	case "send":
		msg, err := hex.DecodeString(r.Msg)
		if err != nil {
			return nil, err
		}
		var to *memberlist.Node
		for _, s := range n.list.RingswimMemberStates() {
			if s.Node.Name == r.To {
				node := s.Node
				to = &node
			}
		}
		if to == nil {
			return nil, fmt.Errorf("%s knows no member %q", r.Node, r.To)
		}
		if r.Reliable {
			return nil, n.list.SendReliable(to, msg)
		}
		return nil, n.list.SendBestEffort(to, msg)
	case "messages":
		n.mu.Lock()
		defer n.mu.Unlock()
		return map[string]interface{}{"messages": append([]string{}, n.messages...)}, nil
	case "events":
		n.mu.Lock()
		defer n.mu.Unlock()
		return map[string]interface{}{"events": append([]event{}, n.events...)}, nil
	case "acks":
		n.mu.Lock()
		defer n.mu.Unlock()
		acks := map[string]ackRecord{}
		for name, r := range n.acks {
			acks[name] = *r
		}
		return map[string]interface{}{"acks": acks}, nil
	case "set_meta":
		meta, err := hex.DecodeString(r.Meta)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.meta = meta
		n.mu.Unlock()
		return nil, n.list.UpdateNode(timeout)
	case "key":
		key, err := base64.StdEncoding.DecodeString(r.Key)
		if err != nil {
			return nil, err
		}
		if n.keyring == nil {
			return nil, fmt.Errorf("%s has no keyring (started without a key)", r.Node)
		}
		switch r.Op {
		case "add":
			return nil, n.keyring.AddKey(key)
		case "use":
			return nil, n.keyring.UseKey(key)
		case "remove":
			return nil, n.keyring.RemoveKey(key)
		}
		return nil, fmt.Errorf("key: unknown op %q", r.Op)
	case "log":
		return map[string]interface{}{"lines": n.log.snapshot()}, nil
	case "received":
		if n.tap == nil {
			return nil, fmt.Errorf("%s was started without the tap", r.Node)
		}
		return map[string]interface{}{"received": n.tap.Received()}, nil
	case "broadcast":
		msg, err := hex.DecodeString(r.Msg)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.offerLocked(msg)
		return nil, nil
	}
	return nil, fmt.Errorf("unknown command %q", r.Cmd)
}

func main() {
	h := &harness{nodes: map[string]*node{}}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var r request
		var answer map[string]interface{}
		var err error
		if err = json.Unmarshal(in.Bytes(), &r); err == nil {
			if r.Cmd == "quit" {
				break
			}
			answer, err = h.handle(&r)
		}
		if answer == nil {
			answer = map[string]interface{}{}
		}
		answer["ok"] = err == nil
		if err != nil {
			answer["error"] = err.Error()
		}
		enc.Encode(answer)
		out.Flush()
	}
	for _, n := range h.nodes {
		n.list.Shutdown()
	}
}
