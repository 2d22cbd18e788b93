package oci

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var errContentRange = errors.New("invalid Content-Range")

// parseContentRange parses the Content-Range of an upload chunk: the
// inclusive byte range "<start>-<end>" of the distribution specification.
// The RFC 9110 form "bytes <start>-<end>/<size or *>" is accepted too.
func parseContentRange(s string) (start, end int64, err error) {
	spec := strings.TrimPrefix(s, "bytes ")
	spec, total, hasTotal := strings.Cut(spec, "/")
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%w %q: expected <start>-<end>", errContentRange, s)
	}
	if start, err = parseOffset(first); err != nil {
		return 0, 0, fmt.Errorf("%w %q: start: %w", errContentRange, s, err)
	}
	if end, err = parseOffset(last); err != nil {
		return 0, 0, fmt.Errorf("%w %q: end: %w", errContentRange, s, err)
	}
	if end < start {
		return 0, 0, fmt.Errorf("%w %q: end is before start", errContentRange, s)
	}
	if hasTotal && total != "*" {
		size, err := parseOffset(total)
		if err != nil || size <= end {
			return 0, 0, fmt.Errorf("%w %q: bad total size", errContentRange, s)
		}
	}
	return start, end, nil
}

// parseOffset parses a non-negative decimal byte offset without sign.
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a byte offset", s)
	}
	return strconv.ParseInt(s, 10, 64)
}
