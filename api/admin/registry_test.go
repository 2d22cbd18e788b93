package admin

import (
	"testing"

	"connectrpc.com/connect"
)

func TestPageSize(t *testing.T) {
	tests := []struct {
		requested int32
		want      int
		wantErr   bool
	}{
		{0, defaultPageSize, false},
		{1, 1, false},
		{maxPageSize, maxPageSize, false},
		{maxPageSize + 1, maxPageSize, false},
		{-1, 0, true},
	}
	for _, tt := range tests {
		got, err := pageSize(tt.requested)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("pageSize(%d) = %d, %v; want %d, error %v", tt.requested, got, err, tt.want, tt.wantErr)
		}
		if err != nil && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("pageSize(%d): code %v, want InvalidArgument", tt.requested, connect.CodeOf(err))
		}
	}
}

func TestInNamespace(t *testing.T) {
	tests := []struct {
		repo, namespace string
		want            bool
	}{
		{"foo", "foo", true},
		{"foo/bar", "foo", true},
		{"foo/bar/baz", "foo", true},
		{"foo-bar", "foo", false},
		{"foobar/x", "foo", false},
		{"fo", "foo", false},
	}
	for _, tt := range tests {
		if got := inNamespace(tt.repo, tt.namespace); got != tt.want {
			t.Errorf("inNamespace(%q, %q) = %v, want %v", tt.repo, tt.namespace, got, tt.want)
		}
	}
}

func TestNamespaceStartSortsBeforeTheNamespace(t *testing.T) {
	for _, ns := range []string{"a", "foo", "z9", "abc.def"} {
		start := namespaceStart(ns)
		if !(start < ns) {
			t.Errorf("namespaceStart(%q) = %q does not sort before it", ns, start)
		}
		for _, before := range []string{ns[:len(ns)-1], ns[:len(ns)-1] + "-"} {
			if before != "" && before > start {
				t.Errorf("namespaceStart(%q) = %q sorts before %q, which is outside the namespace", ns, start, before)
			}
		}
	}
}
