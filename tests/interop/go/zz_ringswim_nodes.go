// ringswim live interop: what the `gonodes` helper needs from inside the package.
//
// This file is NOT part of HashiCorp memberlist. tests/interop/build.sh copies
// it into the scratch copy of the Debian memberlist 0.2.2 package (see
// zz_ringswim_interop.go) because a member's incarnation, and the dead and
// left members, are only in the unexported nodeMap: Members() hides them.
// tests/interop/go/gonodes/main.go uses only this and the public API.
// RingswimTap (below) counts what a node receives, decoded by Go's own
// receive paths, for the same reason: those decoders are unexported.

package memberlist

import (
	"log"
	"net"
	"sync"
	"time"
)

// RingswimMemberState is one entry of a node's member table.
type RingswimMemberState struct {
	Node        Node
	Incarnation uint32
	State       NodeStateType
}

// RingswimMemberStates returns every member this node knows, dead and left
// ones included, with its state and incarnation (a copy, under nodeLock).
func (m *Memberlist) RingswimMemberStates() []RingswimMemberState {
	m.nodeLock.RLock()
	defer m.nodeLock.RUnlock()
	out := make([]RingswimMemberState, 0, len(m.nodes))
	for _, n := range m.nodes {
		node := n.Node
		node.Meta = append([]byte(nil), n.Meta...)
		out = append(out, RingswimMemberState{Node: node, Incarnation: n.Incarnation, State: n.State})
	}
	return out
}

// RingswimQueuedBroadcasts is how many membership broadcasts (alive,
// suspect, dead) this node still holds on its own queue, the unexported
// m.broadcasts: 0 once it has sent each its budget of times.
func (m *Memberlist) RingswimQueuedBroadcasts() int {
	return m.broadcasts.NumQueued()
}

// RingswimTap is a NetTransport that also decodes, with Go's own receive
// paths (rsDecode, zz_ringswim_interop.go), every packet and stream its
// node receives, and counts them by kind: "udp" and "tcp" (packets, streams
// read), "udp:TYPE" and "tcp:TYPE" (messages, compound parts included:
// "nack", "indirect_ping", "push_pull", ...), "udp:compressed" and
// "tcp:compressed" (packets and streams with a compress layer),
// "udp:undecoded" and "tcp:undecoded" (encrypted ones: the tap has no key).
// What the node does with them is memberlist's business, unchanged.
type RingswimTap struct {
	*NetTransport
	packets  chan *Packet
	streams  chan net.Conn
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	received map[string]int
}

// rsTapMaxStream is how much of a stream the tap keeps to decode (push/pull
// states of the tests are far smaller).
const rsTapMaxStream = 4 << 20

// NewRingswimTap binds a NetTransport on bindAddr:bindPort (port 0: a free
// one, retried as memberlist's Create does) and starts tapping it.
func NewRingswimTap(bindAddr string, bindPort int, logger *log.Logger) (*RingswimTap, error) {
	conf := &NetTransportConfig{BindAddrs: []string{bindAddr}, BindPort: bindPort, Logger: logger}
	var nt *NetTransport
	var err error
	for try := 0; try < 10; try++ {
		if nt, err = NewNetTransport(conf); err == nil || bindPort != 0 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	t := &RingswimTap{
		NetTransport: nt,
		packets:      make(chan *Packet),
		streams:      make(chan net.Conn),
		done:         make(chan struct{}),
		received:     map[string]int{},
	}
	go t.forwardPackets()
	go t.forwardStreams()
	return t, nil
}

// Received is a copy of the counts so far.
func (t *RingswimTap) Received() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.received {
		out[k] = v
	}
	return out
}

func (t *RingswimTap) record(kind string, buf []byte) {
	res, err := rsDecode(buf, rsDecOpts{Stream: kind == "tcp"})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.received[kind]++
	if err != nil {
		t.received[kind+":undecoded"]++
		return
	}
	if res.Compressed {
		t.received[kind+":compressed"]++
	}
	for _, m := range res.Messages {
		t.received[kind+":"+m.Type]++
	}
}

func (t *RingswimTap) forwardPackets() {
	for {
		select {
		case p := <-t.NetTransport.PacketCh():
			t.record("udp", p.Buf)
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *RingswimTap) forwardStreams() {
	for {
		select {
		case c := <-t.NetTransport.StreamCh():
			select {
			case t.streams <- &rsTapConn{Conn: c, tap: t}:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// See Transport.
func (t *RingswimTap) PacketCh() <-chan *Packet { return t.packets }

// See Transport.
func (t *RingswimTap) StreamCh() <-chan net.Conn { return t.streams }

// See Transport.
func (t *RingswimTap) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.tapConn(t.NetTransport.DialTimeout(addr, timeout))
}

// See NodeAwareTransport.
func (t *RingswimTap) DialAddressTimeout(a Address, timeout time.Duration) (net.Conn, error) {
	return t.tapConn(t.NetTransport.DialAddressTimeout(a, timeout))
}

func (t *RingswimTap) tapConn(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return &rsTapConn{Conn: c, tap: t}, nil
}

// See Transport. The listeners stop first, while the forwarders still drain
// them (memberlist still reads ours then): NetTransport's listeners block
// on their unbuffered channels, and its Shutdown waits for them.
func (t *RingswimTap) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.stopOnce.Do(func() { close(t.done) })
	return err
}

// rsTapConn keeps what is read from a stream, and has the tap decode it
// when memberlist closes the connection (one message a connection is read:
// the push/pull, user message or ping the peer sent, or its reply to ours).
type rsTapConn struct {
	net.Conn
	tap  *RingswimTap
	mu   sync.Mutex
	read []byte
	once sync.Once
}

func (c *rsTapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.read)+n <= rsTapMaxStream {
		c.read = append(c.read, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *rsTapConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		read := c.read
		c.mu.Unlock()
		if len(read) > 0 {
			c.tap.record("tcp", read)
		}
	})
	return c.Conn.Close()
}
