package remotesync

import "github.com/prometheus/client_golang/prometheus"

// workerMetrics are the worker's counters, per node.
type workerMetrics struct {
	finished *prometheus.CounterVec
	bytes    prometheus.Counter
	requests prometheus.Counter
	blobs    prometheus.Counter
}

func newWorkerMetrics(reg prometheus.Registerer, running func() float64) *workerMetrics {
	m := &workerMetrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_sync_jobs_finished_total",
			Help: "Sync jobs this node finished, by final state.",
		}, []string{"state"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_sync_bytes_fetched_total",
			Help: "Bytes of blobs this node's sync jobs fetched from upstream registries.",
		}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_sync_upstream_requests_total",
			Help: "HTTP requests this node's sync jobs sent to upstream registries.",
		}),
		blobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_sync_blobs_fetched_total",
			Help: "Blobs this node's sync jobs fetched from upstream registries.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.finished, m.bytes, m.requests, m.blobs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wharf_sync_jobs_running",
			Help: "Sync jobs running on this node.",
		}, running))
	}
	return m
}
