package auth

import (
	"sync"
	"time"
)

// throttle is a set of token buckets, one per key (a user name or a source
// address), that failed logins drain. A key whose bucket is empty is
// refused until it refills. Buckets live in memory, per node.
type throttle struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int // buckets kept before full ones are dropped
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newThrottle(perMinute, burst, max int) *throttle {
	return &throttle{rate: float64(perMinute) / 60, burst: float64(burst), max: max, buckets: map[string]*bucket{}}
}

// allow reports whether key may try to log in at now, and if not, how long
// until it may.
func (t *throttle) allow(key string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(key, now)
	if b == nil || b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / t.rate * float64(time.Second))
}

// fail drains one token from key's bucket.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(key, now)
	if b == nil {
		if len(t.buckets) >= t.max {
			t.prune(now)
		}
		b = &bucket{tokens: t.burst, last: now}
		t.buckets[key] = b
	}
	b.tokens = max(b.tokens-1, 0)
}

// refill brings key's bucket up to now; nil if it has none.
func (t *throttle) refill(key string, now time.Time) *bucket {
	b := t.buckets[key]
	if b == nil {
		return nil
	}
	if now.After(b.last) {
		b.tokens = min(t.burst, b.tokens+now.Sub(b.last).Seconds()*t.rate)
		b.last = now
	}
	return b
}

// prune drops full buckets, and every bucket if that is not enough: under
// a flood of distinct keys, memory stays bounded.
func (t *throttle) prune(now time.Time) {
	for k := range t.buckets {
		if b := t.refill(k, now); b.tokens >= t.burst {
			delete(t.buckets, k)
		}
	}
	if len(t.buckets) >= t.max {
		clear(t.buckets)
	}
}
