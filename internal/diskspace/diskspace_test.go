package diskspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const mib = 1 << 20

// fakeDisk is a filesystem whose free space the test sets.
type fakeDisk struct {
	mu    sync.Mutex
	usage Usage
	err   error
	calls int
}

func (d *fakeDisk) set(free int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.usage.Free = free
}

func (d *fakeDisk) statfs(string) (Usage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.usage, d.err
}

func (d *fakeDisk) measured() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// logBuffer collects a Watcher's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestWatcher watches a fake 1000 MiB disk with free MiB free, a
// reserve of 100 MiB and a floor of 20 MiB, and no ballast unless adjust
// says, with its metrics in a registry of their own.
func newTestWatcher(t *testing.T, free int64, adjust ...func(*Config)) (*Watcher, *fakeDisk, *logBuffer) {
	t.Helper()
	disk := &fakeDisk{usage: Usage{Free: free * mib, Total: 1000 * mib}}
	logs := &logBuffer{}
	cfg := Config{
		Dir:        t.TempDir(),
		Reserve:    Bytes(100 * mib),
		Floor:      Bytes(20 * mib),
		Statfs:     disk.statfs,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Registerer: prometheus.NewRegistry(),
	}
	for _, a := range adjust {
		a(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w, disk, logs
}

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in      string
		want    Threshold
		str     string
		wantErr bool
	}{
		{in: "1GiB", want: Bytes(1 << 30), str: "1GiB"},
		{in: "1gib", want: Bytes(1 << 30), str: "1GiB"},
		{in: "512 MiB", want: Bytes(512 << 20), str: "512MiB"},
		{in: "1.5GiB", want: Bytes(3 << 29), str: "1536MiB"},
		{in: "500MB", want: Bytes(500_000_000), str: "500000000"},
		{in: "2TB", want: Bytes(2e12), str: "1953125000KiB"},
		{in: "4096", want: Bytes(4096), str: "4KiB"},
		{in: "0", want: Bytes(0), str: "0"},
		{in: "5%", want: Percent(5), str: "5%"},
		{in: "2.5 %", want: Percent(2.5), str: "2.5%"},
		{in: "100%", wantErr: true},
		{in: "-1%", wantErr: true},
		{in: "-5MiB", wantErr: true},
		{in: "1 GB extra", wantErr: true},
		{in: "1PiB", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseThreshold(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseThreshold(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseThreshold(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			if back, err := ParseThreshold(got.String()); err != nil || back != got {
				t.Errorf("String() %q does not parse back: %v, %v", got.String(), back, err)
			}
		})
	}
}

func TestThresholdOf(t *testing.T) {
	const total = 1000 * mib
	for _, tt := range []struct {
		t    Threshold
		want int64
	}{
		{Bytes(100 * mib), 100 * mib},
		{Percent(10), 100 * mib},
		{Percent(10).Scaled(0.25), 25 * mib},
		{Bytes(100 * mib).Scaled(0.25), 25 * mib},
		{Bytes(0), 0},
	} {
		if got := tt.t.Of(total); got != tt.want {
			t.Errorf("%v.Of(%d) = %d, want %d", tt.t, total, got, tt.want)
		}
	}
}

func TestIsFull(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ENOSPC", syscall.ENOSPC, true},
		{"ENOSPC from a write", fmt.Errorf("append: %w", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}), true},
		{"EDQUOT", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.EDQUOT}, true},
		{"refusal", fmt.Errorf("new upload: %w", &RefusedError{Write: writeUpload}), true},
		{"sentinel", fmt.Errorf("leader: %w", ErrInsufficientStorage), true},
		{"EIO", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.EIO}, false},
		{"other", errors.New("no space left on device"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsFull(tt.err); got != tt.want {
				t.Errorf("IsFull(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestLevels walks free space down through the reserve and the floor and
// back, checking what is accepted at each step and that each change is
// logged once, with a margin on the way back.
func TestLevels(t *testing.T) {
	w, disk, logs := newTestWatcher(t, 500)
	steps := []struct {
		free             int64 // MiB
		uploads, meta    bool  // accepted
		warnings, infos  int   // log lines so far
		wantStateSnippet string
	}{
		{free: 500, uploads: true, meta: true, wantStateSnippet: "accepting uploads"},
		{free: 101, uploads: true, meta: true},
		{free: 99, uploads: false, meta: true, warnings: 1, wantStateSnippet: "below the reserve: refusing uploads"},
		{free: 98, uploads: false, meta: true, warnings: 1},
		{free: 124, uploads: false, meta: true, warnings: 1}, // within the margin (25 MiB)
		{free: 19, uploads: false, meta: false, warnings: 2, wantStateSnippet: "below the floor: accepting only deletions"},
		{free: 24, uploads: false, meta: false, warnings: 2}, // within the floor's margin (5 MiB)
		{free: 25, uploads: false, meta: true, warnings: 2, infos: 1},
		{free: 120, uploads: false, meta: true, warnings: 2, infos: 1},
		{free: 125, uploads: true, meta: true, warnings: 2, infos: 2, wantStateSnippet: "accepting uploads"},
		{free: 10, uploads: false, meta: false, warnings: 3, infos: 2},
		{free: 900, uploads: true, meta: true, warnings: 3, infos: 3},
	}
	for i, s := range steps {
		disk.set(s.free * mib)
		if err := w.Refresh(); err != nil {
			t.Fatal(err)
		}
		if err := w.Allow(0); (err == nil) != s.uploads {
			t.Errorf("step %d (%d MiB free): Allow(0) = %v, want accepted=%v", i, s.free, err, s.uploads)
		}
		if err := w.AllowMetadata(); (err == nil) != s.meta {
			t.Errorf("step %d (%d MiB free): AllowMetadata() = %v, want accepted=%v", i, s.free, err, s.meta)
		}
		if got := logs.count("level=WARN"); got != s.warnings {
			t.Errorf("step %d (%d MiB free): %d warnings, want %d", i, s.free, got, s.warnings)
		}
		if got := logs.count("level=INFO"); got != s.infos {
			t.Errorf("step %d (%d MiB free): %d infos, want %d", i, s.free, got, s.infos)
		}
		if st := w.State().String(); !strings.Contains(st, s.wantStateSnippet) {
			t.Errorf("step %d: state %q, want it to contain %q", i, st, s.wantStateSnippet)
		}
	}
	if t.Failed() {
		t.Log(logs)
	}
}

// TestAllowCountsBytes checks that bytes allowed count against free space
// until the next measurement, so that uploads between two measurements
// stop at the reserve, and that a refusal says why.
func TestAllowCountsBytes(t *testing.T) {
	w, disk, logs := newTestWatcher(t, 150)
	for i := range 50 {
		if err := w.Allow(mib); err != nil {
			t.Fatalf("chunk %d refused with 100 MiB above the reserve: %v", i, err)
		}
	}
	err := w.Allow(mib)
	var refused *RefusedError
	if !errors.As(err, &refused) || !IsFull(err) {
		t.Fatalf("51st MiB: %v, want a RefusedError", err)
	}
	if refused.Free != 100*mib || refused.Threshold != 100*mib || refused.Write != writeUpload {
		t.Errorf("refusal %+v, want 100 MiB free against a 100 MiB reserve", refused)
	}
	if msg := err.Error(); !strings.Contains(msg, "upload refused with 100.0 MiB free") || !strings.Contains(msg, "reserve of 100.0 MiB") {
		t.Errorf("message %q does not give the numbers", msg)
	}
	for range 100 {
		_ = w.Allow(mib)
	}
	if got := logs.count("below the reserve"); got != 1 {
		t.Errorf("%d warnings for 101 refusals, want 1:\n%s", got, logs)
	}
	if got := metricValue(t, w, "wharf_disk_refused_writes_total", reasonReserve); got != 101 {
		t.Errorf("refused writes counted %v, want 101", got)
	}
	// The disk had room after all (another process freed some).
	disk.set(400 * mib)
	if err := w.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := w.Allow(mib); err != nil {
		t.Errorf("refused after the disk had room again: %v", err)
	}
}

func TestNoticeMeasuresAfterENOSPC(t *testing.T) {
	w, disk, _ := newTestWatcher(t, 500)
	before := disk.measured()
	w.Notice(errors.New("some other failure"))
	w.Notice(nil)
	if disk.measured() != before {
		t.Fatalf("measured again after an error that is not ENOSPC")
	}
	disk.set(0)
	w.Notice(fmt.Errorf("write: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}))
	if disk.measured() != before+1 {
		t.Fatalf("ENOSPC did not make the watcher measure again")
	}
	if err := w.Allow(0); err == nil {
		t.Errorf("uploads accepted after ENOSPC showed a full disk")
	}
	if got := metricValue(t, w, "wharf_disk_refused_writes_total", reasonNoSpace); got != 1 {
		t.Errorf("ENOSPC counted %v times, want 1", got)
	}
}

func TestRunMeasuresPeriodically(t *testing.T) {
	w, disk, _ := newTestWatcher(t, 500, func(c *Config) { c.Interval = 5 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	disk.set(50 * mib)
	deadline := time.Now().Add(5 * time.Second)
	for w.Allow(0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Run did not measure the disk that filled up")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestMeasurementFailureKeepsTheLastOne(t *testing.T) {
	w, disk, logs := newTestWatcher(t, 500)
	disk.mu.Lock()
	disk.err = errors.New("stale file handle")
	disk.mu.Unlock()
	for range 3 {
		if err := w.Refresh(); err == nil {
			t.Fatal("Refresh hid a failed measurement")
		}
	}
	if st := w.State(); st.Free != 500*mib {
		t.Errorf("free %d after failed measurements, want the last one (500 MiB)", st.Free)
	}
	disk.mu.Lock()
	disk.err = nil
	disk.mu.Unlock()
	if err := w.Refresh(); err != nil {
		t.Fatal(err)
	}
	if logs.count("cannot measure") != 1 || logs.count("works again") != 1 {
		t.Errorf("want one warning and one recovery line:\n%s", logs)
	}
}

func TestBallast(t *testing.T) {
	withBallast := func(c *Config) { c.Ballast = 4 * mib }
	w, disk, logs := newTestWatcher(t, 500, withBallast)
	path := filepath.Join(w.cfg.Dir, ballastName)
	if got := fileSize(t, path); got != 4*mib {
		t.Fatalf("ballast is %d bytes, want 4 MiB", got)
	}
	if st := w.State(); st.Ballast != 4*mib || st.Free != 496*mib {
		t.Errorf("state %+v: want the ballast counted as taken", st)
	}

	disk.set(0)
	w.DiskFull()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DiskFull left the ballast: %v", err)
	}
	if logs.count("deleted the ballast file") != 1 {
		t.Errorf("no warning about the deleted ballast:\n%s", logs)
	}
	w.DiskFull() // nothing left to delete
	if logs.count("ballast file is already gone") != 1 {
		t.Errorf("no error about the missing ballast:\n%s", logs)
	}

	// Not made again until there is room above the reserve and its margin.
	disk.set(127 * mib)
	_ = w.Refresh()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ballast made again with no room for it: %v", err)
	}
	disk.set(300 * mib)
	_ = w.Refresh()
	if got := fileSize(t, path); got != 4*mib {
		t.Errorf("ballast not made again after recovery: %d bytes", got)
	}

	// A later run without a ballast removes it.
	_, _, _ = newTestWatcher(t, 500, func(c *Config) { c.Dir = w.cfg.Dir })
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ballast kept with Ballast 0: %v", err)
	}
}

func TestBallastIsCappedAtTheFloor(t *testing.T) {
	w, _, _ := newTestWatcher(t, 500, func(c *Config) { c.Ballast = 64 * mib; c.Floor = Bytes(8 * mib) })
	if got := fileSize(t, filepath.Join(w.cfg.Dir, ballastName)); got != 8*mib {
		t.Errorf("ballast is %d bytes, want the 8 MiB floor", got)
	}
}

func TestBallastNotMadeOnALowDisk(t *testing.T) {
	w, _, _ := newTestWatcher(t, 90, func(c *Config) { c.Ballast = 4 * mib })
	if _, err := os.Stat(filepath.Join(w.cfg.Dir, ballastName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ballast made below the reserve: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	w, disk, _ := newTestWatcher(t, 500, func(c *Config) { c.Reserve = Percent(10); c.Floor = Percent(2.5) })
	disk.set(50 * mib)
	_ = w.Refresh()
	_ = w.Allow(0)
	for name, want := range map[string]float64{
		"wharf_disk_free_bytes":    50 * mib,
		"wharf_disk_total_bytes":   1000 * mib,
		"wharf_disk_reserve_bytes": 100 * mib,
		"wharf_disk_floor_bytes":   25 * mib,
		"wharf_disk_ballast_bytes": 0,
		"wharf_disk_full":          1,
	} {
		if got := metricValue(t, w, name, ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, w, "wharf_disk_refused_writes_total", reasonReserve); got != 1 {
		t.Errorf("refused writes %v, want 1", got)
	}
}

// metricValue returns the value of the watcher's metric name, with the
// reason label reason if it is not empty.
func metricValue(t *testing.T, w *Watcher, name, reason string) float64 {
	t.Helper()
	families, err := w.cfg.Registerer.(*prometheus.Registry).Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := m.GetLabel()
			if reason != "" && (len(labels) != 1 || labels[0].GetValue() != reason) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return info.Size()
}
