package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// BenchmarkAdminListings times pages of the management API as a client
// sees them: a Connect call over loopback HTTP to a real node, with its
// login, its read-index wait, its role checks and its encoding. The node
// holds 10,000 repositories in 100 namespaces, and a repository big/app
// with 1,000 manifests of 100 tags each (100,000 tags, and 101,000
// activity records). Each iteration fetches the next page of 100, starting
// over at the end of the listing; p50 and p99 are per page:
//
//	go test -run='^$' -bench=AdminListings -benchtime=500x ./cmd/wharf/
//
// "dev" is a collaborator on 10 of the 100 namespaces: its listing of
// every repository keeps one in ten, so its pages are short.
func BenchmarkAdminListings(b *testing.B) {
	h := startHarness(b, harnessOpts{nodes: 1, replicas: 1, writeQuorum: 1, gcInterval: time.Hour})
	node := h.nodes[0].registry().node
	ctx := context.Background()
	start := time.Now()
	var cmds []*fsmpb.Command
	for i := range 10_000 {
		repo := fmt.Sprintf("ns%02d/app-%05d", i%100, i)
		cmds = append(cmds, benchPutManifest(repo, repo, "latest"))
	}
	for i := range 1_000 {
		tags := make([]string, 100)
		for j := range tags {
			tags[j] = fmt.Sprintf("v%d.%d.%d", i/100, i%100, j)
		}
		cmds = append(cmds, benchPutManifest("big/app", fmt.Sprint(i), tags...))
	}
	applyAll(b, node.Apply, cmds)
	acc := accAccess(&accNode{url: h.nodes[0].baseURL}, adminUser, harnessAdminPassword)
	if _, err := acc.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "dev", Password: "dev-password"})); err != nil {
		b.Fatal(err)
	}
	for ns := 0; ns < 100; ns += 10 {
		g := &wharfv1.RoleGrant{Role: "collaborator", Namespace: fmt.Sprintf("ns%02d", ns), User: "dev"}
		if _, err := acc.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("setup: %d commands applied through Raft in %v", len(cmds), time.Since(start).Round(time.Millisecond))

	admin := manageAs(h.nodes[0].baseURL, adminUser, harnessAdminPassword)
	dev := manageAs(h.nodes[0].baseURL, "dev", "dev-password")
	repoPages := func(c manageClients, q *wharfv1.ListRepositoriesRequest) func() (int, error) {
		return func() (int, error) {
			resp, err := c.repos.ListRepositories(ctx, connect.NewRequest(q))
			if err != nil {
				return 0, err
			}
			q.PageToken = resp.Msg.NextPageToken
			return len(resp.Msg.Repositories), nil
		}
	}
	tests := []struct {
		name string
		page func() (int, error)
	}{
		{"repositories/admin-by-name", repoPages(admin, &wharfv1.ListRepositoriesRequest{})},
		{"repositories/admin-by-pushed-desc", repoPages(admin, &wharfv1.ListRepositoriesRequest{Order: wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED, Descending: true})},
		{"repositories/admin-namespace-by-pushed", repoPages(admin, &wharfv1.ListRepositoriesRequest{Namespace: "ns42", Order: wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED})},
		{"repositories/dev-by-name", repoPages(dev, &wharfv1.ListRepositoriesRequest{})},
		{"repositories/dev-by-pushed-desc", repoPages(dev, &wharfv1.ListRepositoriesRequest{Order: wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED, Descending: true})},
		{"images/big-app", func() func() (int, error) {
			q := &wharfv1.ListImagesRequest{Repository: "big/app"}
			return func() (int, error) {
				resp, err := admin.images.ListImages(ctx, connect.NewRequest(q))
				if err != nil {
					return 0, err
				}
				q.PageToken = resp.Msg.NextPageToken
				return len(resp.Msg.Images), nil
			}
		}()},
		{"activity/big-app", func() func() (int, error) {
			q := &wharfv1.ListActivityRequest{Repository: "big/app"}
			return func() (int, error) {
				resp, err := admin.activity.ListActivity(ctx, connect.NewRequest(q))
				if err != nil {
					return 0, err
				}
				q.PageToken = resp.Msg.NextPageToken
				return len(resp.Msg.Activity), nil
			}
		}()},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			records := 0
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				n, err := tt.page()
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				records += n
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
			b.ReportMetric(float64(records)/float64(b.N), "records/page")
		})
	}
}

// benchPutManifest is a PutManifest of an 800-byte image manifest unique
// to id, which references no blob.
func benchPutManifest(repo, id string, tags ...string) *fsmpb.Command {
	content := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":1469},"layers":[],`+
		`"annotations":{"org.opencontainers.image.ref.name":"%s","org.opencontainers.image.source":"https://example.com/src/%s"}}`,
		digest.FromString(id+"/config"), id, id))
	return fsm.NewCommand(&fsmpb.PutManifest{Repository: repo, Digest: digest.FromBytes(content).String(),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Tags: tags})
}

// applyAll applies cmds through Raft, 16 at a time so that Raft batches
// them, and fails on any refusal.
func applyAll(b *testing.B, apply func(context.Context, *fsmpb.Command) (*fsmpb.Result, error), cmds []*fsmpb.Command) {
	var g errgroup.Group
	g.SetLimit(16)
	for _, cmd := range cmds {
		g.Go(func() error {
			res, err := apply(context.Background(), cmd)
			if err == nil && res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK {
				err = fmt.Errorf("%v", res)
			}
			if err != nil {
				return fmt.Errorf("apply %s: %w", cmd.GetPutManifest().GetRepository(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
