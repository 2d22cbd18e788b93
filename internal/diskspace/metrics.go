package diskspace

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a write was refused, the label of wharf_disk_refused_writes_total.
const (
	reasonReserve = "reserve" // blob bytes below the reserve
	reasonFloor   = "floor"   // a metadata write below the floor
	reasonNoSpace = "enospc"  // the filesystem itself said there was no room
)

// metrics are a Watcher's Prometheus metrics.
type metrics struct {
	collectors []prometheus.Collector
	refusedVec *prometheus.CounterVec
	refusedBy  map[string]prometheus.Counter
}

func newMetrics(w *Watcher) *metrics {
	gauge := func(name, help string, value func(State) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return value(w.State()) })
	}
	m := &metrics{
		refusedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_disk_refused_writes_total",
			Help: "Writes refused for lack of disk space, by reason: reserve (blob bytes below the reserve), " +
				"floor (metadata writes below the floor), enospc (the filesystem was full).",
		}, []string{"reason"}),
	}
	m.refusedBy = map[string]prometheus.Counter{}
	for _, r := range []string{reasonReserve, reasonFloor, reasonNoSpace} {
		m.refusedBy[r] = m.refusedVec.WithLabelValues(r)
	}
	m.collectors = []prometheus.Collector{
		m.refusedVec,
		gauge("wharf_disk_free_bytes", "Free bytes on the data directory's filesystem (as of the last measurement, less what was written since).",
			func(s State) float64 { return float64(max(s.Free, 0)) }),
		gauge("wharf_disk_total_bytes", "Size of the data directory's filesystem in bytes.",
			func(s State) float64 { return float64(s.Total) }),
		gauge("wharf_disk_reserve_bytes", "Free space below which new uploads are refused (--min-free-space).",
			func(s State) float64 { return float64(s.Reserve) }),
		gauge("wharf_disk_floor_bytes", "Free space below which metadata writes other than deletions are refused.",
			func(s State) float64 { return float64(s.Floor) }),
		gauge("wharf_disk_ballast_bytes", "Size of the ballast file; 0 after a full disk made the node delete it.",
			func(s State) float64 { return float64(s.Ballast) }),
		gauge("wharf_disk_full", "0: everything is accepted; 1: below the reserve, uploads are refused; 2: below the floor, only deletions are accepted.",
			func(s State) float64 {
				switch {
				case s.MetadataRefused:
					return 2
				case s.UploadsRefused:
					return 1
				}
				return 0
			}),
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// refused counts a refused write. A nil m (before New registers it)
// counts nothing.
func (m *metrics) refused(reason string) {
	if m != nil {
		m.refusedBy[reason].Inc()
	}
}
