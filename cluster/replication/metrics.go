package replication

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	copies          *prometheus.CounterVec
	repairs         prometheus.Counter
	trims           prometheus.Counter
	peerFetches     prometheus.Counter
	underReplicated prometheus.GaugeFunc
	durableWait     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, underReplicated func() float64) *metrics {
	m := &metrics{
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_blob_copies_total",
			Help: "Copies of newly stored blobs pushed to their owners, by result (mirrored: stored by a mirror of the upload while it arrived; relayed: passed on by this node down a mirror chain; ok, failed: copies after the commit).",
		}, []string{"result"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_blob_repairs_total",
			Help: "Copies the leader made to bring under-replicated blobs back to R.",
		}),
		trims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_blob_trims_total",
			Help: "Extra holders (not owners) the leader took off blobs' holder records once every owner held the blob.",
		}),
		peerFetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_blob_peer_fetches_total",
			Help: "Blob reads served by fetching the blob from a peer.",
		}),
		underReplicated: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wharf_blobs_under_replicated",
			Help: "Blobs with fewer live holders than the replication factor, as of this node's last repair scan as leader.",
		}, underReplicated),
		durableWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wharf_manifest_durable_wait_seconds",
			Help:    "Time manifest pushes waited for their blobs to reach the write quorum.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.copies, m.repairs, m.trims, m.peerFetches, m.underReplicated, m.durableWait)
	}
	return m
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.Unregister(m.copies)
	reg.Unregister(m.repairs)
	reg.Unregister(m.trims)
	reg.Unregister(m.peerFetches)
	reg.Unregister(m.underReplicated)
	reg.Unregister(m.durableWait)
}

// UnderReplicated returns the count of under-replicated blobs found by the
// last repair scan this node ran as leader (0 if it never ran one).
func (s *Store) UnderReplicated() int64 { return s.underReplicated.Load() }
