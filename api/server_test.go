package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/api"
	"github.com/wharf-registry/wharf/api/admin"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/api/oci"
	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/blobstate"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/internal/clustertest"
	"github.com/wharf-registry/wharf/ui"
)

// fullServer is the public listener as wharf serve assembles it.
type fullServer struct {
	url   string
	ready bool
	disk  string // the /readyz detail
}

func startFullServer(t *testing.T) *fullServer {
	t.Helper()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	blobs, err := blobstore.Open(blobstore.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	node := clustertest.Node(t, func(c *cluster.Config) { c.DataDir, c.NodeName, c.Registerer = dir, "test", reg })
	store, err := replication.New(replication.Config{
		Local: blobs, Cluster: blobstate.Of(node), Client: node.PeerHTTPClient(), FetchDir: filepath.Join(dir, "fetch"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	fs := &fullServer{ready: true, disk: "disk: 12.3 GiB free of 50.0 GiB\n"}
	connectHandlers := admin.Handlers(admin.Config{
		Node: node, Blobs: blobs, State: node.Current, Apply: node.Apply, Content: store, Version: "test",
	})
	webUI, err := ui.New(ui.Config{Version: "test", Connect: connectHandlers})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(api.Config{
		OCI:         oci.New(oci.Config{Metadata: node, Blobs: store, NodeID: node.ID()}),
		Route:       oci.Route,
		Connect:     connectHandlers,
		UI:          webUI,
		Ready:       func() bool { return fs.ready && node.Status().Ready() },
		ReadyDetail: func() string { return fs.disk },
		Registry:    reg,
	}))
	t.Cleanup(srv.Close)
	fs.url = srv.URL
	return fs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	s := startFullServer(t)
	tests := []struct {
		name       string
		path       string
		ready      bool
		wantStatus int
		wantBody   string
	}{
		{"liveness", "/healthz", true, 200, "ok"},
		{"ready", "/readyz", true, 200, "ready\ndisk: 12.3 GiB free of 50.0 GiB\n"},
		{"not ready", "/readyz", false, 503, "not ready"},
		{"disk detail while not ready", "/readyz", false, 503, "index\ndisk: 12.3 GiB free"},
		{"liveness while not ready", "/healthz", false, 200, "ok"},
		{"home page: the UI's listing, empty", "/", true, 200, "podman push"},
		{"unknown page", "/nope", true, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.ready = tt.ready
			status, body := get(t, s.url+tt.path)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("GET %s: %d %q, want %d containing %q", tt.path, status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestMetricsCountRequestsAndBytes(t *testing.T) {
	s := startFullServer(t)
	pushSmallImage(t, s.url, "metrics/app", "v1")
	if status, _ := get(t, s.url+"/v2/metrics/app/manifests/v1"); status != 200 {
		t.Fatalf("manifest GET: %d", status)
	}
	_, metrics := get(t, s.url+"/metrics")
	for _, want := range []string{
		`wharf_http_request_duration_seconds_count{code="201",method="PUT",route="manifest"} 1`,
		`wharf_http_request_duration_seconds_count{code="200",method="GET",route="manifest"} 1`,
		`wharf_http_request_bytes_total{route="blob_upload"}`,
		`wharf_http_response_bytes_total{route="manifest"}`,
		`wharf_fsm_apply_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `wharf_http_request_bytes_total{route="blob_upload"} 0`) {
		t.Error("upload bytes were not counted")
	}
}

func TestAdminServices(t *testing.T) {
	s := startFullServer(t)
	// Four images share one config blob: five blobs in all.
	for _, repo := range []string{"alpha/one", "alpha/two", "beta/one", "gamma"} {
		pushSmallImage(t, s.url, repo, "v1")
	}
	ctx := context.Background()

	status, err := wharfv1connect.NewClusterServiceClient(http.DefaultClient, s.url).
		Status(ctx, connect.NewRequest(&wharfv1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if st := status.Msg; st.RaftState != "Leader" || st.BlobCount != 5 || st.FsmAppliedIndex == 0 || st.Version != "test" {
		t.Errorf("unexpected status %+v", st)
	}

	repos := wharfv1connect.NewRepositoryServiceClient(http.DefaultClient, s.url)
	tests := []struct {
		namespace string
		pageSize  int32
		want      []string
	}{
		{"", 0, []string{"alpha/one", "alpha/two", "beta/one", "gamma"}},
		{"", 1, []string{"alpha/one", "alpha/two", "beta/one", "gamma"}},
		{"alpha", 1, []string{"alpha/one", "alpha/two"}},
		{"gamma", 10, []string{"gamma"}},
		{"delta", 10, nil},
	}
	for _, tt := range tests {
		var got []string
		token := ""
		for {
			resp, err := repos.ListRepositories(ctx, connect.NewRequest(&wharfv1.ListRepositoriesRequest{
				Namespace: tt.namespace, PageSize: tt.pageSize, PageToken: token,
			}))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.Msg.Repositories {
				if r.TagCount != 1 || r.ManifestCount != 1 {
					t.Errorf("%s: %d tags, %d manifests, want 1 and 1", r.Name, r.TagCount, r.ManifestCount)
				}
				got = append(got, r.Name)
			}
			if token = resp.Msg.NextPageToken; token == "" {
				break
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("namespace %q page size %d: got %v, want %v", tt.namespace, tt.pageSize, got, tt.want)
		}
	}

	_, err = repos.ListRepositories(ctx, connect.NewRequest(&wharfv1.ListRepositoriesRequest{PageSize: -1}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("negative page size: got %v, want InvalidArgument", err)
	}
}

// TestDotSegmentsAreRefusedNotRedirected: a path with "." or ".." segments
// or a doubled slash gets a 400 (NAME_INVALID in the OCI envelope under
// /v2/), never a redirect to its cleaned form.
func TestDotSegmentsAreRefusedNotRedirected(t *testing.T) {
	fs := startFullServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		method, path string
		status       int
		ociCode      string // "" for a plain-text answer
	}{
		{http.MethodDelete, "/v2/../../etc/passwd", http.StatusBadRequest, "NAME_INVALID"},
		{http.MethodGet, "/v2/acme/../app/manifests/v1", http.StatusBadRequest, "NAME_INVALID"},
		{http.MethodGet, "/v2/acme/./app/tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{http.MethodGet, "/v2//acme/app/tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{http.MethodPut, "/v2/acme/app/manifests/..", http.StatusBadRequest, "NAME_INVALID"},
		{http.MethodGet, "/ui/../metrics", http.StatusBadRequest, ""},
		{http.MethodGet, "/token/../v2/", http.StatusBadRequest, ""},
		{http.MethodGet, "//healthz", http.StatusBadRequest, ""},
		// Canonical paths still reach their handlers.
		{http.MethodGet, "/v2/", http.StatusOK, ""},
		{http.MethodGet, "/healthz", http.StatusOK, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, fs.url+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != "" {
			t.Errorf("%s %s: HTTP %d, Location %q; want %d and no redirect", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.status)
		}
		if tt.ociCode != "" && !strings.Contains(string(body), `"code":"`+tt.ociCode+`"`) {
			t.Errorf("%s %s: body %s, want the OCI error %s", tt.method, tt.path, body, tt.ociCode)
		}
	}
}
