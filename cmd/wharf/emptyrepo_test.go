package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// listings returns the repositories /v2/_catalog and the admin API's
// ListRepositories show the admin, through base.
func listings(t *testing.T, base string) (catalog, admin []string) {
	t.Helper()
	code, _, body := doRequest(t, http.MethodGet, base+"/v2/_catalog", nil, nil)
	var cat struct{ Repositories []string }
	if err := json.Unmarshal(body, &cat); err != nil || code != http.StatusOK {
		t.Fatalf("catalog: HTTP %d %s: %v", code, body, err)
	}
	client := wharfv1connect.NewRepositoryServiceClient(&http.Client{Transport: basicTransport{adminUser, harnessAdminPassword}}, base)
	resp, err := client.ListRepositories(context.Background(), connect.NewRequest(&wharfv1.ListRepositoriesRequest{}))
	if err != nil {
		t.Fatalf("list repositories: %v", err)
	}
	for _, r := range resp.Msg.Repositories {
		admin = append(admin, r.Name)
	}
	return cat.Repositories, admin
}

// A push that failed before its manifest leaves a repository that both
// listings drop once it has been empty for --empty-repo-grace; a pushed
// image stays.
func TestEmptyRepositoryLeavesTheListings(t *testing.T) {
	h := startHarness(t, harnessOpts{gcInterval: 200 * time.Millisecond, emptyRepoGrace: 2 * time.Second})
	pushBlobMonolithic(t, h.lbURL(), "acme/failed", randomBytes(t, 4096, 1))
	config, layer := randomBytes(t, 512, 2), randomBytes(t, 4096, 3)
	pushBlobMonolithic(t, h.lbURL(), "acme/app", config)
	pushBlobMonolithic(t, h.lbURL(), "acme/app", layer)
	if code, body := putManifest(t, h.lbURL(), "acme/app", "v1", manifestFor(config, layer)); code != http.StatusCreated {
		t.Fatalf("put manifest: %d %s", code, body)
	}
	both := []string{"acme/app", "acme/failed"}
	if catalog, admin := listings(t, h.lbURL()); !slices.Equal(catalog, both) || !slices.Equal(admin, both) {
		t.Fatalf("before the grace period: catalog %v, admin %v; want %v", catalog, admin, both)
	}
	waitUntil(t, 20*time.Second, func() error {
		for _, n := range h.nodes {
			if catalog, admin := listings(t, n.baseURL); !slices.Equal(catalog, []string{"acme/app"}) || !slices.Equal(admin, []string{"acme/app"}) {
				return fmt.Errorf("through node %d: catalog %v, admin %v; want only acme/app", n.idx, catalog, admin)
			}
		}
		return nil
	})
	if code, _, body := doRequest(t, http.MethodGet, h.lbURL()+"/v2/acme/app/tags/list", nil, nil); code != http.StatusOK {
		t.Fatalf("tags of the pushed image: %d %s", code, body)
	}
}
