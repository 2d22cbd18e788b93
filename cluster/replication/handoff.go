package replication

import (
	"context"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Handing mirrored copies to the link: when a client's upload commits, the
// OCI handler links the blob into its repository with one Raft write that
// records this node as a holder. If the upload's mirrors have committed
// their copies by then, the same write records them too, and the blob is
// durable on the write quorum when the client hears that it is stored: the
// manifest that follows finds its blobs durable at once, instead of
// waiting for separate holder records, and the cluster makes one Raft
// write per blob instead of two. The link waits for the mirrors for at most
// linkCopiesWait; copies that commit later are recorded by the mirror, as
// are those the link could not record.
const (
	// linkCopiesWait bounds how long the link waits for the mirrors.
	linkCopiesWait = 2 * time.Second
	// linkTakeTimeout is how long a mirror that finished keeps its copies
	// for a link that has not come for them yet, before it records them.
	linkTakeTimeout = linkCopiesWait + 5*time.Second
)

// copyHandoff passes the copies an upload's mirrors stored to the write
// that links the upload.
type copyHandoff struct {
	mu     sync.Mutex
	stored []string // copies committed and not yet handed out
	taken  bool     // the link came: later copies are the mirror's to record

	ended     chan struct{} // closed once every mirror target reported
	takenCh   chan struct{} // closed when taken is set
	endOnce   sync.Once
	takenOnce sync.Once
}

func newCopyHandoff() *copyHandoff {
	return &copyHandoff{ended: make(chan struct{}), takenCh: make(chan struct{})}
}

// offer hands node's committed copy to the link, or reports false if the
// link has been and the caller must record the copy itself.
func (h *copyHandoff) offer(node string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.taken {
		return false
	}
	h.stored = append(h.stored, node)
	return true
}

// end reports that every mirror target has reported.
func (h *copyHandoff) end() { h.endOnce.Do(func() { close(h.ended) }) }

// takeAll ends the handoff and returns the copies stored so far.
func (h *copyHandoff) takeAll() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.taken = true
	h.takenOnce.Do(func() { close(h.takenCh) })
	nodes := h.stored
	h.stored = nil
	return nodes
}

// take is the link's side: it waits until every mirror reported, for at
// most linkCopiesWait, and takes the copies committed by then. settle
// reports whether the link recorded them; if it did not, the store records
// them in the background.
func (s *Store) take(ctx context.Context, h *copyHandoff, d digest.Digest, size int64) (nodes []string, settle func(recorded bool)) {
	timer := time.NewTimer(linkCopiesWait)
	defer timer.Stop()
	select {
	case <-h.ended:
	case <-timer.C:
	case <-ctx.Done():
	}
	nodes = h.takeAll()
	return nodes, func(recorded bool) {
		if recorded {
			if len(nodes) > 0 {
				s.recorded.signal()
			}
			return
		}
		s.recordHolders(d, size, nodes)
	}
}

// handBack is the mirror's side once every target reported: it returns the
// copies no link took within linkTakeTimeout, which the caller records.
func (h *copyHandoff) handBack() []string {
	h.end()
	timer := time.NewTimer(linkTakeTimeout)
	defer timer.Stop()
	select {
	case <-h.takenCh:
		return nil
	case <-timer.C:
		return h.takeAll()
	}
}

// recordHolders records nodes as holders of d in the background.
func (s *Store) recordHolders(d digest.Digest, size int64, nodes []string) {
	if len(nodes) == 0 {
		return
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CopyTimeout)
		defer cancel()
		for _, id := range nodes {
			if err := s.cfg.Cluster.AddBlobHolder(ctx, d, size, id); err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.Warn("record mirrored copy", "digest", d, "node", id, "err", err)
				}
				continue
			}
			s.recorded.signal()
		}
	})
}
