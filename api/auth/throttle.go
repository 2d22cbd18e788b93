package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The login throttle slows password guessing down without locking anyone
// out. Failed logins are counted per (source address, user name): a few
// are free, then each further one locks that pair out for twice as long
// as the one before, up to a ceiling. A correct password from another
// address is never refused, whatever an attacker does elsewhere; the same
// address waits out its lockout like a guess would, since the throttle
// refuses before it checks. Counts are shared with the other nodes of a
// cluster (ShareFailures), so guessing through several nodes behind a load
// balancer gains nothing; they fade once a pair has not failed for a
// while.

// Throttle settings.
const (
	// freeFailures fail without a lockout, for a typo or three.
	freeFailures = 5
	// firstLockout follows the first failure beyond the free ones; each
	// further failure doubles it.
	firstLockout = time.Second
	// maxLockout is the longest lockout: past it, about four guesses an
	// hour per address and user.
	maxLockout = 15 * time.Minute
	// forgetFailures after a pair's lockout ended without a new failure,
	// its count is dropped.
	forgetFailures = time.Hour
	// maxThrottleEntries bounds the pairs remembered.
	maxThrottleEntries = 100_000
)

// throttleKey names a (source address, user name) pair without keeping
// either: a truncated SHA-256 of both.
type throttleKey [16]byte

func newThrottleKey(addr, user string) throttleKey {
	sum := sha256.Sum256([]byte("wharf login throttle\x00" + addr + "\x00" + user))
	var k throttleKey
	copy(k[:], sum[:])
	return k
}

// failures are a pair's failed logins, counted by the node that saw them:
// merging another node's count is taking the larger of the two, so a count
// gossiped twice or out of order is not counted twice.
type failures struct {
	byNode map[string]uint32
	last   time.Time
}

func (f *failures) total() int {
	n := 0
	for _, c := range f.byNode {
		n += int(c)
	}
	return n
}

// lockedUntil is when the pair may try again.
func (f *failures) lockedUntil() time.Time { return f.last.Add(lockout(f.total())) }

// lockout is how long a pair waits after its n-th failure.
func lockout(n int) time.Duration {
	if n <= freeFailures {
		return 0
	}
	if shift := n - freeFailures - 1; shift < 32 {
		return min(firstLockout<<shift, maxLockout)
	}
	return maxLockout
}

// throttle holds the failure counts of one node.
type throttle struct {
	node string // this node's name in the counts

	mu        sync.Mutex
	entries   map[throttleKey]*failures
	lastSweep time.Time
}

// sweepEvery is how often faded counts are dropped, on the next failure.
const sweepEvery = 10 * time.Minute

func newThrottle(node string) *throttle {
	return &throttle{node: node, entries: map[throttleKey]*failures{}}
}

// allow reports whether pair k may try to log in at now, and if not, how
// long it must wait.
func (t *throttle) allow(k throttleKey, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entries[k]
	if f == nil {
		return true, 0
	}
	if wait := f.lockedUntil().Sub(now); wait > 0 {
		return false, wait
	}
	return true, 0
}

// fail counts a failed login of pair k at now and returns the notice that
// tells the other nodes.
func (t *throttle) fail(k throttleKey, now time.Time) failureNotice {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entry(k, now)
	f.byNode[t.node]++
	f.last = now
	return failureNotice{key: k, node: t.node, count: f.byNode[t.node]}
}

// merge takes in another node's count, received at now.
func (t *throttle) merge(n failureNotice, now time.Time) {
	if n.node == t.node {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entry(n.key, now)
	if n.count > f.byNode[n.node] {
		f.byNode[n.node] = n.count
		f.last = now
	}
}

// entry returns pair k's failures, new if it has none, making room first
// when the table is full.
func (t *throttle) entry(k throttleKey, now time.Time) *failures {
	if now.Sub(t.lastSweep) > sweepEvery {
		t.forgetLocked(now)
	}
	if f := t.entries[k]; f != nil {
		return f
	}
	if len(t.entries) >= maxThrottleEntries {
		t.prune(now)
	}
	f := &failures{byNode: map[string]uint32{}}
	t.entries[k] = f
	return f
}

// prune drops the pairs not locked out now: under a flood of distinct
// pairs memory stays bounded, and a pair that is locked out stays so. If
// nearly every pair is locked out, it drops some of them, in map order,
// until a tenth of the table is free.
func (t *throttle) prune(now time.Time) {
	for k, f := range t.entries {
		if !f.lockedUntil().After(now) {
			delete(t.entries, k)
		}
	}
	for k := range t.entries {
		if len(t.entries) < maxThrottleEntries*9/10 {
			return
		}
		delete(t.entries, k)
	}
}

// forgetLocked drops the counts that have faded: pairs whose lockout
// ended forgetFailures ago.
func (t *throttle) forgetLocked(now time.Time) {
	t.lastSweep = now
	for k, f := range t.entries {
		if now.Sub(f.lockedUntil()) > forgetFailures {
			delete(t.entries, k)
		}
	}
}

// failureNotice tells the other nodes how many failures of a pair a node
// has seen.
type failureNotice struct {
	key   throttleKey
	node  string
	count uint32
}

// maxNodeName bounds the node name of a notice.
const maxNodeName = 255

// marshal encodes n: the key, the count, then the node name.
func (n failureNotice) marshal() []byte {
	b := make([]byte, 0, len(n.key)+4+len(n.node))
	b = append(b, n.key[:]...)
	b = binary.BigEndian.AppendUint32(b, n.count)
	return append(b, n.node...)
}

var errBadNotice = errors.New("malformed login failure notice")

func unmarshalFailureNotice(b []byte) (failureNotice, error) {
	var n failureNotice
	if len(b) < len(n.key)+4+1 || len(b) > len(n.key)+4+maxNodeName {
		return n, fmt.Errorf("%w: %d bytes", errBadNotice, len(b))
	}
	copy(n.key[:], b)
	n.count = binary.BigEndian.Uint32(b[len(n.key):])
	n.node = string(b[len(n.key)+4:])
	return n, nil
}
