package peer

import (
	"context"
	_ "crypto/sha256" // digest algorithms for verification
	_ "crypto/sha512"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// maxErrorBody bounds how much of an error response is read into an error.
const maxErrorBody = 1 << 10

// StatusError is an unexpected HTTP status from a peer. A 404 matches
// blobstore.ErrBlobUnknown with errors.Is.
type StatusError struct {
	StatusCode int
	Message    string // the start of the response body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("peer answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

func (e *StatusError) Unwrap() error {
	if e.StatusCode == http.StatusNotFound {
		return blobstore.ErrBlobUnknown
	}
	return nil
}

// Push sends the size bytes of blob d read from r to the peer at baseURL
// (e.g. "https://10.0.0.2:5002") and returns once the peer has verified,
// stored and fsynced it, or already held it; size < 0 means unknown. r is
// not closed. The request asks for 100-continue, so with a client whose
// transport sets ExpectContinueTimeout, a peer that holds the blob already
// answers before any byte is sent.
func Push(ctx context.Context, client *http.Client, baseURL string, d digest.Digest, size int64, r io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, blobURL(baseURL, d), io.NopCloser(r))
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", d, baseURL, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue") // the peer may hold it already
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", d, baseURL, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("push %s to %s: %w", d, baseURL, statusError(resp))
	}
	return nil
}

// Fetch copies blob d from the peer at baseURL to w, verifying it while it
// streams, and returns the number of bytes written. If the bytes do not
// match d it returns an error matching blobstore.ErrDigestMismatch after
// they have all been written; see the package documentation for what a
// caller streaming into an HTTP response must then do.
func Fetch(ctx context.Context, client *http.Client, baseURL string, d digest.Digest, w io.Writer) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("fetch %s: %w", d, err)
	}
	resp, err := get(ctx, client, baseURL, d, "", http.StatusOK)
	if err != nil {
		return 0, fmt.Errorf("fetch %s from %s: %w", d, baseURL, err)
	}
	defer resp.Body.Close()
	v := d.Verifier()
	n, err := io.Copy(w, io.TeeReader(resp.Body, v))
	if err != nil {
		return n, fmt.Errorf("fetch %s from %s: %w", d, baseURL, err)
	}
	if !v.Verified() {
		return n, fmt.Errorf("fetch %s from %s: %w: the %d bytes received hash to another digest",
			d, baseURL, blobstore.ErrDigestMismatch, n)
	}
	return n, nil
}

// get sends a GET for blob d, with a Range header unless rangeSpec is
// empty, and returns the response if its status is want.
func get(ctx context.Context, client *http.Client, baseURL string, d digest.Digest, rangeSpec string, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(baseURL, d), nil)
	if err != nil {
		return nil, err
	}
	if rangeSpec != "" {
		req.Header.Set("Range", rangeSpec)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		defer drainAndClose(resp.Body)
		return nil, statusError(resp)
	}
	return resp, nil
}

func blobURL(baseURL string, d digest.Digest) string {
	return strings.TrimSuffix(baseURL, "/") + PathPrefix + string(d)
}

func statusError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &StatusError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
}

// drainAndClose reads a little of what is left of body, so the connection
// can be reused, and closes it.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	_ = body.Close()
}
