package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore/placement"
	"github.com/wharf-registry/wharf/fsm"
)

// stored starts copying a blob a client just stored on this node to its
// owners, in the background. The node's own holder record is written by
// the command that links the blob (or by Hold).
func (s *Store) stored(ctx context.Context, d digest.Digest, size int64) {
	s.copyInBackground(d, size)
}

// Held reports whether some node is recorded as holding blob d, and its
// size, from the local state (read after the caller's read index).
func (s *Store) Held(ctx context.Context, d digest.Digest) (int64, bool, error) {
	rec, err := s.cfg.Cluster.BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) || (err == nil && len(rec.GetNodeIds()) == 0) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return rec.GetSize(), true, nil
}

// hold records that this node holds blob d.
func (s *Store) hold(ctx context.Context, d digest.Digest, size int64) error {
	if err := s.cfg.Cluster.AddBlobHolder(ctx, d, size, s.cfg.Cluster.LocalID()); err != nil {
		return err
	}
	s.recorded.signal()
	return nil
}

// copyInBackground copies d to its owners unless a copy is already running.
func (s *Store) copyInBackground(d digest.Digest, size int64) { s.copyAfter(d, size, nil) }

// copyAfter copies d to its owners unless a copy is already running: first
// through the upload's mirror m, if not nil, then to the owners still
// missing. A mirror not used is cancelled.
func (s *Store) copyAfter(d digest.Digest, size int64, m *uploadMirror) {
	s.mu.Lock()
	if s.copying[d] || s.ctx.Err() != nil {
		s.mu.Unlock()
		if m != nil {
			m.cancel()
			if m.handoff != nil {
				m.handoff.end() // no copies: the link need not wait
			}
		}
		return
	}
	s.copying[d] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.copying, d)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CopyTimeout)
		defer cancel()
		var copied []string
		if m != nil {
			copied = s.finishMirror(ctx, m, d, size, "mirrored")
		}
		if err := s.copyToOwners(ctx, d, size, copied); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("copy blob to its owners", "digest", d, "err", err)
		}
	}()
}

// copyToOwners pushes the local copy of d to each owner that lacks it,
// other than the nodes in skip (which hold a mirrored copy not recorded
// yet, or are getting one from a relay), and records every durable copy.
func (s *Store) copyToOwners(ctx context.Context, d digest.Digest, size int64, skip []string) error {
	targets, err := s.missingOwners(d)
	if err != nil {
		return err
	}
	targets = slices.DeleteFunc(targets, func(n Node) bool { return slices.Contains(skip, n.ID) })
	if len(targets) == 0 {
		return nil
	}
	urls := make([]string, len(targets))
	byURL := make(map[string]string, len(targets))
	for i, n := range targets {
		urls[i] = n.URL
		byURL[n.URL] = n.ID
	}
	var errs []error
	s.replicator.Replicate(ctx, d, urls, func(url string, err error) {
		if err == nil {
			err = s.cfg.Cluster.AddBlobHolder(ctx, d, size, byURL[url])
		}
		if err != nil {
			s.metrics.copies.WithLabelValues("failed").Inc()
			errs = append(errs, fmt.Errorf("copy to %s: %w", byURL[url], err))
			return
		}
		s.recorded.signal()
		s.metrics.copies.WithLabelValues("ok").Inc()
	})
	return errors.Join(errs...)
}

// missingOwners returns d's owners among the live nodes that do not hold
// it, other than this node, which holds it (its own holder record may not
// have been applied here yet).
func (s *Store) missingOwners(d digest.Digest) ([]Node, error) {
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return nil, fmt.Errorf("cluster nodes: %w", err)
	}
	holders, err := s.holderSet(d)
	if err != nil {
		return nil, err
	}
	live := liveNodes(nodes)
	var missing []Node
	for _, o := range placement.Owners(d, placementNodes(nodes), s.cfg.Replicas) {
		if !holders[o.ID] && o.ID != s.cfg.Cluster.LocalID() {
			missing = append(missing, live[o.ID])
		}
	}
	return missing, nil
}

func (s *Store) holderSet(d digest.Digest) (map[string]bool, error) {
	rec, err := s.cfg.Cluster.BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("holders of %s: %w", d, err)
	}
	set := make(map[string]bool, len(rec.GetNodeIds()))
	for _, id := range rec.GetNodeIds() {
		set[id] = true
	}
	return set, nil
}

// Polling of WaitDurable: each check first catches the local FSM up with
// the leader (Cluster.Sync), so a record committed anywhere is seen at the
// next check. Copies this node records wake it at once (see notifier);
// copies other nodes make are seen by polling, starting at durablePollMin
// and backing off to durablePollMax, which bounds how long a manifest push
// waits after its last copy is recorded.
const (
	durablePollMin = 1 * time.Millisecond
	durablePollMax = 10 * time.Millisecond
)

// WaitDurable blocks until every blob in ds has min(W, registered nodes)
// recorded holders, for at most DurableTimeout. A blob still short of
// copies that this node holds gets its copy restarted.
func (s *Store) WaitDurable(ctx context.Context, ds []digest.Digest) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DurableTimeout)
	defer cancel()
	start := time.Now()
	defer func() { s.metrics.durableWait.Observe(time.Since(start).Seconds()) }()
	backoff := durablePollMin
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	for first := true; ; first = false {
		// Taken before the check, so that a holder recorded after it
		// wakes the wait below.
		recorded := s.recorded.wait()
		// Holders recorded through the leader reach the local state
		// later; catch up with it first. The first check may use the
		// request's read index: the holders recorded before the manifest
		// request began (usually all of them: the write that links an
		// upload records its mirrored copies) are in the state it
		// reached. The later ones need a new read index each.
		catchUp := s.cfg.Cluster.Sync
		if first {
			catchUp = s.cfg.Cluster.Linearize
		}
		if err := catchUp(ctx); err != nil {
			return fmt.Errorf("read the blobs' holders: %w", err)
		}
		short, err := s.shortOfQuorum(ds)
		if err != nil || short == nil {
			return err
		}
		for _, b := range short.local {
			s.copyInBackground(b.digest, b.size)
		}
		timer.Reset(backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("blob %s has %d of the %d durable copies it needs: %w",
				short.first, short.have, short.need, ctx.Err())
		case <-recorded:
			backoff = durablePollMin
		case <-timer.C:
			backoff = min(2*backoff, durablePollMax)
		}
	}
}

// notifier wakes every goroutine waiting on it. The zero value is ready.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next signal.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// signal wakes the current waiters.
func (n *notifier) signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// shortfall describes the blobs that lack copies.
type shortfall struct {
	first      digest.Digest
	have, need int
	local      []localBlob // short blobs this node holds, to copy again
}

type localBlob struct {
	digest digest.Digest
	size   int64
}

// shortOfQuorum returns nil when every blob of ds has enough holders.
func (s *Store) shortOfQuorum(ds []digest.Digest) (*shortfall, error) {
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return nil, fmt.Errorf("cluster nodes: %w", err)
	}
	need := max(1, min(s.cfg.WriteQuorum, len(nodes)))
	var short *shortfall
	for _, d := range ds {
		rec, err := s.cfg.Cluster.BlobHolders(d)
		if err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return nil, fmt.Errorf("holders of %s: %w", d, err)
		}
		have := len(rec.GetNodeIds())
		if have >= need {
			continue
		}
		if short == nil {
			short = &shortfall{first: d, have: have, need: need}
		}
		if contains(rec.GetNodeIds(), s.cfg.Cluster.LocalID()) {
			short.local = append(short.local, localBlob{d, rec.GetSize()})
		}
	}
	return short, nil
}
