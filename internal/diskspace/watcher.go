package diskspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Usage is one measurement of a filesystem.
type Usage struct {
	// Free is the bytes an unprivileged process may still write (statfs
	// f_bavail): space kept for root does not count.
	Free int64
	// Total is the filesystem's size in bytes.
	Total int64
}

// Config configures a Watcher.
type Config struct {
	// Dir is a directory on the filesystem to watch (the data directory);
	// the ballast file lives in it.
	Dir string
	// Reserve is the free space below which new blob bytes are refused.
	// Zero refuses only what the last measurement shows cannot fit.
	Reserve Threshold
	// Floor is the free space below which metadata writes are refused
	// too, except those that free space; it is capped at Reserve.
	Floor Threshold
	// Ballast is the size of the ballast file, capped at the floor; zero
	// keeps none (and removes one left by an earlier run).
	Ballast int64
	// Interval is how often the filesystem is measured. Default 1s.
	Interval time.Duration
	// Statfs measures the filesystem holding a path. Default: statfs(2).
	Statfs func(path string) (Usage, error)
	// Logger receives the changes of level. Nil discards them.
	Logger *slog.Logger
	// Registerer, if set, receives the wharf_disk_* metrics.
	Registerer prometheus.Registerer
}

// defaultInterval: see Config.Interval.
const defaultInterval = time.Second

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = defaultInterval
	}
	if c.Statfs == nil {
		c.Statfs = statfs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// statfs measures the filesystem holding path with statfs(2).
func statfs(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := int64(st.Bsize)
	return Usage{Free: int64(st.Bavail) * bsize, Total: int64(st.Blocks) * bsize}, nil
}

// level is what a Watcher accepts.
type level int

const (
	levelOK       level = iota // everything
	levelLow                   // below the reserve: no new blob bytes
	levelCritical              // below the floor: only writes that free space
)

// Watcher watches the free space of one filesystem. Its methods are safe
// for concurrent use.
type Watcher struct {
	cfg         Config
	ballastPath string
	metrics     *metrics

	// refreshMu serializes measurements and the ballast file's changes.
	refreshMu sync.Mutex

	mu             sync.Mutex // guards the fields below
	usage          Usage      // the last measurement
	written        int64      // bytes allowed (or taken by the ballast) since
	level          level
	ballastSize    int64 // bytes of the ballast file on disk
	ballastFailing bool  // the last change to the ballast failed (and was logged)
	statFailing    bool  // the last measurement failed (and was logged)
}

// New measures the filesystem of cfg.Dir once, keeps the ballast file as
// configured, and returns a Watcher. Run keeps measuring.
func New(cfg Config) (*Watcher, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("diskspace: no directory to watch")
	}
	w := &Watcher{cfg: cfg, ballastPath: filepath.Join(cfg.Dir, ballastName)}
	w.ballastSize = ballastOnDisk(w.ballastPath)
	if err := w.Refresh(); err != nil {
		return nil, fmt.Errorf("diskspace: %w", err)
	}
	w.metrics = newMetrics(w)
	if cfg.Registerer != nil {
		if err := w.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("diskspace: register metrics: %w", err)
		}
	}
	return w, nil
}

// Run measures the filesystem every Config.Interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = w.Refresh() // logged by Refresh
		}
	}
}

// Refresh measures the filesystem now, and creates, resizes or removes the
// ballast file as the new measurement allows. A failure is logged once
// until a measurement succeeds again; the previous one stays in use.
func (w *Watcher) Refresh() error {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	u, err := w.cfg.Statfs(w.cfg.Dir)
	w.mu.Lock()
	if err != nil {
		if !w.statFailing {
			w.cfg.Logger.Warn("cannot measure the free space of the data directory; keeping the last measurement", "dir", w.cfg.Dir, "err", err)
		}
		w.statFailing = true
		w.mu.Unlock()
		return fmt.Errorf("measure %s: %w", w.cfg.Dir, err)
	}
	if w.statFailing {
		w.cfg.Logger.Info("measuring the free space of the data directory works again", "dir", w.cfg.Dir)
	}
	w.statFailing = false
	w.usage, w.written = u, 0
	w.setLevelLocked(w.levelFor(u.Free))
	want := w.ballastWantLocked()
	w.mu.Unlock()
	w.adjustBallast(want)
	return nil
}

// Allow is asked before n more bytes of blob data are written (n = 0
// before an upload starts). It refuses them, with a RefusedError, when
// free space is or would then be below the reserve; else it counts them
// as written until the next measurement.
func (w *Watcher) Allow(n int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	free := w.freeLocked()
	next := w.levelFor(free)
	if next == levelOK && free-n < w.reserveLocked() {
		next = levelLow // refused, so the bytes do not count
	}
	w.setLevelLocked(next)
	if w.level != levelOK {
		w.metrics.refused(reasonReserve)
		return &RefusedError{Write: writeUpload, Free: free, Threshold: w.reserveLocked()}
	}
	w.written += n
	return nil
}

// AllowMetadata is asked before a metadata write that does not free space.
// It refuses it, with a RefusedError, below the floor.
func (w *Watcher) AllowMetadata() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.level != levelCritical {
		return nil
	}
	w.metrics.refused(reasonFloor)
	return &RefusedError{Write: writeMetadata, Free: w.freeLocked(), Threshold: w.floorLocked()}
}

// Notice is told of errors from writes to the filesystem: after ENOSPC
// or EDQUOT it measures again at once, so that the next requests are
// refused before they write. Other errors are ignored.
func (w *Watcher) Notice(err error) {
	if err == nil || !isNoSpace(err) {
		return
	}
	w.metrics.refused(reasonNoSpace)
	_ = w.Refresh()
}

// DiskFull is called when a Pebble database meets ENOSPC, before it
// retries the write once: it deletes the ballast file so that the retry
// finds room, and measures again. Pebble blocks its writes meanwhile.
func (w *Watcher) DiskFull() {
	w.metrics.refused(reasonNoSpace)
	freed, err := w.releaseBallast()
	switch {
	case err != nil:
		w.cfg.Logger.Error("the disk is full, and deleting the ballast file failed: the metadata stores may stop the node",
			"path", w.ballastPath, "err", err)
	case freed == 0:
		w.cfg.Logger.Error("the disk is full and the ballast file is already gone: the metadata stores may stop the node; free space now",
			"dir", w.cfg.Dir)
	default:
		w.cfg.Logger.Warn("the disk is full: deleted the ballast file so that metadata writes can go on; free space now",
			"freed", FormatBytes(freed), "path", w.ballastPath)
	}
	_ = w.Refresh()
}

// State is a snapshot of a Watcher's view, for /readyz and metrics.
type State struct {
	Free, Total, Reserve, Floor, Ballast int64
	// UploadsRefused is set below the reserve, MetadataRefused below the
	// floor.
	UploadsRefused, MetadataRefused bool
}

// State returns the Watcher's current view.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return State{
		Free: w.freeLocked(), Total: w.usage.Total, Reserve: w.reserveLocked(), Floor: w.floorLocked(),
		Ballast: w.ballastSize, UploadsRefused: w.level >= levelLow, MetadataRefused: w.level == levelCritical,
	}
}

// String describes the state in one line, e.g. "12.3 GiB free of 50.0 GiB
// (reserve 1.0 GiB, floor 256.0 MiB): accepting uploads".
func (s State) String() string {
	what := "accepting uploads"
	switch {
	case s.MetadataRefused:
		what = "below the floor: accepting only deletions"
	case s.UploadsRefused:
		what = "below the reserve: refusing uploads"
	}
	return fmt.Sprintf("%s free of %s (reserve %s, floor %s): %s",
		FormatBytes(max(s.Free, 0)), FormatBytes(s.Total), FormatBytes(s.Reserve), FormatBytes(s.Floor), what)
}

func (w *Watcher) freeLocked() int64 { return w.usage.Free - w.written }

func (w *Watcher) reserveLocked() int64 { return w.cfg.Reserve.Of(w.usage.Total) }

// floorLocked is the floor in bytes, at most the reserve.
func (w *Watcher) floorLocked() int64 {
	return min(w.cfg.Floor.Of(w.usage.Total), w.reserveLocked())
}

// levelFor returns the level for free bytes, given the current level:
// leaving a level takes a margin more than entering it.
func (w *Watcher) levelFor(free int64) level {
	reserve, floor := w.reserveLocked(), w.floorLocked()
	next := levelOK
	switch {
	case free < floor:
		next = levelCritical
	case free < reserve:
		next = levelLow
	}
	if next < w.level {
		switch {
		case w.level == levelCritical && free < floor+margin(floor):
			next = levelCritical
		case free < reserve+margin(reserve):
			next = levelLow
		}
	}
	return next
}

// margin is how far above a threshold free space must be to leave it: a
// quarter of it. An upload refused at the reserve has its session dropped
// (its bytes are the space the node lacks), which gives those bytes back;
// with a small margin, a refused layer larger than the margin would bring
// the node back above it at once, and the next try would be refused again,
// each logging the change of level.
func margin(threshold int64) int64 { return threshold / 4 }

// setLevelLocked moves to level next, logging the change.
func (w *Watcher) setLevelLocked(next level) {
	if next == w.level {
		return
	}
	prev := w.level
	w.level = next
	attrs := []any{
		"free", FormatBytes(max(w.freeLocked(), 0)), "total", FormatBytes(w.usage.Total),
		"reserve", FormatBytes(w.reserveLocked()), "floor", FormatBytes(w.floorLocked()), "dir", w.cfg.Dir,
	}
	log := w.cfg.Logger
	switch {
	case next == levelCritical:
		log.Warn("disk space is below the floor: only deletions are accepted until space is freed", attrs...)
	case next == levelLow && prev == levelOK:
		log.Warn("disk space is below the reserve: new uploads are refused until space is freed", attrs...)
	case next == levelLow:
		log.Info("disk space is back above the floor: metadata writes are accepted again, uploads still refused", attrs...)
	default:
		log.Info("disk space is back above the reserve: uploads are accepted again", attrs...)
	}
}
