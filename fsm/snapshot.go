package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
)

// A snapshot stream is zstd-compressed:
//
//	header:  magic "wharfsnp", format version (uint32 BE), applied index (uint64 BE)
//	records: uvarint key length, key, uvarint value length, value; repeated
//	trailer: uvarint 0 (keys are never empty)
//
// The trailer tells a complete stream from a truncated one.
const (
	snapshotMagic   = "wharfsnp"
	snapshotVersion = 1
	headerSize      = len(snapshotMagic) + 4 + 8

	// restoreBatchSize is how many bytes Restore buffers per batch.
	restoreBatchSize = 4 << 20
)

// Snapshot captures the current state. It is cheap: a Pebble snapshot, read
// later by Persist while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	snap := h.db.NewSnapshot()
	applied, err := getUint64(snap, keyApplied)
	if err != nil {
		snap.Close()
		h.release()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshot{h: h, snap: snap, applied: applied}, nil
}

type snapshot struct {
	h       *handle
	snap    *pebble.Snapshot
	applied uint64
}

// Persist streams the snapshot into sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot at index %d: %w", s.applied, err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if err := s.writeRecords(enc); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

func (s *snapshot) writeRecords(w io.Writer) error {
	hdr := append([]byte(snapshotMagic), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(hdr[len(snapshotMagic):], snapshotVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, s.applied)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	var buf []byte
	err := scan(s.snap, nil, nil, func(k, v []byte) (bool, error) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
		_, err := w.Write(buf)
		return err == nil, err
	})
	if err != nil {
		return err
	}
	_, err = w.Write(binary.AppendUvarint(nil, 0))
	return err
}

// Release frees the Pebble snapshot.
func (s *snapshot) Release() {
	s.snap.Close()
	s.h.release()
}

// Restore replaces the state with a snapshot stream, unless the stream's
// applied index is not above the FSM's: then the FSM already holds everything
// the snapshot does (they share one log), and Restore returns after reading
// the header. Otherwise it loads the stream into a new database generation
// and switches to it atomically; reads see the old state until the switch.
func (f *FSM) Restore(rc io.ReadCloser) error {
	dec, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer dec.Close()
	r := bufio.NewReader(dec)
	applied, err := readHeader(r)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if current := f.AppliedIndex(); applied <= current {
		f.logger.Info("skipping snapshot restore: state is newer", "snapshot_index", applied, "applied_index", current)
		return nil
	}
	if err := f.restore(r, applied); err != nil {
		return fmt.Errorf("restore snapshot at index %d: %w", applied, err)
	}
	f.logger.Info("restored snapshot", "applied_index", applied)
	return nil
}

func (f *FSM) restore(r *bufio.Reader, applied uint64) error {
	name, err := nextGeneration(f.dir)
	if err != nil {
		return err
	}
	h, err := f.openGeneration(name, false)
	if err != nil {
		return err
	}
	err = load(h.db, r, applied)
	if err == nil {
		err = prepareState(h.db, applied)
	}
	if err != nil {
		h.db.Close()
		os.RemoveAll(filepath.Join(f.dir, name))
		return err
	}
	if err := writeCurrent(f.dir, name); err != nil {
		// CURRENT may or may not name the new generation now; both are
		// complete databases, and Open removes the other one.
		h.db.Close()
		return err
	}
	return f.swap(h, applied)
}

func readHeader(r io.Reader) (applied uint64, err error) {
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return 0, errors.New("not a wharf fsm snapshot")
	}
	if v := binary.BigEndian.Uint32(hdr[len(snapshotMagic):]); v != snapshotVersion {
		return 0, fmt.Errorf("unsupported snapshot format version %d", v)
	}
	return binary.BigEndian.Uint64(hdr[len(snapshotMagic)+4:]), nil
}

// load writes the records of a snapshot stream into db, then the applied
// index with a synced commit.
func load(db *pebble.DB, r *bufio.Reader, applied uint64) error {
	b := db.NewBatch()
	defer func() { b.Close() }()
	for {
		k, v, err := readRecord(r)
		if err != nil {
			return err
		}
		if k == nil {
			break
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= restoreBatchSize {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := b.Set(keyApplied, encodeUint64(applied), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readRecord reads one key/value pair; k is nil at the trailer.
func readRecord(r *bufio.Reader) (k, v []byte, err error) {
	k, err = readChunk(r)
	if err != nil || len(k) == 0 {
		return nil, nil, err
	}
	v, err = readChunk(r)
	if err != nil {
		return nil, nil, err
	}
	return k, v, nil
}

// maxChunk bounds a key or value, so a corrupt length cannot exhaust memory.
const maxChunk = 64 << 20

func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("read snapshot record: %w", noEOF(err))
	}
	if n > maxChunk {
		return nil, fmt.Errorf("read snapshot record: length %d exceeds %d", n, maxChunk)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read snapshot record: %w", noEOF(err))
	}
	return buf, nil
}

// noEOF turns a clean EOF into ErrUnexpectedEOF: a stream ends at its trailer.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
