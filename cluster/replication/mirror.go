package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/blobstore/placement"
)

// Mirroring: while a client uploads a blob to this node, the bytes are
// copied to up to R-1 other nodes at once, so that the copies are done, or
// nearly, when the upload commits, instead of starting then.
//
// The copies form a chain (chain replication): this node sends the bytes
// to the first target only, and that node passes them on to the second
// while they arrive, and so on (peer.RelayHeader). Each node then sends
// each byte at most once, instead of the uploading node sending it to
// every target: a node's network link and CPU carry one outgoing copy
// whatever R is. Each node records the copy it sent once its next node
// committed it: the uploading node the first target's, which is all the
// write quorum waits for when W is 2 (normally in the write that links the
// blob: handoff.go), and each relaying node the next one's, without
// holding up its own answer. The copy after commit leaves
// the nodes down a chain to the relay; should a relay fail, repair finds
// the missing copies.
//
// The digest is not known before the commit, so the targets are ranked
// over the session ID (see mirrorTargets). While every live node is an
// owner of every blob (at most R live nodes) they are all the other live
// nodes. In a larger cluster they are W-1 provisional targets, so that the
// blob is durable on W nodes when the upload commits and its manifest is
// not held up by copies that only start then; a provisional target that
// turns out not to be an owner holds an extra copy until repair trims it,
// after the copies to the owners (one copy more than needed, for a commit
// that does not wait for a whole copy).
//
// A mirror reads the session's data file behind the client's appends (the
// file only grows, and its bytes never change), never from memory, so it
// needs no buffer and can neither slow nor fail the client: a mirror that
// lags just catches up later, and one that fails is dropped, and the copy
// after commit covers its target, and the targets after it in the chain,
// if they are owners. Each copy is one request to its target
// (peer.Mirror), which streams from the first byte on and ends, once the
// client commits, with the rest of the file and the digest in a trailer;
// the target verifies, fsyncs and answers. Committing starts that end
// before this node's own commit, so that the targets' fsyncs overlap with
// this node's. Each copy stored so is recorded as a holder, and then the
// usual copy to the owners still missing runs (should the membership
// change meanwhile, a target that is no longer an owner is an extra
// holder, which repair trims: trim.go). A session cancelled here breaks
// its mirrors' streams, and a target stores nothing from a broken stream;
// a mirror whose session was abandoned is dropped after mirrorIdle.
const (
	// mirrorPoll is how often a mirror that caught up looks at the data
	// file again when no append wakes it.
	mirrorPoll = 20 * time.Millisecond
	// mirrorIdle drops a mirror whose session received no bytes for this long.
	mirrorIdle = 10 * time.Minute
	// mirrorCommitTimeout bounds how long a commit waits for its mirrors;
	// the copy to the owners follows either way.
	mirrorCommitTimeout = 2 * time.Minute
)

var _ peer.Relay = (*Store)(nil)

// mirrorTarget is a node a session is mirrored to, and the nodes it passes
// the bytes on to.
type mirrorTarget struct {
	node  Node
	relay []string // node IDs, in chain order
}

// uploadMirror copies one local upload session to its targets.
type uploadMirror struct {
	f      *os.File // the session's data file, read-only
	ctx    context.Context
	cancel context.CancelFunc
	kicks  []chan struct{} // one per target: more bytes may have arrived

	final     chan struct{} // closed once d and size are set
	finalOnce sync.Once
	d         digest.Digest
	size      int64

	results chan mirrorResult // one per target
	done    chan struct{}     // closed when every target's worker has ended
	// handoff, if not nil, passes the copies stored to the write that
	// links the upload (handoff.go).
	handoff *copyHandoff
}

type mirrorResult struct {
	target mirrorTarget
	err    error
}

// appending starts mirroring upload u unless it is mirrored already, and
// returns a function to call whenever more bytes may have arrived. The
// caller holds u's session. It never blocks on the network.
func (s *Store) appending(ctx context.Context, u *blobstore.Upload) (progress func()) {
	return s.mirrorSession(u, func() []mirrorTarget { return chain(s.mirrorTargets(u.ID())) })
}

// Relaying implements peer.Relay: a session a peer mirrors here is passed
// on down chain while it arrives, the way this node mirrors its own
// clients' uploads.
func (s *Store) Relaying(ctx context.Context, u *blobstore.Upload, ids []string) (progress func()) {
	return s.mirrorSession(u, func() []mirrorTarget { return s.relayTargets(ids) })
}

// RelayCommitted implements peer.Relay: the relay of session id, just
// committed here as blob d, commits at the next node in the background,
// which is recorded as a holder once it has.
func (s *Store) RelayCommitted(id string, d digest.Digest, size int64) {
	m := s.takeMirror(id)
	if m == nil {
		return
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CopyTimeout)
		defer cancel()
		s.finishMirror(ctx, m, d, size, "relayed")
	})
}

// RelayCancelled implements peer.Relay.
func (s *Store) RelayCancelled(id string) { s.cancelled(id) }

// mirrorSession returns the progress function of u's mirror, started to
// targets() unless it runs already.
func (s *Store) mirrorSession(u *blobstore.Upload, targets func() []mirrorTarget) (progress func()) {
	s.mu.Lock()
	m := s.mirrors[u.ID()]
	s.mu.Unlock()
	if m == nil {
		m = s.startMirror(u, targets())
		if m == nil {
			return func() {}
		}
	}
	return m.kick
}

// chain makes nodes one relay chain: the first is sent the bytes and
// passes them on to the rest, in order.
func chain(nodes []Node) []mirrorTarget {
	if len(nodes) == 0 {
		return nil
	}
	relay := make([]string, 0, len(nodes)-1)
	for _, n := range nodes[1:] {
		relay = append(relay, n.ID)
	}
	return []mirrorTarget{{node: nodes[0], relay: relay}}
}

// relayTargets turns the chain a peer asked this node to pass a session
// on to into its first hop: the first of ids that is a live node other
// than this one, which is asked to pass it on to the ids after it.
func (s *Store) relayTargets(ids []string) []mirrorTarget {
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return nil
	}
	live := liveNodes(nodes)
	for i, id := range ids {
		if n, ok := live[id]; ok && id != s.cfg.Cluster.LocalID() {
			return []mirrorTarget{{node: n, relay: ids[i+1:]}}
		}
	}
	return nil
}

// committed commits the mirrors of upload session id, just committed here
// as blob d, and then copies d to the owners still missing, all in the
// background. As for Stored, the node's own holder record is written by
// the command that links the blob, and so are the mirrors' copies that the
// returned function hands to it (handoff.go); it is nil when there is no
// mirror.
func (s *Store) committed(ctx context.Context, id string, d digest.Digest, size int64) func(context.Context) ([]string, func(bool)) {
	m := s.takeMirror(id)
	if m == nil {
		s.copyAfter(d, size, nil)
		return nil
	}
	h := newCopyHandoff()
	m.handoff = h
	s.copyAfter(d, size, m)
	return func(ctx context.Context) ([]string, func(bool)) { return s.take(ctx, h, d, size) }
}

// committing tells the mirrors of upload session id that it is about to
// commit as blob d of size bytes, so that they send their last bytes and
// commit their copies while this node commits its own: the peers' fsyncs
// overlap with this node's instead of following it. The caller then calls
// committed once its own commit succeeded, or Cancelled if it failed (a
// peer verifies the digest itself, so a wrong one stores nothing there).
// It never blocks.
func (s *Store) committing(id string, d digest.Digest, size int64) {
	s.mu.Lock()
	m := s.mirrors[id]
	s.mu.Unlock()
	if m != nil {
		m.finalize(d, size)
	}
}

// RelayCommitting implements peer.Relay, as Committing.
func (s *Store) RelayCommitting(id string, d digest.Digest, size int64) { s.committing(id, d, size) }

// cancelled drops the mirrors of upload session id, which ended without a blob.
func (s *Store) cancelled(id string) {
	if m := s.takeMirror(id); m != nil {
		m.cancel()
	}
}

func (s *Store) takeMirror(id string) *uploadMirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mirrors[id]
	delete(s.mirrors, id)
	return m
}

// mirrorTargets returns the nodes to mirror session id to, ranked over the
// session ID (the relay chain's order): every other live node when there
// are at most R (each is an owner of every blob), else W-1 provisional
// targets (see above).
func (s *Store) mirrorTargets(id string) []Node {
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return nil
	}
	live := liveNodes(nodes)
	want := len(live) - 1
	if len(live) > s.cfg.Replicas {
		want = min(want, s.cfg.WriteQuorum-1)
	}
	var out []Node
	for _, n := range placement.Rank(digest.FromString(id), placementNodes(nodes)) {
		if len(out) >= want {
			break
		}
		if n.ID != s.cfg.Cluster.LocalID() {
			out = append(out, live[n.ID])
		}
	}
	return out
}

// startMirror starts mirroring u to targets, or returns nil if there are
// none.
func (s *Store) startMirror(u *blobstore.Upload, targets []mirrorTarget) *uploadMirror {
	if len(targets) == 0 {
		return nil
	}
	f, err := u.OpenData()
	if err != nil {
		s.cfg.Logger.Debug("mirror upload", "upload", u.ID(), "err", err)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		f.Close()
		return nil
	}
	for id, old := range s.mirrors { // ended, abandoned mirrors
		select {
		case <-old.done:
			delete(s.mirrors, id)
		default:
		}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	m := &uploadMirror{
		f: f, ctx: ctx, cancel: cancel, final: make(chan struct{}),
		results: make(chan mirrorResult, len(targets)), done: make(chan struct{}),
	}
	var workers sync.WaitGroup
	for _, t := range targets {
		kick := make(chan struct{}, 1)
		m.kicks = append(m.kicks, kick)
		workers.Add(1)
		s.wg.Go(func() {
			defer workers.Done()
			m.results <- mirrorResult{target: t, err: s.mirrorTo(m, t, kick)}
		})
	}
	s.wg.Go(func() {
		workers.Wait()
		cancel()
		f.Close()
		close(m.done)
	})
	s.mirrors[u.ID()] = m
	return m
}

// kick wakes the mirror's workers; it never blocks.
func (m *uploadMirror) kick() {
	for _, k := range m.kicks {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// mirrorTo streams the session to target t, from its start to its
// commit, in one request (peer.Mirror): it ends once t stored the blob.
func (s *Store) mirrorTo(m *uploadMirror, t mirrorTarget, kick chan struct{}) error {
	tail := &dataTail{m: m, kick: kick, last: time.Now()}
	// The tail ends only once the mirror is finalized, so m.d is set when
	// the digest is asked for.
	return peer.Mirror(m.ctx, s.cfg.Client, t.node.URL, t.relay, tail, func() digest.Digest { return m.d })
}

// finishMirror tells the mirror's workers the blob's digest and size,
// waits for them (for at most mirrorCommitTimeout) and records each copy
// stored, or hands it to the link (m.handoff), counting it in the copies
// metric under result. It returns the nodes that hold a copy now or will
// soon: the targets that stored one, and the nodes down their relay
// chains, whose relaying nodes record them.
func (s *Store) finishMirror(ctx context.Context, m *uploadMirror, d digest.Digest, size int64, result string) (copied []string) {
	defer m.cancel()
	for res := range m.finish(ctx, d, size, mirrorCommitTimeout) {
		n := res.target.node
		err := res.err
		if err == nil && m.handoff != nil && m.handoff.offer(n.ID) {
			s.metrics.copies.WithLabelValues(result).Inc()
			copied = append(copied, n.ID)
			copied = append(copied, res.target.relay...)
			continue
		}
		if err == nil {
			err = s.cfg.Cluster.AddBlobHolder(ctx, d, size, n.ID)
		}
		if err != nil {
			if ctx.Err() == nil && m.ctx.Err() == nil {
				s.cfg.Logger.Info("mirror upload", "digest", d, "node", n.ID, "err", err)
			}
			continue
		}
		s.recorded.signal()
		s.metrics.copies.WithLabelValues(result).Inc()
		copied = append(copied, n.ID)
		copied = append(copied, res.target.relay...)
	}
	if m.handoff != nil {
		s.recordHolders(d, size, m.handoff.handBack())
	}
	return copied
}

// finalize tells the mirror's workers the blob's digest and size, once:
// they send the rest of the data and commit. It reports whether the mirror
// was finalized with d and size, now or before.
func (m *uploadMirror) finalize(d digest.Digest, size int64) bool {
	m.finalOnce.Do(func() {
		m.d, m.size = d, size
		close(m.final)
	})
	return m.d == d && m.size == size
}

// finish finalizes the mirror (unless Committing did) and yields each
// worker's result as it ends; after timeout (or once ctx ends) it cancels
// the workers that are still running, whose results then follow at once.
// A mirror finalized before with another digest or size is cancelled: its
// copies are not of this blob.
func (m *uploadMirror) finish(ctx context.Context, d digest.Digest, size int64, timeout time.Duration) iter.Seq[mirrorResult] {
	if !m.finalize(d, size) {
		m.cancel()
	}
	return func(yield func(mirrorResult) bool) {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for range m.kicks {
			var res mirrorResult
			select {
			case res = <-m.results:
			case <-timer.C:
				m.cancel() // the workers end at once
				res = <-m.results
			case <-ctx.Done():
				m.cancel()
				res = <-m.results
			}
			if !yield(res) {
				return
			}
		}
	}
}

// dataTail reads a session's data file as it grows, until the final size.
type dataTail struct {
	m    *uploadMirror
	kick chan struct{}
	off  int64
	last time.Time // when bytes last arrived
}

func (t *dataTail) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		final := false
		select {
		case <-t.m.final:
			final = true
			left := t.m.size - t.off
			if left <= 0 {
				return 0, io.EOF
			}
			p = p[:min(int64(len(p)), left)]
		default:
		}
		n, err := t.m.f.ReadAt(p, t.off)
		if n > 0 {
			t.off += int64(n)
			t.last = time.Now()
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if final {
			return 0, fmt.Errorf("upload data ends at %d of %d bytes: %w", t.off, t.m.size, io.ErrUnexpectedEOF)
		}
		if time.Since(t.last) > mirrorIdle {
			return 0, errors.New("upload idle: mirror dropped")
		}
		if timer == nil {
			timer = time.NewTimer(mirrorPoll)
		} else {
			timer.Reset(mirrorPoll)
		}
		select {
		case <-t.kick:
		case <-t.m.final:
		case <-timer.C:
		case <-t.m.ctx.Done():
			return 0, context.Cause(t.m.ctx)
		}
	}
}
