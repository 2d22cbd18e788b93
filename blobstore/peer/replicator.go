package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// defaultMaxPushes bounds concurrent pushes when the configuration does not.
const defaultMaxPushes = 4

// ReplicatorConfig configures a Replicator.
type ReplicatorConfig struct {
	Store  *blobstore.Store // where the blobs to copy are
	Client *http.Client     // reaches the peers
	// MaxPushes bounds the pushes in flight across all Replicate calls;
	// 0 means 4.
	MaxPushes int
}

// Replicator copies local blobs to other nodes. It is safe for concurrent
// use.
type Replicator struct {
	store  *blobstore.Store
	client *http.Client
	slots  chan struct{} // one token per push in flight
}

// NewReplicator returns a Replicator.
func NewReplicator(cfg ReplicatorConfig) (*Replicator, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("peer: replicator needs a store and a client")
	}
	n := cfg.MaxPushes
	if n <= 0 {
		n = defaultMaxPushes
	}
	return &Replicator{store: cfg.Store, client: cfg.Client, slots: make(chan struct{}, n)}, nil
}

// Replicate pushes the local blob d to every target (peer base URLs) at
// once, within the Replicator's bound, and calls report for each target
// with nil once the target holds a durable copy, or with the error that
// prevented it. Calls to report are serialized. Replicate returns after the
// last report.
func (r *Replicator) Replicate(ctx context.Context, d digest.Digest, targets []string, report func(target string, err error)) {
	var (
		wg       sync.WaitGroup
		reportMu sync.Mutex
	)
	for _, target := range targets {
		wg.Go(func() {
			err := r.push(ctx, d, target)
			reportMu.Lock()
			defer reportMu.Unlock()
			report(target, err)
		})
	}
	wg.Wait()
}

// push copies d to target through a file of its own, once a slot is free.
func (r *Replicator) push(ctx context.Context, d digest.Digest, target string) error {
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		return fmt.Errorf("push %s to %s: %w", d, target, context.Cause(ctx))
	}
	f, err := r.store.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", d, target, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", d, target, err)
	}
	return Push(ctx, r.client, target, d, info.Size(), f)
}
