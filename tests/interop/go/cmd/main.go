// Command gointerop: ringswim's Go memberlist interop tool. See
// tests/interop/go/zz_ringswim_interop.go (built by tests/interop/build.sh
// inside a scratch copy of Debian's memberlist 0.2.2 package).
package main

import (
	"os"

	"github.com/hashicorp/memberlist"
)

func main() {
	os.Exit(memberlist.RingswimInteropMain(os.Args[1:]))
}
