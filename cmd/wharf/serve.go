package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/wharf-registry/wharf/api/auth"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// serveOptions are the flags of 'wharf serve'.
type serveOptions struct {
	configFile       string
	dataDir          string
	listen           string
	clusterListen    string
	nodeName         string
	bootstrapExpect  int
	advertise        string
	gossipListen     string
	join             []string
	clusterKey       string
	tlsCert          string
	tlsKey           string
	tlsCA            string
	replicas         int
	writeQuorum      int
	deadNodeTimeout  time.Duration
	staleReads       bool
	repairInterval   time.Duration
	fetchCacheBytes  int64
	publicURL        string
	logLevel         string
	logFormat        string
	maxManifestBytes int64
	sparseManifests  bool
	uploadMaxAge     time.Duration
	gcGrace          time.Duration
	gcInterval       time.Duration
	emptyRepoGrace   time.Duration
	shutdownTimeout  time.Duration
	minFreeSpace     diskspace.Threshold
	tokenService     string
	tokenTTL         time.Duration
	pprofListen      string
	trustedProxies   []string
	// adminPassword is the password of the admin user created on first
	// start (from WHARF_ADMIN_PASSWORD, never a flag: command lines are
	// visible to every local user); empty generates one.
	adminPassword string

	// tuneCluster adjusts the cluster config (tests shorten timeouts).
	tuneCluster func(*cluster.Config)
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a wharf node",
		Long: `Run a wharf node. With the defaults, a lone node bootstraps a one-voter
Raft cluster in ./wharf-data and serves a complete registry on :5001.

Every flag can also be set with the environment variable WHARF_<FLAG> (upper
case, dashes as underscores) or as a key of the YAML file given by --config;
the command line wins over the environment, which wins over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigSources(cmd.Flags(), "config"); err != nil {
				return err
			}
			o.adminPassword = os.Getenv(adminPasswordEnv)
			return serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "YAML file of settings, keyed by flag name")
	f.StringVar(&o.dataDir, "data-dir", "./wharf-data", "directory for blobs, metadata and the Raft log")
	f.StringVar(&o.listen, "listen", ":5001", "public HTTP address: /v2/, the admin API, UI, /metrics, /healthz, /readyz")
	f.StringVar(&o.clusterListen, "cluster-listen", ":5002", "inter-node address for Raft and peer traffic")
	f.StringVar(&o.nodeName, "node-name", defaultNodeName(), "human-readable name of this node")
	f.IntVar(&o.bootstrapExpect, "bootstrap-expect", 1, "nodes to wait for before bootstrapping Raft; 1 makes a lone node a complete registry")
	f.StringVar(&o.advertise, "advertise", "", "host (or host:port) peers use to reach this node; default: the listen address, 127.0.0.1 for a wildcard")
	f.StringVar(&o.gossipListen, "gossip-listen", ":5003", "memberlist gossip address (UDP and TCP); a lone node without --cluster-key runs no gossip")
	f.StringSliceVar(&o.join, "join", nil, "gossip addresses of existing members, comma-separated")
	f.StringVar(&o.clusterKey, "cluster-key", "", "shared secret from 'wharf keygen'; required once there is more than one node")
	f.StringVar(&o.tlsCert, "tls-cert", "", "certificate for the cluster port, instead of one derived from the cluster key")
	f.StringVar(&o.tlsKey, "tls-key", "", "private key of --tls-cert")
	f.StringVar(&o.tlsCA, "tls-ca", "", "CA that signs every node's --tls-cert")
	f.IntVar(&o.replicas, "replicas", 3, "copies of each blob (capped at the number of live nodes)")
	f.IntVar(&o.writeQuorum, "write-quorum", 2, "durable copies each blob needs before a manifest may reference it (capped at cluster size)")
	f.DurationVar(&o.deadNodeTimeout, "dead-node-timeout", 30*time.Minute, "how long a member must be dead before the leader removes it")
	f.BoolVar(&o.staleReads, "stale-reads", false, "serve tag and catalog reads from local state without asking the leader (faster, may miss the latest writes)")
	f.DurationVar(&o.repairInterval, "repair-interval", 30*time.Second, "how often the leader looks for blobs with fewer than --replicas live copies")
	f.Int64Var(&o.fetchCacheBytes, "fetch-cache-bytes", 0, "keep up to this many bytes of blobs fetched from peers; 0 keeps none")
	f.StringVar(&o.publicURL, "public-url", "", "URL clients use to reach the registry (behind a load balancer), e.g. https://registry.example.com")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json")
	f.Int64Var(&o.maxManifestBytes, "max-manifest-bytes", 4<<20, "largest manifest accepted, in bytes")
	f.BoolVar(&o.sparseManifests, "sparse-manifests", false, "accept manifests whose layers or child manifests were not pushed (sparse images and indexes)")
	f.DurationVar(&o.uploadMaxAge, "upload-max-age", 24*time.Hour, "upload sessions idle for longer are removed, looked for every min(1h, a quarter of this)")
	f.DurationVar(&o.gcGrace, "gc-grace", time.Hour, "how long a blob no manifest or repository references is kept before garbage collection removes it from every node")
	f.DurationVar(&o.gcInterval, "gc-interval", time.Minute, "how often the leader collects unreferenced blobs and every node deletes its copies of collected ones")
	f.DurationVar(&o.emptyRepoGrace, "empty-repo-grace", 24*time.Hour, "how long a repository with no manifest and no tag (a push that failed before its manifest) stays, counted from its last blob link, before the leader removes it")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time given to in-flight requests on shutdown")
	o.minFreeSpace = defaultMinFreeSpace
	f.Var(&o.minFreeSpace, "min-free-space", "free space kept on the data directory's disk, e.g. 1GiB or 5%: below it uploads are refused with 507, below a quarter of it every write but deletions")
	f.StringVar(&o.tokenService, "token-service", "", "service name of registry tokens (the same on every node); default: the host of --public-url, else \"wharf\"")
	f.DurationVar(&o.tokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of the registry tokens /token issues")
	f.StringSliceVar(&o.trustedProxies, "trusted-proxies", nil, "addresses or CIDR prefixes of load balancers whose X-Forwarded-For names the client, for the login throttle and audit lines; comma-separated")
	f.StringVar(&o.pprofListen, "pprof-listen", "", "address for Go's /debug/pprof profiles, unauthenticated: keep it on loopback; empty (the default) serves none")
	return cmd
}

// defaultMinFreeSpace is --min-free-space's default: room for the Raft log,
// Pebble's compactions and an FSM snapshot of a large registry.
var defaultMinFreeSpace = diskspace.Bytes(1 << 30)

// ballastBytes is the size of the ballast file (at most the floor).
const ballastBytes = 64 << 20

// diskConfig turns the serve flags into the disk watcher's config: the
// floor is a quarter of the reserve.
func (o serveOptions) diskConfig(logger *slog.Logger, reg prometheus.Registerer) diskspace.Config {
	return diskspace.Config{
		Dir:        o.dataDir,
		Reserve:    o.minFreeSpace,
		Floor:      o.minFreeSpace.Scaled(0.25),
		Ballast:    ballastBytes,
		Logger:     logger,
		Registerer: reg,
	}
}

func defaultNodeName() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "wharf"
	}
	return name
}

func (o serveOptions) validate() error {
	if o.bootstrapExpect < 1 {
		return fmt.Errorf("--bootstrap-expect %d: must be at least 1", o.bootstrapExpect)
	}
	if o.replicas < 1 || o.writeQuorum < 1 || o.writeQuorum > o.replicas {
		return fmt.Errorf("--replicas %d --write-quorum %d: need 1 <= write quorum <= replicas", o.replicas, o.writeQuorum)
	}
	if o.clustered() && o.clusterKey == "" {
		return errors.New("a cluster (--bootstrap-expect > 1 or --join) needs --cluster-key; create one with 'wharf keygen'")
	}
	if o.maxManifestBytes < 4<<20 {
		return fmt.Errorf("--max-manifest-bytes %d: must be at least 4 MiB (%d)", o.maxManifestBytes, 4<<20)
	}
	if o.gcGrace <= 0 || o.gcInterval <= 0 || o.emptyRepoGrace <= 0 {
		return fmt.Errorf("--gc-grace %s --gc-interval %s --empty-repo-grace %s: all must be positive", o.gcGrace, o.gcInterval, o.emptyRepoGrace)
	}
	if o.tokenTTL < 0 || o.tokenTTL > 24*time.Hour {
		return fmt.Errorf("--token-ttl %s: must be between 0 (the default, %s) and 24h", o.tokenTTL, auth.DefaultTokenTTL)
	}
	if o.publicURL != "" && !strings.HasPrefix(o.publicURL, "http://") && !strings.HasPrefix(o.publicURL, "https://") {
		return fmt.Errorf("--public-url %q: must start with http:// or https://", o.publicURL)
	}
	if _, err := auth.ParseTrustedProxies(o.trustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	return nil
}

// clustered reports whether this node is meant to have peers.
func (o serveOptions) clustered() bool { return o.bootstrapExpect > 1 || len(o.join) > 0 }

// gossipAddress is where gossip listens: nowhere for a lone node without a
// cluster key, so that no unauthenticated port is open.
func (o serveOptions) gossipAddress() string {
	if o.clusterKey == "" && !o.clustered() {
		return ""
	}
	return o.gossipListen
}

// serve runs a node until ctx is cancelled (SIGINT or SIGTERM).
func serve(ctx context.Context, o serveOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	// The admin API's Leave ends the process the way SIGTERM does.
	ctx, leave := context.WithCancel(ctx)
	defer leave()
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	n, err := startRegistryNode(ctx, o, logger, leave)
	if err != nil {
		return err
	}
	defer n.close(o.shutdownTimeout)
	if o.pprofListen != "" {
		stop, err := servePprof(o.pprofListen, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runHTTP(ctx, o, n.handler, logger)
}

// runHTTP serves the public listener until ctx ends, then drains it.
func runHTTP(ctx context.Context, o serveOptions, handler http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("wharf is serving", "listen", ln.Addr().String(), "reachable_on", exposure(o.listen), "data_dir", o.dataDir, "version", version)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// registryHost returns how the UI names this registry in its examples.
func registryHost(publicURL string) func(*http.Request) string {
	return func(r *http.Request) string {
		if publicURL != "" {
			return strings.TrimPrefix(strings.TrimPrefix(publicURL, "https://"), "http://")
		}
		return r.Host
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
