package oci

import (
	"net/url"
	"os"
	"os/exec"
	"testing"
)

// TestConformance runs the OCI distribution-spec conformance suite against
// a test registry when OCI_CONFORMANCE_BIN names the suite's binary (built
// from github.com/opencontainers/distribution-spec/conformance).
func TestConformance(t *testing.T) {
	bin := os.Getenv("OCI_CONFORMANCE_BIN")
	if bin == "" {
		t.Skip("set OCI_CONFORMANCE_BIN to the conformance binary to run the suite")
	}
	ts := newTestServer(t, sparse)
	u, err := url.Parse(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	results := os.Getenv("OCI_RESULTS_DIR")
	if results == "" {
		results = t.TempDir()
	}
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+u.Host,
		"OCI_TLS=disabled",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_DATA_SPARSE=true",
		"OCI_RESULTS_DIR="+results,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("conformance suite failed (%v); reports in %s:\n%s", err, results, out)
	}
	t.Logf("conformance suite passed:\n%s", out)
}
