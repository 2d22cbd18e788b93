package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/wharf-registry/wharf/api"
	"github.com/wharf-registry/wharf/api/admin"
	"github.com/wharf-registry/wharf/api/oci"
	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/ui"
)

// serveOptions are the flags of 'wharf serve'.
type serveOptions struct {
	configFile       string
	dataDir          string
	listen           string
	clusterListen    string
	nodeName         string
	bootstrapExpect  int
	publicURL        string
	logLevel         string
	logFormat        string
	maxManifestBytes int64
	sparseManifests  bool
	uploadMaxAge     time.Duration
	shutdownTimeout  time.Duration
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
	f.StringVar(&o.publicURL, "public-url", "", "URL clients use to reach the registry (behind a load balancer), e.g. https://registry.example.com")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json")
	f.Int64Var(&o.maxManifestBytes, "max-manifest-bytes", 4<<20, "largest manifest accepted, in bytes")
	f.BoolVar(&o.sparseManifests, "sparse-manifests", false, "accept manifests whose layers or child manifests were not pushed (sparse images and indexes)")
	f.DurationVar(&o.uploadMaxAge, "upload-max-age", 24*time.Hour, "upload sessions idle for longer are removed")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time given to in-flight requests on shutdown")
	return cmd
}

func defaultNodeName() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "wharf"
	}
	return name
}

func (o serveOptions) validate() error {
	if o.bootstrapExpect != 1 {
		return fmt.Errorf("--bootstrap-expect %d: this build runs single-node clusters only; use 1", o.bootstrapExpect)
	}
	if o.maxManifestBytes < 4<<20 {
		return fmt.Errorf("--max-manifest-bytes %d: must be at least 4 MiB (%d)", o.maxManifestBytes, 4<<20)
	}
	if o.publicURL != "" && !strings.HasPrefix(o.publicURL, "http://") && !strings.HasPrefix(o.publicURL, "https://") {
		return fmt.Errorf("--public-url %q: must start with http:// or https://", o.publicURL)
	}
	return nil
}

// serve runs a node until ctx is cancelled (SIGINT or SIGTERM).
func serve(ctx context.Context, o serveOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	blobs, err := blobstore.Open(blobstore.Config{Root: filepath.Join(o.dataDir, "blobs")})
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wharf_upload_sessions_open",
		Help: "Blob upload sessions in progress on this node.",
	}, func() float64 { return float64(blobs.OpenUploads()) }))

	node, err := cluster.Open(ctx, cluster.Config{
		DataDir:         o.dataDir,
		NodeName:        o.nodeName,
		ClusterListen:   o.clusterListen,
		BootstrapExpect: o.bootstrapExpect,
		Logger:          logger.With("component", "cluster"),
		Registerer:      reg,
	})
	if err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	defer func() {
		if err := node.Shutdown(context.Background()); err != nil {
			logger.Error("cluster shutdown", "err", err)
		}
	}()

	handler := api.NewHandler(api.Config{
		OCI: oci.New(oci.Config{
			Metadata:         node,
			Blobs:            blobs,
			Logger:           logger.With("component", "oci"),
			MaxManifestBytes: o.maxManifestBytes,
			SparseManifests:  o.sparseManifests,
			PublicURL:        o.publicURL,
		}),
		Route: oci.Route,
		Connect: admin.Handlers(admin.Config{
			Node:    node,
			Blobs:   blobs,
			Catalog: node.FSM(),
			Version: version,
		}),
		UI:       ui.Handler(version, registryHost(o.publicURL)),
		Ready:    func() bool { return node.Status().Ready() },
		Registry: reg,
		Logger:   logger,
	})

	go purgeUploads(ctx, blobs, o.uploadMaxAge, logger)
	return runHTTP(ctx, o, handler, logger)
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
	logger.Info("wharf is serving", "listen", ln.Addr().String(), "data_dir", o.dataDir, "version", version)

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

// purgeUploads removes abandoned upload sessions once an hour.
func purgeUploads(ctx context.Context, blobs *blobstore.Store, maxAge time.Duration, logger *slog.Logger) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := blobs.PurgeUploads(ctx, maxAge)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("purge abandoned uploads", "err", err)
		case n > 0:
			logger.Info("purged abandoned uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
