package oci

import (
	"net/http"
	"slices"
	"strings"
)

// routeKind identifies an endpoint of the API.
type routeKind int

const (
	routeUnknown routeKind = iota
	routeBase
	routeCatalog
	routeTagsList
	routeManifest
	routeBlob
	routeUploadStart   // POST /v2/<name>/blobs/uploads/
	routeUploadSession // /v2/<name>/blobs/uploads/<id>
	routeReferrers
)

// String returns the low-cardinality route name used as a metrics label.
func (k routeKind) String() string {
	switch k {
	case routeBase:
		return "base"
	case routeCatalog:
		return "catalog"
	case routeTagsList:
		return "tags_list"
	case routeManifest:
		return "manifest"
	case routeBlob:
		return "blob"
	case routeUploadStart, routeUploadSession:
		return "blob_upload"
	case routeReferrers:
		return "referrers"
	default:
		return "unknown"
	}
}

// route is a parsed request path. name is the repository (not yet
// validated); arg is the reference, digest or upload ID after it.
type route struct {
	kind routeKind
	name string
	arg  string
}

// Route returns the name of the API endpoint r is for: "base", "catalog",
// "tags_list", "manifest", "blob", "blob_upload", "referrers" or "unknown".
// It is meant as a low-cardinality metrics label.
func Route(r *http.Request) string {
	return parseRoute(r.URL.Path).kind.String()
}

// parseRoute splits a path under /v2/ into endpoint, repository name and
// argument. Repository names may contain slashes and components such as
// "blobs" or "manifests", so the endpoint is matched on the last segments.
func parseRoute(path string) route {
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return route{}
	}
	if rest == "" || rest == "/" {
		return route{kind: routeBase}
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return route{}
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}
	}
	segs := strings.Split(rest, "/")
	for _, m := range routeSuffixes {
		if rt, ok := m.match(segs); ok {
			return rt
		}
	}
	return route{}
}

// routeSuffix matches the last segments of a path: fixed segments, then
// optionally one argument segment.
type routeSuffix struct {
	kind   routeKind
	fixed  []string
	hasArg bool
}

// routeSuffixes are tried in order; longer, more specific suffixes first.
var routeSuffixes = []routeSuffix{
	{kind: routeTagsList, fixed: []string{"tags", "list"}},
	{kind: routeUploadSession, fixed: []string{"blobs", "uploads"}, hasArg: true},
	{kind: routeUploadStart, fixed: []string{"blobs", "uploads"}},
	{kind: routeManifest, fixed: []string{"manifests"}, hasArg: true},
	{kind: routeReferrers, fixed: []string{"referrers"}, hasArg: true},
	{kind: routeBlob, fixed: []string{"blobs"}, hasArg: true},
}

func (m routeSuffix) match(segs []string) (route, bool) {
	n := len(m.fixed)
	if m.hasArg {
		n++
	}
	if len(segs) <= n { // the name needs at least one segment
		return route{}, false
	}
	tail := segs[len(segs)-n:]
	if !slices.Equal(tail[:len(m.fixed)], m.fixed) {
		return route{}, false
	}
	rt := route{kind: m.kind, name: strings.Join(segs[:len(segs)-n], "/")}
	if m.hasArg {
		rt.arg = tail[len(tail)-1]
		if rt.arg == "" {
			if m.kind != routeUploadSession {
				return route{}, false
			}
			// "/blobs/uploads/" with the trailing slash starts an upload.
			rt.kind = routeUploadStart
		}
	}
	return rt, true
}
