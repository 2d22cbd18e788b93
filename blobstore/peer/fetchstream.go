package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// ErrStreamBroken: a stream's download started over from another holder,
// or failed; the bytes the stream gave so far may not be the blob's.
var ErrStreamBroken = errors.New("the download of the blob failed or started over")

// Stream returns blob d's bytes as they arrive from a holder, sharing the
// download with every Fetch and Stream of d, as Fetch does. Unlike Fetch,
// it does not wait for the whole blob: its reader gives each byte once it
// is in the download's file, and it is verified only as a whole, so the
// caller must not take the bytes for the blob's until Read returned
// io.EOF, which it does only once the download is verified. A Read that
// fails (ErrStreamBroken, the download's error, or ctx's) means the bytes
// given so far may not be the blob's: a caller streaming them into an
// HTTP response aborts it (see the package documentation). The caller
// must Close the reader.
func (f *Fetcher) Stream(ctx context.Context, d digest.Digest, holders []string) (io.ReadCloser, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("stream %s: %w", d, err)
	}
	e := f.acquire(ctx, d, holders)
	file, attempt, err := f.openDownload(ctx, e)
	if err != nil {
		f.release(e)
		return nil, fmt.Errorf("stream %s: %w", d, err)
	}
	return &stream{ctx: ctx, f: f, e: e, file: file, attempt: attempt}, nil
}

// openDownload opens e's file once its download has created it, and says
// which attempt it is at. It opens the file under the Fetcher's lock:
// finish removes a failed download's file under it too.
func (f *Fetcher) openDownload(ctx context.Context, e *entry) (*os.File, int, error) {
	for {
		f.mu.Lock()
		path, attempt, grew := e.path, e.attempt, e.grew
		if isDone(e) && e.err != nil {
			f.mu.Unlock()
			return nil, 0, fmt.Errorf("%w: %w", ErrStreamBroken, e.err)
		}
		if path != "" {
			file, err := os.Open(path)
			f.mu.Unlock()
			if err != nil {
				return nil, 0, fmt.Errorf("open download: %w", err)
			}
			return file, attempt, nil
		}
		f.mu.Unlock()
		select {
		case <-grew:
		case <-ctx.Done():
			return nil, 0, context.Cause(ctx)
		}
	}
}

// stream reads an entry's file behind its download.
type stream struct {
	ctx     context.Context
	f       *Fetcher
	e       *entry
	file    *os.File
	off     int64
	attempt int
	closed  bool
}

func (s *stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.f.mu.Lock()
		e := s.e
		written, attempt, grew := e.written, e.attempt, e.grew
		done, size, derr := isDone(e), e.size, e.err
		s.f.mu.Unlock()
		switch {
		case attempt != s.attempt:
			return 0, fmt.Errorf("stream %s: %w", e.d, ErrStreamBroken)
		case done && derr != nil:
			return 0, fmt.Errorf("stream %s: %w: %w", e.d, ErrStreamBroken, derr)
		case s.off < written:
			n, err := s.file.ReadAt(p[:min(int64(len(p)), written-s.off)], s.off)
			s.off += int64(n)
			if n > 0 || err == nil {
				return n, nil
			}
			return 0, fmt.Errorf("stream %s: read download: %w", e.d, err)
		case done && s.off >= size:
			return 0, io.EOF
		case done:
			return 0, fmt.Errorf("stream %s: the download ended after %d of %d bytes", e.d, written, size)
		}
		select {
		case <-grew:
		case <-s.ctx.Done():
			return 0, fmt.Errorf("stream %s: %w", e.d, context.Cause(s.ctx))
		}
	}
}

// Close closes the file and lets the Fetcher stop, remove or cache the
// download. Calls after the first do nothing.
func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.file.Close()
	s.f.release(s.e)
	return err
}
