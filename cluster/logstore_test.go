package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openTestLogStore(t *testing.T, dir string) *logStore {
	t.Helper()
	s, err := openLogStore(dir, pebbleLogger{slog.New(slog.DiscardHandler)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entries(first, last uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return logs
}

func wantBounds(t *testing.T, s *logStore, first, last uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if gotFirst != first || gotLast != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", gotFirst, gotLast, first, last)
	}
}

func TestLogStoreEmpty(t *testing.T) {
	s := openTestLogStore(t, t.TempDir())
	wantBounds(t, s, 0, 0)
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty store = %v, want raft.ErrLogNotFound", err)
	}
}

func TestLogStoreRoundTrip(t *testing.T) {
	s := openTestLogStore(t, t.TempDir())
	want := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("conf")},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte("cmd"), Extensions: []byte("ext"),
			AppendedAt: time.Unix(1700000000, 123456789)},
	}
	if err := s.StoreLog(want[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(want[1:]); err != nil {
		t.Fatal(err)
	}
	wantBounds(t, s, 1, 3)
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type ||
			!bytes.Equal(got.Data, w.Data) || !bytes.Equal(got.Extensions, w.Extensions) ||
			!got.AppendedAt.Equal(w.AppendedAt) {
			t.Errorf("GetLog(%d) = %+v, want %+v", w.Index, got, *w)
		}
	}
}

func TestLogStoreDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64
		gone        []uint64
	}{
		{"prefix, as after a snapshot", 1, 4, 5, 10, []uint64{1, 4}},
		{"suffix, as after a conflict", 7, 10, 1, 6, []uint64{7, 10}},
		{"everything", 1, 10, 0, 0, []uint64{1, 10}},
		{"open-ended", 8, math.MaxUint64, 1, 7, []uint64{8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestLogStore(t, t.TempDir())
			if err := s.StoreLogs(entries(1, 10)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatal(err)
			}
			wantBounds(t, s, tt.first, tt.last)
			for _, i := range tt.gone {
				var l raft.Log
				if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
					t.Errorf("GetLog(%d) after delete = %v, want raft.ErrLogNotFound", i, err)
				}
			}
		})
	}
}

func TestStableStore(t *testing.T) {
	dir := t.TempDir()
	s := openTestLogStore(t, dir)

	// Raft tells a fresh store from a broken one by this exact text.
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get of missing key = %v, want an error reading \"not found\"", err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64 of missing key = %v, want an error reading \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-a")); err != nil {
		t.Fatal(err)
	}
	// Stable keys must not show up as log entries.
	wantBounds(t, s, 0, 0)

	s.Close()
	s = openTestLogStore(t, dir)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64 after reopen = %d, %v; want 7", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-a" {
		t.Fatalf("Get after reopen = %q, %v; want node-a", v, err)
	}
}

// TestHasExistingState runs Raft's own check of a store's emptiness.
func TestHasExistingState(t *testing.T) {
	s := openTestLogStore(t, t.TempDir())
	snaps := raft.NewInmemSnapshotStore()
	if has, err := raft.HasExistingState(s, s, snaps); err != nil || has {
		t.Fatalf("HasExistingState on empty store = %v, %v; want false, nil", has, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if has, err := raft.HasExistingState(s, s, snaps); err != nil || !has {
		t.Fatalf("HasExistingState after a term = %v, %v; want true, nil", has, err)
	}
}

func TestDecodeLogRejectsCorruption(t *testing.T) {
	enc := encodeLog(&raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("payload")})
	for _, b := range [][]byte{nil, enc[:1], enc[:len(enc)-3], append([]byte{9}, enc[1:]...)} {
		var l raft.Log
		if err := decodeLog(b, &l); err == nil {
			t.Errorf("decodeLog(%x) succeeded", b)
		}
	}
}
