package auth

import (
	"bytes"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{freeFailures, 0},
		{freeFailures + 1, firstLockout},
		{freeFailures + 2, 2 * firstLockout},
		{freeFailures + 5, 16 * firstLockout},
		{freeFailures + 11, maxLockout}, // 1024s is past the ceiling
		{freeFailures + 40, maxLockout}, // no overflow
		{1 << 30, maxLockout},
	}
	for _, tt := range tests {
		if got := lockout(tt.failures); got != tt.want {
			t.Errorf("lockout(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// TestThrottleSharesCounts: failures counted on two nodes add up, a notice
// received twice or late counts once, and a node ignores its own.
func TestThrottleSharesCounts(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, b := newThrottle("a"), newThrottle("b")
	pair, other := newThrottleKey("192.0.2.1", "alice"), newThrottleKey("192.0.2.2", "alice")
	var notices []failureNotice
	for range 3 {
		notices = append(notices, a.fail(pair, now))
		notices = append(notices, b.fail(pair, now))
	}
	// Six failures so far, three on each node; each learns the other's.
	for _, n := range notices {
		a.merge(n, now)
		b.merge(n, now)
	}
	a.merge(notices[0], now) // late, and a repeat
	for name, th := range map[string]*throttle{"a": a, "b": b} {
		if ok, wait := th.allow(pair, now); ok || wait != firstLockout {
			t.Errorf("node %s after 3+3 failures: allow = %v, wait %v; want a %v lockout", name, ok, wait, firstLockout)
		}
		if ok, _ := th.allow(other, now); !ok {
			t.Errorf("node %s refuses another address", name)
		}
		if got := th.entries[pair].total(); got != 6 {
			t.Errorf("node %s counts %d failures, want 6", name, got)
		}
	}
	if ok, _ := a.allow(pair, now.Add(firstLockout)); !ok {
		t.Error("still locked out once the lockout ended")
	}
}

func TestFailureNoticeRoundTrip(t *testing.T) {
	n := failureNotice{key: newThrottleKey("2001:db8::1", "bob"), node: "01JNODEID", count: 7}
	got, err := unmarshalFailureNotice(n.marshal())
	if err != nil || got != n {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, n)
	}
	for _, bad := range [][]byte{nil, make([]byte, 20), bytes.Repeat([]byte{1}, 16+4+maxNodeName+1)} {
		if _, err := unmarshalFailureNotice(bad); err == nil {
			t.Errorf("unmarshal of %d bytes succeeded", len(bad))
		}
	}
}

// TestThrottleBounded: a flood of distinct pairs keeps the table bounded
// and keeps the pairs that are locked out.
func TestThrottleBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newThrottle("a")
	victim := newThrottleKey("192.0.2.1", "alice")
	for range freeFailures + 3 {
		th.fail(victim, now)
	}
	for i := range maxThrottleEntries + 1000 {
		th.fail(newThrottleKey("198.51.100.1", string(rune(i))+"x"), now)
	}
	if n := len(th.entries); n > maxThrottleEntries {
		t.Fatalf("%d entries kept, limit %d", n, maxThrottleEntries)
	}
	if ok, _ := th.allow(victim, now); ok {
		t.Fatal("a flood of other pairs lifted a lockout")
	}
}

func TestClientAddress(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxy trusted: the header is ignored", "203.0.113.5:1000", []string{"198.51.100.1"}, nil, "203.0.113.5"},
		{"an untrusted peer's header is ignored", "203.0.113.5:1000", []string{"198.51.100.1"}, trusted, "203.0.113.5"},
		{"behind a trusted proxy", "10.1.2.3:1000", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"the right-most untrusted hop", "10.1.2.3:1000", []string{"6.6.6.6, 198.51.100.1, 192.0.2.9"}, trusted, "198.51.100.1"},
		{"several headers", "10.1.2.3:1000", []string{"6.6.6.6", "198.51.100.1"}, trusted, "198.51.100.1"},
		{"only trusted hops", "10.1.2.3:1000", []string{"10.9.9.9"}, trusted, "10.1.2.3"},
		{"no header", "10.1.2.3:1000", nil, trusted, "10.1.2.3"},
		{"a malformed hop", "10.1.2.3:1000", []string{"6.6.6.6, nonsense"}, trusted, "10.1.2.3"},
		{"IPv6", "[2001:db8::1]:1000", nil, trusted, "2001:db8::1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = tt.peer
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientAddress(tt.trusted)(r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad prefix was accepted")
	}
}

// FuzzFailureNotice: any bytes a peer gossips decode to a notice that
// encodes back to them, or are refused; none panic.
func FuzzFailureNotice(f *testing.F) {
	f.Add(failureNotice{key: newThrottleKey("192.0.2.1", "alice"), node: "n1", count: 3}.marshal())
	f.Add([]byte{})
	f.Add(make([]byte, 21))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := unmarshalFailureNotice(b)
		if err != nil {
			return
		}
		if got := n.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("marshal(unmarshal(%x)) = %x", b, got)
		}
	})
}
