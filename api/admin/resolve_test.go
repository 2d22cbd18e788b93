package admin

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/fsm"
)

// An unknown tag or digest is named once in the error the CLI prints, not
// once per layer that wrapped it.
func TestNotFoundNamesTheReferenceOnce(t *testing.T) {
	f, err := fsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = resolve(f, "reference", "acme/app", "nope")
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("resolve of an unknown tag: %v, want NotFound", err)
	}
	if n := strings.Count(err.Error(), `tag "nope"`); n != 1 {
		t.Errorf("resolve of an unknown tag: %q names the tag %d times, want once", err, n)
	}
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	_, err = f.Image("acme/app", d)
	if err == nil || strings.Count(err.Error(), d) != 1 || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Image of an unknown digest: %v, want one mention of %s and not found", err, d)
	}
}
