// Command defaults prints, as JSON, what Go memberlist's default
// configurations and config helpers produce, so that ringswim's
// tests/config_defaults.rs can compare its own values field by field.
//
// Build offline against the system copy of memberlist:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run ./tests/interop/defaults
//
// Output (keys sorted by encoding/json):
//
//	{
//	  "ProtocolVersionMin": 1, "ProtocolVersion2Compatible": 2,
//	  "ProtocolVersionMax": 5, "MetaMaxSize": 512,
//	  "lan": {...}, "wan": {...}, "local": {...},   // every Config field
//	  "BuildVsnArray": {"lan": [...], ...},
//	  "EncryptionEnabled": {"lan": false, ...},
//	  "ParseCIDRs": [{"input": [...], "nets": [...], "error": "..."}],
//	  "IPAllowed": [{"cidrs": [...], "ip": "...", "must_check": b, "allowed": b}]
//	}
//
// Config fields are walked by reflection so that a field this program does
// not know about still shows up (and fails the Rust test) instead of being
// silently skipped. Encoding of a field value:
//   - integers and bools: JSON numbers and booleans;
//   - time.Duration: integer nanoseconds;
//   - strings: JSON strings;
//   - []byte (SecretKey): null, or standard base64;
//   - []net.IPNet (CIDRsAllowed): null, or a list of "addr/prefix" strings;
//   - *Keyring: null, or {"keys": <number of keys>};
//   - any other pointer, interface or func (Transport, delegates, LogOutput,
//     Logger, DisableTcpPingsForNode): null, or the string "set".
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"reflect"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	durationType = reflect.TypeOf(time.Duration(0))
	ipNetsType   = reflect.TypeOf([]net.IPNet(nil))
	keyringType  = reflect.TypeOf((*memberlist.Keyring)(nil))
)

func fieldValue(name string, v reflect.Value) interface{} {
	switch {
	case v.Type() == durationType:
		return v.Int()
	case v.Type() == ipNetsType:
		if v.IsNil() {
			return nil
		}
		nets := v.Interface().([]net.IPNet)
		out := make([]string, 0, len(nets))
		for _, n := range nets {
			out = append(out, n.String())
		}
		return out
	case v.Type() == keyringType:
		if v.IsNil() {
			return nil
		}
		return map[string]int{"keys": len(v.Interface().(*memberlist.Keyring).GetKeys())}
	}
	switch v.Kind() {
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.String:
		return v.String()
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.IsNil() {
				return nil
			}
			return base64.StdEncoding.EncodeToString(v.Bytes())
		}
	case reflect.Ptr, reflect.Interface, reflect.Func, reflect.Map, reflect.Chan:
		if v.IsNil() {
			return nil
		}
		return "set"
	}
	fmt.Fprintf(os.Stderr, "defaults: field %s has unhandled type %s\n", name, v.Type())
	os.Exit(2)
	return nil
}

func dump(c *memberlist.Config) map[string]interface{} {
	out := map[string]interface{}{}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" { // unexported: not part of the API
			continue
		}
		out[f.Name] = fieldValue(f.Name, v.Field(i))
	}
	return out
}

// ints turns a byte slice into a list of numbers (encoding/json would
// otherwise write base64).
func ints(b []uint8) []int {
	out := make([]int, len(b))
	for i, x := range b {
		out[i] = int(x)
	}
	return out
}

type parsedNet struct {
	IP   string `json:"ip"` // hex of the network address: 4 bytes for IPv4, 16 for IPv6
	Ones int    `json:"ones"`
	Bits int    `json:"bits"`
}

type parseCase struct {
	Input []string    `json:"input"`
	Nets  []parsedNet `json:"nets"`
	Error *string     `json:"error"`
}

type allowCase struct {
	CIDRs     []string `json:"cidrs"`
	IP        string   `json:"ip"`
	MustCheck bool     `json:"must_check"`
	Allowed   bool     `json:"allowed"`
}

// cidrInputs are run through ParseCIDRs one by one and all together.
var cidrInputs = []string{
	"10.0.0.0/8", " 10.1.2.3/8 ", "\t192.168.1.1/24\n", "0.0.0.0/0", "1.2.3.4/32",
	"10.0.0.0/008", "2001:db8::1/32", "::/0", "::1/128", "::ffff:10.0.0.0/104",
	"::ffff:1.2.3.4/120", "fe80::1/64",
	"nonsense", "", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::/129", "010.0.0.0/8",
	"1.2.3.4/+8", "1.2.3.4/-1", "1.2.3.4/ 8", "1.2.3/8", "fe80::1%eth0/64",
	"1.2.3.4/8/8", "[::1]/128", "::ffff:01.2.3.4/128", "1:2:3:4:5:6:7:8:9/64",
	"FE80::/10", "::1.2.3.4/128", "1:2:3:4:5:6:1.2.3.4/128", "1:2:3:4:5:6:7:1.2.3.4/128",
	"1::2::3/64", ":1::/64", "1:2:3:4:5:6:7:8/64", "1:2:3:4:5:6:7::/64", "::ffff:1.2.3/96",
	"00001::/16", "0000000000000001::/16", "10000::/16", "1::0:00000ffff/128", "0.0.0.0/00000000032", "255.255.255.255/32", "256.0.0.0/8", "1.2.3.4\x00/8",
}

var allowLists = [][]string{
	nil,
	{},
	{"10.0.0.0/8"},
	{"10.0.0.0/8", "2001:db8::/32"},
	{"::/0"},
	{"0.0.0.0/0"},
	{"::ffff:0:0/96"},
	{"::ffff:10.0.0.0/104"},
	{"127.0.0.1/32"},
}

var allowIPs = []string{"10.1.2.3", "::ffff:10.1.2.3", "192.0.2.1", "2001:db8::7", "::1", "127.0.0.1", "0.0.0.0", "::"}

func parseCIDRs(input []string) parseCase {
	nets, err := memberlist.ParseCIDRs(input)
	c := parseCase{Input: input, Nets: []parsedNet{}}
	for _, n := range nets {
		ones, bits := n.Mask.Size()
		c.Nets = append(c.Nets, parsedNet{IP: hex.EncodeToString(n.IP), Ones: ones, Bits: bits})
	}
	if err != nil {
		s := err.Error()
		c.Error = &s
	}
	return c
}

func main() {
	lan := memberlist.DefaultLANConfig()
	wan := memberlist.DefaultWANConfig()
	local := memberlist.DefaultLocalConfig()

	var parses []parseCase
	for _, in := range cidrInputs {
		parses = append(parses, parseCIDRs([]string{in}))
	}
	parses = append(parses, parseCIDRs(cidrInputs), parseCIDRs(nil), parseCIDRs([]string{}))

	var allows []allowCase
	for _, list := range allowLists {
		conf := memberlist.DefaultLANConfig()
		if list != nil {
			nets, err := memberlist.ParseCIDRs(list)
			if err != nil {
				fmt.Fprintf(os.Stderr, "defaults: bad allow list %q: %v\n", list, err)
				os.Exit(2)
			}
			conf.CIDRsAllowed = nets
		}
		for _, ip := range allowIPs {
			parsed := net.ParseIP(ip)
			if parsed == nil {
				fmt.Fprintf(os.Stderr, "defaults: bad ip %q\n", ip)
				os.Exit(2)
			}
			allows = append(allows, allowCase{
				CIDRs:     list,
				IP:        ip,
				MustCheck: conf.IPMustBeChecked(),
				Allowed:   conf.IPAllowed(parsed) == nil,
			})
		}
	}

	out := map[string]interface{}{
		"ProtocolVersionMin":         memberlist.ProtocolVersionMin,
		"ProtocolVersion2Compatible": memberlist.ProtocolVersion2Compatible,
		"ProtocolVersionMax":         memberlist.ProtocolVersionMax,
		"MetaMaxSize":                memberlist.MetaMaxSize,
		"lan":                        dump(lan),
		"wan":                        dump(wan),
		"local":                      dump(local),
		"BuildVsnArray": map[string][]int{
			"lan": ints(lan.BuildVsnArray()), "wan": ints(wan.BuildVsnArray()), "local": ints(local.BuildVsnArray()),
		},
		"EncryptionEnabled": map[string]bool{
			"lan": lan.EncryptionEnabled(), "wan": wan.EncryptionEnabled(), "local": local.EncryptionEnabled(),
		},
		"ParseCIDRs": parses,
		"IPAllowed":  allows,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "defaults: %v\n", err)
		os.Exit(1)
	}
}
