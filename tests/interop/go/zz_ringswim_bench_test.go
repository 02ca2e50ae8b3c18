// Go-side codec benchmarks for ringswim (NOT part of HashiCorp memberlist).
//
// tests/interop/build.sh copies this file into the scratch memberlist 0.2.2
// package; tests/interop/bench.sh runs
//
//	go test -run XXX -bench . -benchmem
//
// there. The "typical gossip packet" is a compound of 1 ping (with
// SourceAddr/Port/Node) + 5 alive messages (~20-char names, IPv4, ~40-byte
// Meta, 6-byte Vsn), ~700 bytes.
//
// If RINGSWIM_BENCH_PACKETS_DIR is set, the exact packets used are written
// there so the Rust benches can decode identical bytes:
//
//	typical.bin      plain compound
//	typical_lzw.bin  compressPayload(compound)
//	typical_aesgcm.bin encryptPayload v1 (compound), key 0x00..0x1f
//	typical_full.bin compress + crc + encrypt v1, key = 32 bytes 0x00..0x1f
package memberlist

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/ioutil"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func rsBenchKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func rsBenchMsgs() (*ping, []*alive) {
	p := &ping{
		SeqNo:      1234567,
		Node:       "node-0001.dc1.example",
		SourceAddr: []byte{10, 0, 0, 1},
		SourcePort: 7946,
		SourceNode: "node-0000.dc1.example",
	}
	var as []*alive
	for i := 0; i < 5; i++ {
		meta := []byte(fmt.Sprintf("role=web,zone=us-east-1a,rack=r%02d,build=%04d", i, 1000+i))
		as = append(as, &alive{
			Incarnation: uint32(100000 + i),
			Node:        fmt.Sprintf("node-%04d.dc1.example", 10+i),
			Addr:        []byte{10, 0, 1, byte(10 + i)},
			Port:        7946,
			Meta:        meta,
			Vsn:         []uint8{1, 5, 2, 0, 0, 0},
		})
	}
	return p, as
}

// rsBenchEncodeTypical: encode the 6 structs + makeCompoundMessage.
func rsBenchEncodeTypical(p *ping, as []*alive) ([]byte, error) {
	msgs := make([][]byte, 0, 1+len(as))
	out, err := encode(pingMsg, p)
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, out.Bytes())
	for _, a := range as {
		out, err := encode(aliveMsg, a)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, out.Bytes())
	}
	return makeCompoundMessage(msgs).Bytes(), nil
}

// rsBenchHandleCommand: the decode work handleCommand does per message type.
func rsBenchHandleCommand(buf []byte) (int, error) {
	if len(buf) < 1 {
		return 0, fmt.Errorf("missing message type byte")
	}
	t := messageType(buf[0])
	body := buf[1:]
	switch t {
	case compoundMsg:
		_, parts, err := decodeCompoundMessage(body)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, part := range parts {
			k, err := rsBenchHandleCommand(part)
			if err != nil {
				return 0, err
			}
			n += k
		}
		return n, nil
	case compressMsg:
		payload, err := decompressPayload(body)
		if err != nil {
			return 0, err
		}
		return rsBenchHandleCommand(payload)
	case pingMsg:
		var p ping
		return 1, decode(body, &p)
	case aliveMsg:
		var a alive
		return 1, decode(body, &a)
	case ackRespMsg:
		var a ackResp
		return 1, decode(body, &a)
	case suspectMsg:
		var s suspect
		return 1, decode(body, &s)
	case deadMsg:
		var d dead
		return 1, decode(body, &d)
	case userMsg:
		return 1, nil
	}
	return 0, fmt.Errorf("unexpected message type %d", t)
}

func rsBenchCrc(msg []byte) []byte {
	crc := crc32.ChecksumIEEE(msg)
	header := make([]byte, 5, 5+len(msg))
	header[0] = byte(hasCrcMsg)
	binary.BigEndian.PutUint32(header[1:], crc)
	return append(header, msg...)
}

func rsBenchEncrypt(msg []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := encryptPayload(1, rsBenchKey(), msg, nil, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type rsBenchPacketSet struct {
	typical, lzw, aesgcm, full []byte
	err                        error
}

var (
	rsBenchOnce    sync.Once
	rsBenchPackets rsBenchPacketSet
)

func rsBenchGetPackets(b *testing.B) rsBenchPacketSet {
	rsBenchOnce.Do(func() {
		s := &rsBenchPackets
		p, as := rsBenchMsgs()
		if s.typical, s.err = rsBenchEncodeTypical(p, as); s.err != nil {
			return
		}
		c, err := compressPayload(s.typical)
		if err != nil {
			s.err = err
			return
		}
		s.lzw = c.Bytes()
		if s.aesgcm, s.err = rsBenchEncrypt(s.typical); s.err != nil {
			return
		}
		if s.full, s.err = rsBenchEncrypt(rsBenchCrc(s.lzw)); s.err != nil {
			return
		}
		if dir := os.Getenv("RINGSWIM_BENCH_PACKETS_DIR"); dir != "" {
			if s.err = os.MkdirAll(dir, 0o755); s.err != nil {
				return
			}
			for name, data := range map[string][]byte{
				"typical.bin": s.typical, "typical_lzw.bin": s.lzw,
				"typical_aesgcm.bin": s.aesgcm, "typical_full.bin": s.full,
			} {
				if s.err = ioutil.WriteFile(filepath.Join(dir, name), data, 0o644); s.err != nil {
					return
				}
			}
		}
	})
	if rsBenchPackets.err != nil {
		b.Fatal(rsBenchPackets.err)
	}
	return rsBenchPackets
}

func rsBenchCheck(b *testing.B, n int, err error) {
	if err != nil {
		b.Fatal(err)
	}
	if n != 6 {
		b.Fatalf("decoded %d messages, want 6", n)
	}
}

func BenchmarkGoEncodeTypical(b *testing.B) {
	pk := rsBenchGetPackets(b)
	p, as := rsBenchMsgs()
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rsBenchEncodeTypical(p, as); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoDecodeTypical(b *testing.B) {
	pk := rsBenchGetPackets(b)
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := rsBenchHandleCommand(pk.typical)
		rsBenchCheck(b, n, err)
	}
}

func BenchmarkGoEncodeTypicalLZW(b *testing.B) {
	pk := rsBenchGetPackets(b)
	p, as := rsBenchMsgs()
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg, err := rsBenchEncodeTypical(p, as)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := compressPayload(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoDecodeTypicalLZW(b *testing.B) {
	pk := rsBenchGetPackets(b)
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := rsBenchHandleCommand(pk.lzw)
		rsBenchCheck(b, n, err)
	}
}

func BenchmarkGoEncodeTypicalAESGCM(b *testing.B) {
	pk := rsBenchGetPackets(b)
	p, as := rsBenchMsgs()
	key := rsBenchKey()
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg, err := rsBenchEncodeTypical(p, as)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := encryptPayload(1, key, msg, nil, &buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoDecodeTypicalAESGCM(b *testing.B) {
	pk := rsBenchGetPackets(b)
	keys := [][]byte{rsBenchKey()}
	b.SetBytes(int64(len(pk.typical)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plain, err := decryptPayload(keys, pk.aesgcm, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := rsBenchHandleCommand(plain)
		rsBenchCheck(b, n, err)
	}
}

// BenchmarkGoReceivePath: ingestPacket's work on a compress+crc+encrypt(v1)
// packet: decrypt -> crc check -> decompress -> decompound -> decode.
func BenchmarkGoReceivePath(b *testing.B) {
	pk := rsBenchGetPackets(b)
	keys := [][]byte{rsBenchKey()}
	b.SetBytes(int64(len(pk.full)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, err := decryptPayload(keys, pk.full, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(buf) >= 5 && messageType(buf[0]) == hasCrcMsg {
			if crc32.ChecksumIEEE(buf[5:]) != binary.BigEndian.Uint32(buf[1:5]) {
				b.Fatal("bad crc")
			}
			buf = buf[5:]
		} else {
			b.Fatal("missing crc")
		}
		n, err := rsBenchHandleCommand(buf)
		rsBenchCheck(b, n, err)
	}
}
