package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/encoding/protojson"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// testGCGrace is the nodes' --gc-grace in these tests: long enough to see
// a blob in its grace period, short enough to wait out.
const testGCGrace = 3 * time.Second

func gcClient(n *accNode, user, password string) wharfv1connect.GCServiceClient {
	return wharfv1connect.NewGCServiceClient(&http.Client{Transport: basicTransport{user, password}}, n.url)
}

// startGCNodes starts count nodes whose leader never collects by itself
// during a test (--gc-interval 1h), with a short grace period.
func startGCNodes(t *testing.T, count int) []*accNode {
	return startAccessNodesWith(t, harnessOpts{nodes: count, replicas: count, writeQuorum: 1,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour, gcGrace: testGCGrace})
}

// streamCollection calls RunCollection and returns the candidates and the
// summary it streamed.
func streamCollection(ctx context.Context, c wharfv1connect.GCServiceClient, dry bool) ([]*wharfv1.CollectionCandidate, *wharfv1.GCRun, error) {
	stream, err := c.RunCollection(ctx, connect.NewRequest(&wharfv1.RunCollectionRequest{DryRun: dry}))
	if err != nil {
		return nil, nil, err
	}
	defer stream.Close()
	var cands []*wharfv1.CollectionCandidate
	var sum *wharfv1.GCRun
	for stream.Receive() {
		if cd := stream.Msg().GetCandidate(); cd != nil {
			cands = append(cands, cd)
		}
		if s := stream.Msg().GetSummary(); s != nil {
			sum = s
		}
	}
	return cands, sum, stream.Err()
}

func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

// Every GCService RPC needs the admin role, whatever else the caller holds.
func TestGCServiceRoles(t *testing.T) {
	n := startGCNodes(t, 1)[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	for _, u := range []string{"u-none", "u-owner", "u-admin"} {
		if _, err := access.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: u, Password: u + "-password"})); err != nil {
			t.Fatal(err)
		}
	}
	img := accImage(t)
	if err := remote.Write(accRef(t, n, "acme/app:v1"), img, keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*wharfv1.RoleGrant{{Role: "owner", Namespace: "acme", User: "u-owner"}, {Role: "admin", User: "u-admin"}} {
		if _, err := access.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			t.Fatal(err)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rpcs := map[string]func(c wharfv1connect.GCServiceClient) error{
		"GetStatus": func(c wharfv1connect.GCServiceClient) error {
			_, err := c.GetStatus(ctx, connect.NewRequest(&wharfv1.GetStatusRequest{}))
			return err
		},
		"RunCollection": func(c wharfv1connect.GCServiceClient) error {
			_, _, err := streamCollection(ctx, c, false)
			return err
		},
		"RunCollection dry": func(c wharfv1connect.GCServiceClient) error {
			_, _, err := streamCollection(ctx, c, true)
			return err
		},
		"WhyKept": func(c wharfv1connect.GCServiceClient) error {
			_, err := c.WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: layer.String()}))
			return err
		},
		"GetStorage": func(c wharfv1connect.GCServiceClient) error {
			_, err := c.GetStorage(ctx, connect.NewRequest(&wharfv1.GetStorageRequest{}))
			return err
		},
	}
	tests := []struct {
		role, user, password string
		want                 connect.Code
	}{
		{"anonymous", "", "", connect.CodeUnauthenticated},
		{"no role", "u-none", "u-none-password", connect.CodePermissionDenied},
		{"namespace owner", "u-owner", "u-owner-password", connect.CodePermissionDenied},
		{"admin role", "u-admin", "u-admin-password", 0},
		{"superuser", "admin", accAdminPassword, 0},
	}
	for _, tt := range tests {
		for name, call := range rpcs {
			t.Run(tt.role+"/"+name, func(t *testing.T) {
				if got := codeOf(call(gcClient(n, tt.user, tt.password))); got != tt.want {
					t.Fatalf("code %v, want %v", got, tt.want)
				}
			})
		}
	}
	admin := gcClient(n, "admin", accAdminPassword)
	for _, bad := range []string{"", "sha256:xyz", "nodigest"} {
		_, err := admin.WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: bad}))
		if codeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "digest:") {
			t.Errorf("WhyKept(%q) = %v, want invalid_argument naming the digest field", bad, err)
		}
	}
	_, err = admin.WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: digest.FromString("never pushed").String()}))
	if codeOf(err) != connect.CodeNotFound {
		t.Errorf("WhyKept of an unknown blob = %v, want not_found", err)
	}
}

// A dry run proposes nothing and lists what a run then collects; the run's
// status reads the same through the other node; WhyKept follows a blob
// from linked to in grace to collected; and the CLI shows it all.
func TestGCRunStatusAndWhyAcrossNodes(t *testing.T) {
	nodes := startGCNodes(t, 2)
	ctx := context.Background()
	via := func(i int) wharfv1connect.GCServiceClient { return gcClient(nodes[i], "admin", accAdminPassword) }
	adminAuth := keychainOf("admin", accAdminPassword)

	img := accImage(t)
	if err := remote.Write(accRef(t, nodes[0], "acme/app:v1"), img, adminAuth); err != nil {
		t.Fatal(err)
	}
	manifest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	kept, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	lone, err := random.Layer(2048, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(nodes[0].host()+"/acme/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, lone, adminAuth); err != nil {
		t.Fatal(err)
	}
	goneH, err := lone.Digest()
	if err != nil {
		t.Fatal(err)
	}
	gone := digest.Digest(goneH.String())
	goneSize, err := lone.Size()
	if err != nil {
		t.Fatal(err)
	}

	// Linked and listed by a tagged manifest.
	why, err := via(1).WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: kept.String()}))
	if err != nil {
		t.Fatal(err)
	}
	m := why.Msg
	if !slices.Contains(m.Repositories, "acme/app") || len(m.Manifests) != 1 || m.Manifests[0].ManifestDigest != manifest.String() ||
		!slices.Equal(m.Manifests[0].Tags, []string{"v1"}) || m.GraceUntilUnixNanos != 0 || len(m.HolderNodeIds) != 2 {
		t.Fatalf("WhyKept of a layer: %v", m)
	}

	// Unlinked: in its grace period.
	unlink := fsm.NewCommand(&fsmpb.UnlinkBlob{Repository: "acme/app", Digest: gone.String()})
	if _, err := nodes[0].reg.node.Apply(ctx, unlink); err != nil {
		t.Fatal(err)
	}
	why, err = via(1).WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: gone.String()}))
	if err != nil {
		t.Fatal(err)
	}
	m = why.Msg
	if len(m.Repositories)+len(m.Manifests) != 0 || m.UnreferencedSinceUnixNanos == 0 ||
		m.GraceUntilUnixNanos != m.UnreferencedSinceUnixNanos+int64(testGCGrace) {
		t.Fatalf("WhyKept of an unlinked blob: %v", m)
	}
	time.Sleep(time.Until(time.Unix(0, m.GraceUntilUnixNanos).Add(200 * time.Millisecond)))

	// A dry run lists it and changes nothing.
	cands, sum, err := streamCollection(ctx, via(1), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 1 || cands[0].Digest != gone.String() || cands[0].Size != goneSize || sum.GetCollected() != 1 {
		t.Fatalf("dry run: candidates %v, summary %v; want %s (%d bytes) only", cands, sum, gone, goneSize)
	}
	f := nodes[0].reg.node.FSM()
	if _, err := f.BlobHolders(gone); err != nil {
		t.Fatalf("after a dry run, holders of %s: %v", gone, err)
	}
	if _, err := f.CollectedBlob(gone); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("a dry run collected %s: %v", gone, err)
	}
	if _, err := f.LastGCRun(); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("a dry run recorded a run: %v", err)
	}

	// The run, on node 1, collects what the dry run listed.
	_, sum, err = streamCollection(ctx, via(1), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.GetCollected() != 1 || sum.GetBytesCollected() != goneSize || sum.GetNodeId() != nodes[1].reg.node.ID() || !sum.GetManual() {
		t.Fatalf("run summary %v", sum)
	}
	if _, err := via(0).WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: gone.String()})); codeOf(err) != connect.CodeNotFound ||
		!strings.Contains(err.Error(), "collected") {
		t.Fatalf("WhyKept of a collected blob = %v, want not_found saying it was collected", err)
	}
	if _, err := via(0).WhyKept(ctx, connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: kept.String()})); err != nil {
		t.Fatalf("the referenced layer: %v", err)
	}

	// Node 0 sweeps its copy; node 1 reports it, and node 0 the run.
	if _, err := nodes[0].reg.gc.SweepAndRecord(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := via(1).GetStatus(ctx, connect.NewRequest(&wharfv1.GetStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	sweep := st.Msg.Sweeps[slices.IndexFunc(st.Msg.Sweeps, func(s *wharfv1.NodeSweep) bool { return s.NodeId == nodes[0].reg.node.ID() })]
	if sweep.CollectedFiles != 1 || sweep.CollectedBytes != goneSize || sweep.UploadMaxAgeNanos != int64(time.Hour) {
		t.Fatalf("node 0's sweep as node 1 reports it: %v", sweep)
	}
	st, err = via(0).GetStatus(ctx, connect.NewRequest(&wharfv1.GetStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Msg.LastRun; r.GetNodeId() != nodes[1].reg.node.ID() || r.GetCollected() != 1 || !r.GetManual() ||
		st.Msg.NextRunUnixNanos != r.GetEndedUnixNanos()+int64(time.Hour) || st.Msg.GraceNanos != int64(testGCGrace) {
		t.Fatalf("status through node 0: %v", st.Msg)
	}

	storage, err := via(0).GetStorage(ctx, connect.NewRequest(&wharfv1.GetStorageRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	s := storage.Msg
	if len(s.Namespaces) != 1 || s.Namespaces[0].Namespace != "acme" || s.Namespaces[0].Blobs != 2 || // the layer and the config
		s.ReferencedBlobs != 2 || s.HeldBlobs != 2 || len(s.Nodes) != 2 || s.Nodes[0].Bytes != s.HeldBytes {
		t.Fatalf("storage %v", s)
	}

	// The CLI.
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", nodes[0].url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	out := cli.must("graceNanos", "gc", "status", "-o", "json")
	var resp wharfv1.GetStatusResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("gc status -o json: %v\n%s", err, out)
	}
	if resp.LastRun.GetNodeId() != nodes[1].reg.node.ID() || len(resp.Sweeps) == 0 {
		t.Fatalf("gc status -o json: %v", &resp)
	}
	cli.must("Last run:", "gc", "status")
	cli.must("acme/app@"+manifest.String()+" (v1)", "gc", "why", kept.String())
	cli.must("acme", "gc", "storage")
	cli.must("would be collected; nothing changed", "gc", "run", "--dry-run")
	cli.refused("not_found", "gc", "why", gone.String())
}
