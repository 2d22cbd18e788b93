package oci

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestTagsList(t *testing.T) {
	ts := newTestServer(t, sparse)
	body := imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 1})
	for _, tag := range []string{"c", "a", "e", "b", "d"} {
		ts.pushManifest("repo", tag, v1.MediaTypeImageManifest, body)
	}
	ts.pushBlob("empty", []byte("repository without tags"))

	tests := []struct {
		name  string
		path  string
		tags  []string
		link  string
		code  ErrorCode
		state int
	}{
		{name: "all", path: "/v2/repo/tags/list", tags: []string{"a", "b", "c", "d", "e"}},
		{name: "first page", path: "/v2/repo/tags/list?n=2", tags: []string{"a", "b"},
			link: `</v2/repo/tags/list?n=2&last=b>; rel="next"`},
		{name: "middle page", path: "/v2/repo/tags/list?n=2&last=b", tags: []string{"c", "d"},
			link: `</v2/repo/tags/list?n=2&last=d>; rel="next"`},
		{name: "last page", path: "/v2/repo/tags/list?n=2&last=d", tags: []string{"e"}},
		{name: "exact last page", path: "/v2/repo/tags/list?n=5", tags: []string{"a", "b", "c", "d", "e"}},
		{name: "last only", path: "/v2/repo/tags/list?last=c", tags: []string{"d", "e"}},
		{name: "n=0", path: "/v2/repo/tags/list?n=0", tags: []string{}},
		{name: "past the end", path: "/v2/repo/tags/list?last=z", tags: []string{}},
		{name: "no tags", path: "/v2/empty/tags/list", tags: []string{}},
		{name: "negative n", path: "/v2/repo/tags/list?n=-1", state: 400, code: CodePaginationNumberInvalid},
		{name: "n not a number", path: "/v2/repo/tags/list?n=ten", state: 400, code: CodePaginationNumberInvalid},
		{name: "unknown repository", path: "/v2/nope/tags/list", state: 404, code: CodeNameUnknown},
		{name: "unknown repository n=0", path: "/v2/nope/tags/list?n=0", state: 404, code: CodeNameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.get(tt.path)
			if tt.code != "" {
				wantError(t, resp, tt.state, tt.code)
				return
			}
			wantStatus(t, resp, http.StatusOK)
			wantHeader(t, resp, "Link", tt.link)
			var got tagList
			if err := json.Unmarshal(resp.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Tags == nil || !slices.Equal(got.Tags, tt.tags) || got.Name != name(tt.path) {
				t.Errorf("got %s, want tags %q", resp.body, tt.tags)
			}
		})
	}
}

// name returns the repository of a tags/list path.
func name(path string) string {
	path, _, _ = strings.Cut(path, "?")
	return parseRoute(path).name
}

func TestCatalog(t *testing.T) {
	ts := newTestServer(t)
	for _, repo := range []string{"b/x", "a", "c", "b/y"} {
		ts.pushBlob(repo, []byte(repo))
	}
	tests := []struct {
		name  string
		query string
		repos []string
		link  string
		bad   bool
	}{
		{name: "all", repos: []string{"a", "b/x", "b/y", "c"}},
		{name: "paginated", query: "?n=3", repos: []string{"a", "b/x", "b/y"},
			link: `</v2/_catalog?n=3&last=b%2Fy>; rel="next"`},
		{name: "after", query: "?n=3&last=b%2Fy", repos: []string{"c"}},
		{name: "n=0", query: "?n=0", repos: []string{}},
		{name: "bad n", query: "?n=1.5", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.get("/v2/_catalog" + tt.query)
			if tt.bad {
				wantError(t, resp, http.StatusBadRequest, CodePaginationNumberInvalid)
				return
			}
			wantStatus(t, resp, http.StatusOK)
			wantHeader(t, resp, "Link", tt.link)
			var got catalog
			if err := json.Unmarshal(resp.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Repositories == nil || !slices.Equal(got.Repositories, tt.repos) {
				t.Errorf("got %s, want %q", resp.body, tt.repos)
			}
		})
	}
}
