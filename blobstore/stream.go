package blobstore

import (
	"context"
	"fmt"
	"hash"
	"io"
	"os"
)

// chunkSize is the size of each of the two streaming buffers of an ingest.
const chunkSize = 1 << 20

// cachedWindow is how far behind the end of an upload its bytes stay in
// the page cache: older chunks are dropped once on disk (dropWritten). It
// leaves a mirror that reads the upload's file behind the client room to
// lag without going to disk (33 ms at 1 Gbit/s), and keeps small blobs
// cached whole. Keeping more costs the writes of every blob above it fresh
// pages instead of reused ones: with 32 MiB, 10 MiB pushes through a
// 3-node cluster (bench-cluster, 1gbit NICs, 0.5 CPU per node) ran at 59-60
// MB/s, with 4 MiB at 67-69 (1 MiB gained nothing more).
const cachedWindow = 4 << 20

// minChunk is the least an ingest reads before it writes (unless the body
// ends first). Bytes reach the data file, where a mirror reads them, in
// pieces of at least this much rather than of a whole chunk: with whole
// chunks a mirror could not start before a 1 MiB upload had all arrived.
const minChunk = 256 << 10

// chunks is a pair of streaming buffers, recycled through Store.buffers.
type chunks [2][]byte

func newChunks() any { return &chunks{make([]byte, chunkSize), make([]byte, chunkSize)} }

// ingest copies r to f starting at offset off and feeds the same bytes to h
// (if h is not nil), until r reports EOF. Chunk k is hashed on another
// goroutine while it is written and chunk k+1 is read, so a push costs about
// the slower of hashing and I/O rather than their sum.
//
// Before each write, allow is asked whether the chunk may be written; its
// error stops the ingest with the bytes before the chunk written.
//
// It returns the number of bytes written. hashOK is false when a write failed
// part-way, in which case h has seen bytes that f may not hold.
func ingest(ctx context.Context, f *os.File, off int64, h hash.Hash, r io.Reader, buf *chunks, allow func(int64) error) (n int64, hashOK bool, err error) {
	hasher := newAsyncHash(h)
	defer hasher.wait()
	for i := 0; ; i ^= 1 {
		if err := ctx.Err(); err != nil {
			return n, true, err
		}
		// buf[i] is free: its last chunk was hashed before the previous
		// chunk's hashing started.
		m, rerr := io.ReadAtLeast(r, buf[i], minChunk)
		if m > 0 {
			if err := allow(int64(m)); err != nil {
				return n, true, err
			}
			hasher.wait()
			hasher.start(buf[i][:m])
			at := off + n
			wn, werr := f.WriteAt(buf[i][:m], at)
			n += int64(wn)
			if werr != nil {
				return n, false, fmt.Errorf("write upload data: %w", werr)
			}
			startWriteback(f, at, int64(wn))
			if old := at - cachedWindow; old >= 0 {
				dropWritten(f, old, int64(wn))
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, true, nil
		case rerr != nil:
			return n, true, fmt.Errorf("read upload body: %w", rerr)
		}
	}
}

// asyncHash hashes one chunk at a time on another goroutine.
type asyncHash struct {
	h    hash.Hash // nil hashes nothing
	done chan struct{}
	busy bool
}

func newAsyncHash(h hash.Hash) *asyncHash {
	return &asyncHash{h: h, done: make(chan struct{}, 1)}
}

// start hashes p in the background; p must not change until wait returns.
// The previous chunk must have been waited for.
func (a *asyncHash) start(p []byte) {
	if a.h == nil {
		return
	}
	a.busy = true
	go func() {
		a.h.Write(p)
		a.done <- struct{}{}
	}()
}

// wait returns once the chunk being hashed, if any, is done.
func (a *asyncHash) wait() {
	if a.busy {
		<-a.done
		a.busy = false
	}
}

// hashFile feeds the first size bytes of f to h.
func hashFile(ctx context.Context, f *os.File, size int64, h hash.Hash, buf []byte) error {
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := buf[:min(int64(len(buf)), size-off)]
		m, err := f.ReadAt(p, off)
		if m < len(p) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("re-hash %s: %w", f.Name(), err)
		}
		h.Write(p)
		off += int64(m)
	}
	return nil
}
