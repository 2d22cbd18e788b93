package fsm

import (
	"errors"
	"slices"
	"testing"
)

func TestListPagination(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		putManifest("b/x", "m1", "v2", "v10", "latest"),
		linkBlob("a/y", "b1", 1),
		linkBlob("c", "b1", 1),
		putManifest("b/x-1", "m2", "other"), // tags of a similar name must not leak
	)
	tests := []struct {
		name string
		list func() ([]string, error)
		want []string
	}{
		{"all repositories", func() ([]string, error) { return f.ListRepositories("", 0) }, []string{"a/y", "b/x", "b/x-1", "c"}},
		{"first page", func() ([]string, error) { return f.ListRepositories("", 2) }, []string{"a/y", "b/x"}},
		{"next page", func() ([]string, error) { return f.ListRepositories("b/x", 2) }, []string{"b/x-1", "c"}},
		{"past the end", func() ([]string, error) { return f.ListRepositories("c", 2) }, nil},
		{"tags by bytes", func() ([]string, error) { return f.ListTags("b/x", "", 0) }, []string{"latest", "v10", "v2"}},
		{"tags after", func() ([]string, error) { return f.ListTags("b/x", "latest", 1) }, []string{"v10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.list()
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := f.ListTags("nope/x", "", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListTags of absent repository = %v, want ErrNotFound", err)
	}
}

func TestCheckRepositoryName(t *testing.T) {
	f := openTest(t)
	f.mustApply(putManifest("flat", "m1"), linkBlob("deep/x", "b1", 1))
	tests := []struct {
		repo string
		want error
	}{
		{"flat", nil},
		{"flat/y", ErrNamespaceConflict},
		{"deep", ErrNamespaceConflict},
		{"deep/x", nil},
		{"deep/y/z", nil},
		{"fresh", nil},
		{"Not/Valid", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			if err := f.CheckRepositoryName(tt.repo); !errors.Is(err, tt.want) {
				t.Fatalf("CheckRepositoryName(%q) = %v, want %v", tt.repo, err, tt.want)
			}
		})
	}
}

func TestRepositoryStats(t *testing.T) {
	f := openTest(t)
	f.mustApply(putManifest("a/b", "m1", "v1", "v2"), putManifest("a/b", "m2"), linkBlob("a/b", "b1", 3))
	got, err := f.RepositoryStats("a/b")
	if want := (RepositoryStats{Tags: 2, Manifests: 2, Blobs: 1}); err != nil || got != want {
		t.Fatalf("RepositoryStats = %+v, %v; want %+v", got, err, want)
	}
	if _, err := f.RepositoryStats("a/c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RepositoryStats of absent repository = %v, want ErrNotFound", err)
	}
	if repo, err := f.Repository("a/b"); err != nil || repo.GetNamespace() != "a" {
		t.Fatalf("Repository = %v, %v", repo, err)
	}
}
