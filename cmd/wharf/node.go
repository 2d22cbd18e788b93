package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wharf-registry/wharf/api"
	"github.com/wharf-registry/wharf/api/admin"
	"github.com/wharf-registry/wharf/api/oci"
	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/blobstate"
	"github.com/wharf-registry/wharf/cluster/gc"
	"github.com/wharf-registry/wharf/cluster/remotesync"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/diskspace"
	"github.com/wharf-registry/wharf/internal/secretbox"
	"github.com/wharf-registry/wharf/ui"
)

// registryNode is one running wharf node: a cluster member, its blob
// storage and the handler of its public listener. serve runs one; tests
// run several in one process.
type registryNode struct {
	node    *cluster.Node
	disk    *diskspace.Watcher
	blobs   *blobstore.Store
	replica *replication.Store
	gc      *gc.Collector
	handler http.Handler
	logger  *slog.Logger
	// secrets seals the secrets of remote registries.
	secrets *secretbox.Box
	// ingest writes what sync jobs fetch.
	ingest *oci.Ingester
	// registerer receives the metrics of the loops startLoops starts.
	registerer prometheus.Registerer

	// accessBootstrapped is set once the admin user and the token signing
	// key exist here: until then no one could log in, so the node is not
	// ready.
	accessBootstrapped atomic.Bool

	stop context.CancelFunc // ends the background loops
	wg   sync.WaitGroup
}

// startRegistryNode opens the data dir, joins or forms the cluster and
// assembles the public handler. leave, if not nil, is what the admin API's
// Leave calls. close must be called to stop it.
func startRegistryNode(ctx context.Context, o serveOptions, logger *slog.Logger, leave func()) (*registryNode, error) {
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	secrets, err := remoteSecrets(o)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	disk, err := diskspace.New(o.diskConfig(logger.With("component", "disk"), reg))
	if err != nil {
		return nil, fmt.Errorf("watch the data dir's disk: %w", err)
	}
	blobs, err := blobstore.Open(blobstore.Config{
		Root: filepath.Join(o.dataDir, "blobs"), Logger: logger.With("component", "blobstore"), Space: disk,
	})
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wharf_upload_sessions_open",
		Help: "Blob upload sessions in progress on this node.",
	}, func() float64 { return float64(blobs.OpenUploads()) }))

	node, err := cluster.Open(ctx, o.clusterConfig(logger, reg, disk))
	if err != nil {
		return nil, fmt.Errorf("start cluster node: %w", err)
	}
	store, err := replication.New(replication.Config{
		Local:           blobs,
		Cluster:         blobstate.Of(node),
		Client:          node.PeerHTTPClient(),
		Replicas:        o.replicas,
		WriteQuorum:     o.writeQuorum,
		FetchDir:        filepath.Join(o.dataDir, "fetch"),
		FetchCacheBytes: o.fetchCacheBytes,
		RepairInterval:  o.repairInterval,
		Logger:          logger.With("component", "replication"),
		Registerer:      reg,
	})
	if err != nil {
		_ = node.Shutdown(ctx)
		return nil, fmt.Errorf("start blob replication: %w", err)
	}
	collector, err := gc.New(gc.Config{
		Local:                blobs,
		Cluster:              blobstate.Of(node),
		Grace:                o.gcGrace,
		Interval:             o.gcInterval,
		EmptyRepositoryGrace: o.emptyRepoGrace,
		Replicas:             o.replicas,
		PurgeUploads:         blobs.PurgeUploads,
		UploadMaxAge:         o.uploadMaxAge,
		Logger:               logger.With("component", "gc"),
		Registerer:           reg,
	})
	if err != nil {
		_ = store.Close()
		_ = node.Shutdown(ctx)
		return nil, fmt.Errorf("start garbage collection: %w", err)
	}
	n := &registryNode{node: node, disk: disk, blobs: blobs, replica: store, gc: collector, secrets: secrets, logger: logger}
	n.registerer = reg
	if n.handler, err = n.assemble(o, reg, leave); err != nil {
		_ = store.Close()
		_ = node.Shutdown(ctx)
		return nil, err
	}
	n.startLoops(o)
	return n, nil
}

// clusterConfig turns the serve flags into the cluster node's config.
func (o serveOptions) clusterConfig(logger *slog.Logger, reg prometheus.Registerer, disk cluster.DiskSpace) cluster.Config {
	cfg := cluster.Config{
		DataDir:         o.dataDir,
		NodeName:        o.nodeName,
		ClusterListen:   o.clusterListen,
		Advertise:       o.advertise,
		GossipListen:    o.gossipAddress(),
		Join:            o.join,
		BootstrapExpect: o.bootstrapExpect,
		ClusterKey:      o.clusterKey,
		TLSCertFile:     o.tlsCert,
		TLSKeyFile:      o.tlsKey,
		TLSCAFile:       o.tlsCA,
		StaleReads:      o.staleReads,
		DeadNodeTimeout: o.deadNodeTimeout,
		DiskSpace:       disk,
		Logger:          logger.With("component", "cluster"),
		Registerer:      reg,
	}
	if o.tuneCluster != nil {
		o.tuneCluster(&cfg)
	}
	return cfg
}

// assemble builds the public handler and mounts the internal one.
func (n *registryNode) assemble(o serveOptions, reg *prometheus.Registry, leave func()) (http.Handler, error) {
	ac := newAccessControl(n.node, o, n.logger)
	ociConfig := oci.Config{
		Metadata:         n.node,
		Blobs:            n.replica,
		Logger:           n.logger.With("component", "oci"),
		MaxManifestBytes: o.maxManifestBytes,
		SparseManifests:  o.sparseManifests,
		PublicURL:        o.publicURL,
		NodeID:           n.node.ID(),
		Sessions:         oci.PeerSessions{Lookup: peerURL(n.node), Transport: n.node.PeerHTTPClient().Transport},
	}
	n.ingest = oci.NewIngester(ociConfig)
	ociConfig.Cache = remotesync.NewCache(syncCluster{n.node}, remotesync.CacheConfig{
		Sink: n.ingest, Secrets: remoteSecretsOpener(n.secrets),
		Logger: n.logger.With("component", "cache"), Registerer: n.registerer,
	})
	// Peers proxy upload sessions they authorized, and pulls of cached
	// blobs they pass to the blobs' owners, to the internal listener,
	// behind mutual TLS; the public one checks every caller.
	internalRegistry := oci.New(ociConfig)
	ociConfig.Authorizer = oci.RegistryAuthorizer(ac.registry)
	ociConfig.AppliedAuthorizer = oci.RegistryAuthorizer(ac.appliedRegistry)
	ociConfig.Applied = n.node.FSM()
	registry := oci.New(ociConfig)
	adminConfig := admin.Config{
		Node:       n.node,
		Blobs:      n.blobs,
		State:      n.node.Current,
		Content:    n.replica,
		Replicas:   n.replica,
		PeerClient: n.node.PeerHTTPClient(),
		DataDir:    o.dataDir,
		Leave:      leave,
		Version:    version,
		PublicURL:  o.publicURL,
	}
	mountInternal(n.node, n.blobs, n.replica, internalRegistry, admin.Handlers(adminConfig), n.logger)
	adminConfig.Auth = &admin.Auth{Authenticator: ac.authn, Store: n.node}
	adminConfig.Apply = n.node.Apply
	// Public only: peers have no use for garbage collection runs.
	adminConfig.GC = gcAdmin{n.gc}
	adminConfig.Secrets = n.secrets
	adminConfig.Logger = n.logger.With("component", "auth")
	connectHandlers := admin.Handlers(adminConfig)
	webUI, err := ui.New(ui.Config{
		Version: version, HostFor: registryHost(o.publicURL), Connect: connectHandlers,
		Logger: n.logger.With("component", "ui"),
	})
	if err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	return api.NewHandler(api.Config{
		OCI:     registry,
		Token:   ac.token,
		Route:   oci.Route,
		Connect: connectHandlers,
		UI:      webUI,
		Ready:   func() bool { return n.node.Status().Ready() && n.accessReady() },
		// A full disk leaves the node ready: it still serves pulls.
		ReadyDetail: func() string { return "disk: " + n.disk.State().String() + "\n" },
		Registry:    reg,
		Logger:      n.logger,
		// The reads of one request share one read index.
		RequestContext: cluster.WithReadScope,
	}), nil
}

// startLoops runs the node's background work: on the leader, the access
// bootstrap, blob repair and collection (leader tasks); on every node, the
// sweep of blob files, the purge of abandoned uploads and the disk's
// measurements.
func (n *registryNode) startLoops(o serveOptions) {
	n.node.RunOnLeader("access-bootstrap", accessBootstrap(n.node, o, os.Stderr, n.logger.With("component", "auth")))
	n.node.RunOnLeader("blob-repair", n.replica.RepairLoop)
	n.node.RunOnLeader("blob-collection", n.gc.CollectLoop)
	sc := syncCluster{n.node}
	syncLogger := n.logger.With("component", "sync")
	n.node.RunOnLeader("sync-scheduler", remotesync.NewScheduler(sc, remotesync.SchedulerConfig{Logger: syncLogger}).Run)
	worker := remotesync.NewWorker(sc, remotesync.WorkerConfig{
		Sink: n.ingest, Secrets: remoteSecretsOpener(n.secrets), Logger: syncLogger, Registerer: n.registerer,
	})
	ctx, stop := context.WithCancel(context.Background())
	n.stop = stop
	for _, loop := range []func(context.Context){
		n.disk.Run,
		n.gc.SweepLoop,
		n.gc.PurgeLoop,
		worker.Run,
	} {
		n.wg.Go(func() { loop(ctx) })
	}
}

// close stops the background work and leaves the cluster gracefully (a
// lone node just shuts down).
func (n *registryNode) close(timeout time.Duration) {
	n.node.StopLeaderTasks()
	n.stop()
	n.wg.Wait()
	_ = n.replica.Close()
	n.gc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := n.node.Leave(ctx); err != nil {
		n.logger.Error("leave the cluster", "err", err)
	}
}

// crash stops the node without leaving the cluster, as a killed process
// would appear to its peers (tests only).
func (n *registryNode) crash() {
	n.node.StopLeaderTasks()
	n.stop()
	n.wg.Wait()
	_ = n.replica.Close()
	n.gc.Close()
	_ = n.node.Shutdown(context.Background())
}

// The replication store is the OCI handler's blob store and the peer
// server's relay: a signature that drifts must not silently turn either off.
var (
	_ oci.BlobStore = (*replication.Store)(nil)
	_ peer.Relay    = (*replication.Store)(nil)
)

// mountInternal serves, on the cluster port behind mutual TLS, what peers
// ask of this node: blob copies and mirrored upload sessions (passed on
// down their relay chains by relay), proxied upload sessions (the OCI API)
// and the admin services' node status.
func mountInternal(node *cluster.Node, blobs *blobstore.Store, relay peer.Relay, registry *oci.Handler, adminHandlers map[string]http.Handler, logger *slog.Logger) {
	mux := node.InternalMux()
	blobServer := peer.NewServer(blobs, logger.With("component", "peer"))
	blobServer.RelayTo(relay)
	blobServer.Register(mux)
	mux.Handle("/v2/", registry)
	mux.Handle(registry.ReleaseHandler())
	for prefix, h := range adminHandlers {
		mux.Handle(prefix, h)
	}
}

// accessReady reports whether access control can authenticate callers.
func (n *registryNode) accessReady() bool {
	if n.accessBootstrapped.Load() {
		return true
	}
	f := n.node.FSM()
	if hasUsers(f) && hasKeys(f) {
		n.accessBootstrapped.Store(true)
		return true
	}
	return false
}

// gcAdmin shows the garbage collector to the admin API's GCService, whose
// layer does not import cluster/gc: a run it asks for is manual.
type gcAdmin struct{ c *gc.Collector }

func (a gcAdmin) Settings() (grace, interval time.Duration) { return a.c.Settings() }

func (a gcAdmin) Collect(ctx context.Context, opts admin.CollectOptions) (*fsmpb.GCRun, error) {
	ro := gc.RunOptions{DryRun: opts.DryRun, Manual: true}
	if opts.Progress != nil {
		ro.Progress = func(p gc.Progress) { opts.Progress(p.Examined, p.Collected, p.BytesCollected) }
	}
	if opts.Candidate != nil {
		ro.Candidate = func(c gc.Candidate) { opts.Candidate(c.Digest, c.Size, c.UnreferencedSince) }
	}
	_, run, err := a.c.Run(ctx, ro)
	return run, err
}

// remoteSecretsKeyFile is a lone node's key for the secrets of remote
// registries, in its data dir, when it has no cluster key.
const remoteSecretsKeyFile = "remote-secrets.key"

// remoteSecrets is the box that seals the secrets of remote registries:
// keyed by the cluster key, so that every node opens what any sealed, or,
// on a lone node without one, by a random key kept in the data dir (mode
// 0600). Secrets sealed under that file do not open on nodes added later
// with a cluster key: they must be set again (README, "Remote
// registries").
func remoteSecrets(o serveOptions) (*secretbox.Box, error) {
	var key []byte
	var err error
	if o.clusterKey != "" {
		key, err = cluster.ParseKey(o.clusterKey)
	} else {
		key, err = secretbox.LoadOrCreateKeyFile(filepath.Join(o.dataDir, remoteSecretsKeyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("key of remote registries' secrets: %w", err)
	}
	return secretbox.New(key)
}
