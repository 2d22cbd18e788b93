package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Limits of the cache of verified passwords.
const (
	verifiedTTL = 5 * time.Minute
	maxVerified = 10_000
)

// verifiedCache remembers, for a while, that a password matched a stored
// hash. Entries are keyed by a SHA-256 of the stored hash (which carries a
// random salt) and the password, so a changed password (a new hash)
// misses, and the cache holds no password in the clear.
type verifiedCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[[32]byte]time.Time
}

func newVerifiedCache(ttl time.Duration, max int) *verifiedCache {
	return &verifiedCache{ttl: ttl, max: max, entries: map[[32]byte]time.Time{}}
}

func verifiedKey(hash, password string) [32]byte {
	return sha256.Sum256([]byte(hash + "\x00" + password))
}

// hit reports whether password was verified against hash within the TTL.
func (c *verifiedCache) hit(hash, password string, now time.Time) bool {
	k := verifiedKey(hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if ok && now.After(exp) {
		delete(c.entries, k)
		return false
	}
	return ok
}

// add remembers that password matches hash.
func (c *verifiedCache) add(hash, password string, now time.Time) {
	k := verifiedKey(hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for key, exp := range c.entries {
			if now.After(exp) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[k] = now.Add(c.ttl)
}
