// Package layering checks the arrows allowed between wharf's packages, the
// ones ARCHITECTURE.md draws: each part owns its vocabulary, and a push
// reads top to bottom, api/oci -> cluster/replication -> blobstore ->
// cluster -> fsm, without the lower parts knowing the upper ones.
package layering

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/wharf-registry/wharf/"

// allowed maps each package (a path, or a path ending in "/..." for it
// and everything below) to the wharf packages it may import, in the same
// form. The most specific entry holds; a package with no entry may import
// any wharf package (cmd/wharf, which assembles the others).
var allowed = map[string][]string{
	"fsm/...":               {"fsm/..."},
	"blobstore/...":         {"blobstore/...", "internal/diskspace"},
	"cluster":               {"cluster/clusterpb/...", "fsm/...", "internal/diskspace"},
	"cluster/clusterpb/...": {"cluster/clusterpb/..."},
	"cluster/replication":   {"blobstore/...", "fsm/...", "internal/diskspace"},
	"cluster/gc":            {"blobstore/...", "fsm/..."},
	"cluster/remotesync":    {"fsm/..."},
	"cluster/blobstate":     {"cluster", "cluster/gc", "cluster/replication", "fsm/..."},
	"api":                   {},
	"api/auth":              {"fsm/..."},
	"api/oci":               {"api/auth", "blobstore", "cluster", "fsm/...", "internal/diskspace"},
	"api/admin":             {"api/auth", "api/gen/...", "cluster", "cluster/remotesync", "fsm/...", "internal/diskspace", "internal/secretbox"},
	"api/gen/...":           {"api/gen/..."},
	"internal/diskspace":    {},
	"internal/secretbox":    {},
	"internal/testnet":      {},
	"internal/clustertest":  {"cluster"},
	"ui":                    {"api/gen/..."}, // the admin API's clients, called in-process
}

func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// rule returns the most specific entry of allowed for pkg.
func rule(pkg string) (string, []string, bool) {
	best := ""
	for pattern := range allowed {
		if matches(pattern, pkg) && len(strings.TrimSuffix(pattern, "/...")) > len(strings.TrimSuffix(best, "/...")) {
			best = pattern
		}
	}
	return best, allowed[best], best != ""
}

// TestPackagesImportOnlyDownwards reads every package's imports (tests
// aside) and refuses an arrow the table does not allow.
func TestPackagesImportOnlyDownwards(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); dir != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(dir, 0)
		if _, none := err.(*build.NoGoError); none {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, dir)
		pkg := filepath.ToSlash(rel)
		pattern, may, ok := rule(pkg)
		if !ok {
			return nil
		}
		checked++
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok || dep == pkg {
				continue
			}
			permitted := false
			for _, m := range may {
				permitted = permitted || matches(m, dep)
			}
			if !permitted {
				t.Errorf("%s imports %s, which its layer (%s) may not: allowed %v", pkg, dep, pattern, may)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 15 {
		t.Fatalf("checked %d packages; the walk missed the tree", checked)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("not the module root: %v", err)
	}
}
