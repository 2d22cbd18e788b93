package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/blobstore/placement"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Node is a registered cluster member as replication sees it.
type Node struct {
	ID string
	// URL is the base URL of the node's peer blob server, e.g.
	// "https://10.0.0.2:5002".
	URL    string
	Weight float64
	// Alive is gossip's view: false for dead, suspect-too-long or left nodes.
	Alive bool
}

// Cluster is what replication needs of the local cluster node.
type Cluster interface {
	// LocalID is this node's ID.
	LocalID() string
	// Nodes returns every registered node.
	Nodes() ([]Node, error)
	// BlobHolders returns the holder record of d, or fsm.ErrNotFound, from
	// the local state.
	BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error)
	// Sync returns once the local state reflects every change committed
	// before the call.
	Sync(ctx context.Context) error
	// Linearize is Sync for the reads of one request: it may reuse a read
	// index the request's context fetched earlier (see
	// cluster.WithReadScope), which covers every change committed before
	// the request began.
	Linearize(ctx context.Context) error
	// ListBlobHolders returns up to n holder records after digest last.
	ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error)
	// AddBlobHolder and RemoveBlobHolder commit holder changes.
	AddBlobHolder(ctx context.Context, d digest.Digest, size int64, nodeID string) error
	RemoveBlobHolder(ctx context.Context, d digest.Digest, nodeID string) error
	// LinkBlob commits the link of stored blob d into repo, recording the
	// holders in the same write (and even if the link is refused).
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, holders ...string) error
}

// Config configures a Store.
type Config struct {
	Local   *blobstore.Store
	Cluster Cluster
	// Client reaches peers' blob servers (mutual TLS in a cluster).
	Client *http.Client
	// Replicas (R) is the number of copies each blob should have; it is
	// capped at the number of live nodes. Default 3.
	Replicas int
	// WriteQuorum (W) is the number of durable copies a blob needs before a
	// manifest may reference it; capped at the number of registered nodes.
	// Default 2.
	WriteQuorum int
	// DurableTimeout bounds how long a manifest push waits for copies.
	// Default 30s.
	DurableTimeout time.Duration
	// CopyTimeout bounds one background copy of one blob. Default 30m.
	CopyTimeout time.Duration
	// FetchDir holds blobs fetched from peers while they are served.
	FetchDir string
	// FetchCacheBytes keeps up to this many bytes of fetched blobs; 0
	// keeps none.
	FetchCacheBytes int64
	// RepairInterval is how often the leader looks for under-replicated
	// blobs. Default 30s.
	RepairInterval time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.WriteQuorum <= 0 {
		c.WriteQuorum = 2
	}
	if c.DurableTimeout <= 0 {
		c.DurableTimeout = 30 * time.Second
	}
	if c.CopyTimeout <= 0 {
		c.CopyTimeout = 30 * time.Minute
	}
	if c.RepairInterval <= 0 {
		c.RepairInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is a node's blob storage as the OCI API sees it: the local store,
// plus the blobs its peers hold.
type Store struct {
	cfg        Config
	fetcher    *peer.Fetcher
	replicator *peer.Replicator
	metrics    *metrics

	underReplicated atomic.Int64 // as of the last repair scan

	mu      sync.Mutex
	copying map[digest.Digest]bool   // blobs with a background copy running
	mirrors map[string]*uploadMirror // by local upload session ID (mirror.go)
	// shortLastRound: the blobs the previous repair round found short of
	// copies (see deferRepair).
	shortLastRound map[digest.Digest]bool
	wg             sync.WaitGroup
	ctx            context.Context // ends background copies on Close
	cancel         context.CancelFunc

	recorded notifier // wakes WaitDurable when this node records a holder
}

// New returns a Store. Close ends its background copies.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if cfg.Local == nil || cfg.Cluster == nil || cfg.Client == nil {
		return nil, errors.New("replica: Local, Cluster and Client are required")
	}
	fetcher, err := peer.NewFetcher(peer.FetcherConfig{
		Client: cfg.Client, Dir: cfg.FetchDir, CacheBytes: cfg.FetchCacheBytes, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	replicator, err := peer.NewReplicator(peer.ReplicatorConfig{Store: cfg.Local, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg: cfg, fetcher: fetcher, replicator: replicator,
		copying: map[digest.Digest]bool{}, mirrors: map[string]*uploadMirror{}, ctx: ctx, cancel: cancel,
	}
	s.metrics = newMetrics(cfg.Registerer, func() float64 { return float64(s.underReplicated.Load()) })
	return s, nil
}

// Close stops background copies and waits for them.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	s.metrics.unregister(s.cfg.Registerer)
	return nil
}

// Stat returns the size of a blob held here or by any peer.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	size, err := s.cfg.Local.Stat(ctx, d)
	if !errors.Is(err, blobstore.ErrBlobUnknown) {
		return size, err
	}
	rec, err := s.cfg.Cluster.BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) || (err == nil && len(rec.GetNodeIds()) == 0) {
		return 0, fmt.Errorf("stat %s: %w", d, blobstore.ErrBlobUnknown)
	}
	if err != nil {
		return 0, fmt.Errorf("stat %s: holders: %w", d, err)
	}
	return rec.GetSize(), nil
}

// Open returns a blob's content: the local file, or a verified copy
// fetched from a holder. The caller closes the file.
func (s *Store) Open(ctx context.Context, d digest.Digest) (*os.File, error) {
	f, err := s.cfg.Local.Open(ctx, d)
	if !errors.Is(err, blobstore.ErrBlobUnknown) {
		return f, err
	}
	holders, err := s.holderURLs(d)
	if err != nil {
		return nil, err
	}
	if len(holders) == 0 {
		return nil, fmt.Errorf("open %s: no live node holds it: %w", d, blobstore.ErrBlobUnknown)
	}
	s.metrics.peerFetches.Inc()
	blob, err := s.fetcher.Fetch(ctx, d, holders)
	if err != nil {
		return nil, fmt.Errorf("open %s from a peer: %w", d, err)
	}
	defer blob.Close()
	// The fetched file may be removed once blob is closed; a descriptor of
	// our own keeps its content readable until the caller is done.
	own, err := os.Open(blob.File().Name())
	if err != nil {
		return nil, fmt.Errorf("open fetched %s: %w", d, err)
	}
	return own, nil
}

// Stream returns blob d's content to read once from the start, and its
// size: the local file (an *os.File), or, for a blob only peers hold, its
// bytes as they arrive from a holder, verified as a whole: the reader
// ends with io.EOF only once they are, and fails otherwise, so that a
// caller streaming them into a response aborts it. A pull through a node
// that lacks the blob so starts at once, instead of after the whole
// download (Open, which Range requests need).
func (s *Store) Stream(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	f, err := s.cfg.Local.Open(ctx, d)
	if err == nil {
		info, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("stream %s: %w", d, err)
		}
		return f, info.Size(), nil
	}
	if !errors.Is(err, blobstore.ErrBlobUnknown) {
		return nil, 0, err
	}
	size, err := s.Stat(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	holders, err := s.holderURLs(d)
	if err != nil {
		return nil, 0, err
	}
	if len(holders) == 0 {
		return nil, 0, fmt.Errorf("stream %s: no live node holds it: %w", d, blobstore.ErrBlobUnknown)
	}
	s.metrics.peerFetches.Inc()
	rc, err := s.fetcher.Stream(ctx, d, holders)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s from a peer: %w", d, err)
	}
	return rc, size, nil
}

// holderURLs returns the URLs of d's live holders, best ranked first.
func (s *Store) holderURLs(d digest.Digest) ([]string, error) {
	rec, err := s.cfg.Cluster.BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("holders of %s: %w", d, err)
	}
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return nil, fmt.Errorf("cluster nodes: %w", err)
	}
	byID := liveNodes(nodes)
	var urls []string
	for _, n := range placement.Rank(d, placementNodes(nodes)) {
		if live, ok := byID[n.ID]; ok && contains(rec.GetNodeIds(), n.ID) && n.ID != s.cfg.Cluster.LocalID() {
			urls = append(urls, live.URL)
		}
	}
	return urls, nil
}

func liveNodes(nodes []Node) map[string]Node {
	m := make(map[string]Node, len(nodes))
	for _, n := range nodes {
		if n.Alive {
			m[n.ID] = n
		}
	}
	return m
}

func placementNodes(nodes []Node) []placement.Node {
	out := make([]placement.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.Alive {
			out = append(out, placement.Node{ID: n.ID, Weight: n.Weight})
		}
	}
	return out
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
