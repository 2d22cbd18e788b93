package oci

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// maxPageSize caps the entries of one catalog or tag list response. A
// client asking for more, or not saying, gets this many and a Link header.
const maxPageSize = 1000

// page is the pagination window of a list request.
type page struct {
	n    int    // entries wanted, 0..maxPageSize
	last string // list entries after this one
}

// parsePage reads the n and last query parameters.
func parsePage(q url.Values) (page, error) {
	p := page{n: maxPageSize, last: q.Get("last")}
	if !q.Has("n") {
		return p, nil
	}
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return page{}, newError(http.StatusBadRequest, CodePaginationNumberInvalid,
			"invalid n parameter %q: use a non-negative integer", q.Get("n"))
	}
	p.n = min(n, maxPageSize)
	return p, nil
}

// fetch is how a list endpoint reads entries after last, at most n.
type fetch func(last string, n int) ([]string, error)

// list returns the entries of p, asking for one more than wanted to learn
// whether there is a next page; more reports that there is.
func (p page) list(get fetch) (entries []string, more bool, err error) {
	if p.n == 0 {
		return []string{}, false, nil
	}
	entries, err = get(p.last, p.n+1)
	if err != nil {
		return nil, false, err
	}
	if len(entries) > p.n {
		return entries[:p.n], true, nil
	}
	if entries == nil {
		entries = []string{}
	}
	return entries, false, nil
}

// setNextLink sets the RFC 5988 Link header to the page after entries.
func setNextLink(w http.ResponseWriter, path string, p page, entries []string) {
	last := entries[len(entries)-1]
	w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=%s>; rel="next"`, path, p.n, url.QueryEscape(last)))
}
