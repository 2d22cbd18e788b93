package oci

import (
	"context"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// A manifest push that commits after garbage collection removed one of its
// blobs fails with MANIFEST_BLOB_UNKNOWN, not with a manifest pointing at
// deleted bytes.
func TestManifestPushFailsForCollectedBlob(t *testing.T) {
	node := startNode(t)
	ts := newTestServer(t, sparse, func(c *Config) { c.Metadata = node })
	layer := digest.FromString("collected layer")
	ctx := context.Background()
	for _, cmd := range []*fsmpb.Command{
		{UnixNanos: 1, Op: &fsmpb.Command_AddBlobHolder{AddBlobHolder: &fsmpb.AddBlobHolder{
			Digest: layer.String(), Size: 15, NodeId: "n1"}}},
		{UnixNanos: 100, Op: &fsmpb.Command_CollectBlob{CollectBlob: &fsmpb.CollectBlob{
			Digest: layer.String(), GraceNanos: 10}}},
	} {
		if _, err := node.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	config := ts.pushBlob("repo", []byte("{}"))
	body := imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: config, Size: 2},
		v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: layer, Size: 15})
	resp := ts.putManifest("repo", "v1", v1.MediaTypeImageManifest, body)
	wantError(t, resp, http.StatusBadRequest, CodeManifestBlobUnknown)
	if resp := ts.get("/v2/repo/manifests/v1"); resp.status != http.StatusNotFound {
		t.Fatalf("manifest stored anyway: %d", resp.status)
	}
}
