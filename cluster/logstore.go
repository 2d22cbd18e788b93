package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// errKeyNotFound is what a StableStore returns for a missing key. Raft
// compares err.Error() with "not found" (see raft.HasExistingState), so the
// text is part of the contract.
var errKeyNotFound = errors.New("not found")

// Key prefixes of the log store: log entries by big-endian index, so they
// sort by index, and stable-store keys.
const (
	prefixLog    = 'l'
	prefixStable = 's'
)

// logStore is a raft.LogStore and raft.StableStore on one Pebble database.
// Every write is synced.
type logStore struct {
	db        *pebble.DB
	closeOnce sync.Once
	closeErr  error
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)
)

// openLogStore opens the log store in dir. onDiskFull, if not nil, is
// called when a write meets ENOSPC, before it is retried once (see
// DiskSpace.DiskFull).
func openLogStore(dir string, logger pebble.Logger, onDiskFull func()) (*logStore, error) {
	fs := vfs.Default
	if onDiskFull != nil {
		fs = vfs.OnDiskFull(fs, onDiskFull)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger, FS: fs})
	if err != nil {
		return nil, fmt.Errorf("open raft log store: %w", err)
	}
	return &logStore{db: db}, nil
}

// Close closes the database; it is idempotent.
func (s *logStore) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

func logKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLog}, index)
}

// FirstIndex returns the first index written, 0 for no entries.
func (s *logStore) FirstIndex() (uint64, error) {
	return s.boundIndex(func(it *pebble.Iterator) bool { return it.First() })
}

// LastIndex returns the last index written, 0 for no entries.
func (s *logStore) LastIndex() (uint64, error) {
	return s.boundIndex(func(it *pebble.Iterator) bool { return it.Last() })
}

func (s *logStore) boundIndex(position func(*pebble.Iterator) bool) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixLog},
		UpperBound: []byte{prefixLog + 1},
	})
	if err != nil {
		return 0, fmt.Errorf("iterate raft log: %w", err)
	}
	var index uint64
	if position(it) {
		index = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("iterate raft log: %w", err)
	}
	return index, nil
}

// GetLog reads the entry at index into l, or returns raft.ErrLogNotFound.
func (s *logStore) GetLog(index uint64, l *raft.Log) error {
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("read raft log entry %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(v, l); err != nil {
		return fmt.Errorf("decode raft log entry %d: %w", index, err)
	}
	return nil
}

// StoreLog stores one entry.
func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries in one synced batch.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, l := range logs {
		if err := b.Set(logKey(l.Index), encodeLog(l), nil); err != nil {
			return fmt.Errorf("store raft log entry %d: %w", l.Index, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store raft log entries: %w", err)
	}
	return nil
}

// DeleteRange deletes the entries from min to max, inclusive.
func (s *logStore) DeleteRange(min, max uint64) error {
	end := []byte{prefixLog + 1}
	if max < math.MaxUint64 {
		end = logKey(max + 1)
	}
	if err := s.db.DeleteRange(logKey(min), end, pebble.Sync); err != nil {
		return fmt.Errorf("delete raft log entries %d-%d: %w", min, max, err)
	}
	return nil
}

func stableKey(k []byte) []byte { return append([]byte{prefixStable}, k...) }

// Set stores a stable-store value.
func (s *logStore) Set(k, v []byte) error {
	if err := s.db.Set(stableKey(k), v, pebble.Sync); err != nil {
		return fmt.Errorf("store %q: %w", k, err)
	}
	return nil
}

// Get returns a stable-store value, or an error reading "not found".
func (s *logStore) Get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(stableKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", k, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// SetUint64 stores a stable-store integer.
func (s *logStore) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

// GetUint64 returns a stable-store integer, or an error reading "not found".
func (s *logStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read %q: value has %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// A log entry is encoded as
//
//	version byte (1), type byte, index, term (uvarint),
//	appended-at unix nanoseconds (varint, 0 for the zero time),
//	data and extensions (uvarint length, bytes).
const logEncodingVersion = 1

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 32+len(l.Data)+len(l.Extensions))
	b = append(b, logEncodingVersion, byte(l.Type))
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	var appended int64
	if !l.AppendedAt.IsZero() {
		appended = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, appended)
	b = appendBytes(b, l.Data)
	return appendBytes(b, l.Extensions)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func decodeLog(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if v := d.byte(); v != logEncodingVersion {
		return fmt.Errorf("unknown encoding version %d", v)
	}
	l.Type = raft.LogType(d.byte())
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.AppendedAt = time.Time{}
	if ns := d.varint(); ns != 0 {
		l.AppendedAt = time.Unix(0, ns)
	}
	l.Data = d.bytes()
	l.Extensions = d.bytes()
	return d.err
}

// decoder reads the log entry encoding; it records the first error.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated log entry")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if d.err != nil || n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if d.err != nil || n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a copy: the buffer belongs to Pebble.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	var p []byte
	if n > 0 {
		p = append([]byte(nil), d.b[:n]...)
	}
	d.b = d.b[n:]
	return p
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTruncated
	}
}
