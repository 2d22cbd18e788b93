// Package testnet hands tests loopback addresses to listen on.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
)

// Ports come from [base, base+span): below Linux's default ephemeral range
// (32768-60999), from which the kernel picks the local port of every
// outgoing connection. An address taken from that range with ":0" and
// closed again can be handed to a client connection before the test binds
// it (seen: "bind: address already in use" when a node restarted on its
// address); one from below it is only ever taken by another listener.
const (
	base = 20000
	span = 12000
)

// next is shared by every test of a binary; test binaries running at once
// start at random points so that they rarely probe the same ports.
var next atomic.Uint32

func init() { next.Store(rand.Uint32N(span)) }

// FreeAddr returns a loopback address, 127.0.0.1:port, that nothing
// listened on when it was checked.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range span {
		addr := fmt.Sprintf("127.0.0.1:%d", base+next.Add(1)%span)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			t.Fatalf("close probe listener on %s: %v", addr, err)
		}
		return addr
	}
	t.Fatalf("no free port in 127.0.0.1:%d-%d", base, base+span-1)
	return ""
}
