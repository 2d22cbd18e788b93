package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr string
	}{
		{in: "repository:acme/app:pull,push", want: Scope{"repository", "acme/app", []string{"pull", "push"}}},
		{in: "repository:acme/app:push,pull,push", want: Scope{"repository", "acme/app", []string{"pull", "push"}}},
		{in: "repository:solo:pull", want: Scope{"repository", "solo", []string{"pull"}}},
		{in: "repository(plugin):acme/app:pull", want: Scope{"repository", "acme/app", []string{"pull"}}},
		{in: "registry:catalog:*", want: Scope{"registry", "catalog", []string{"*"}}},
		{in: "repository:acme/app", wantErr: "type:name:actions"},
		{in: "repository", wantErr: "type:name:actions"},
		{in: "repository:Acme/App:pull", wantErr: "bad repository name"},
		{in: "repository:acme/app:", wantErr: "bad action"},
		{in: "repository:acme/app:pull,,push", wantErr: "bad action"},
		{in: "repository:acme/app:PULL", wantErr: "bad action"},
		{in: "registry:other:*", wantErr: "catalog"},
		{in: "volume:x:pull", wantErr: "unknown resource type"},
		{in: "repository:a:b:pull", wantErr: "bad repository name"},
		{in: "repository:" + strings.Repeat("a", 600) + ":pull", wantErr: "longer than"},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseScope(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Type != tt.want.Type || got.Name != tt.want.Name || !slices.Equal(got.Actions, tt.want.Actions) {
			t.Errorf("ParseScope(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseScopes(t *testing.T) {
	got, err := ParseScopes([]string{"repository:a/b:push repository:c/d:pull", "repository:a/b:pull", "registry:catalog:*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"repository:a/b:pull,push", "repository:c/d:pull", "registry:catalog:*"}
	if !slices.Equal(scopeStrings(got), want) {
		t.Fatalf("ParseScopes = %v, want %v", scopeStrings(got), want)
	}
	if _, err := ParseScopes([]string{"repository:a/b:pull bad"}); err == nil {
		t.Fatal("a bad scope among good ones was accepted")
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:acme/app:pull,push", "registry:catalog:*", "repository(plugin):a:pull", "a:b:c:d", "::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		// A parsed scope formats to a string that parses to itself.
		again, err := ParseScope(sc.String())
		if err != nil {
			t.Fatalf("ParseScope(%q) = %v, whose String %q does not parse: %v", s, sc, sc.String(), err)
		}
		if again.Type != sc.Type || again.Name != sc.Name || !slices.Equal(again.Actions, sc.Actions) {
			t.Fatalf("round trip of %q: %v != %v", s, again, sc)
		}
		if len(sc.Actions) == 0 || strings.ContainsAny(sc.Name, " \",") {
			t.Fatalf("ParseScope(%q) = %v", s, sc)
		}
	})
}
