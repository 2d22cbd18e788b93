package cluster

import (
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/fsm"
)

// metrics are the node's Prometheus collectors. Gauges read Raft and the FSM
// when scraped.
type metrics struct {
	applySeconds prometheus.Histogram
	collectors   []prometheus.Collector
}

// newMetrics creates the collectors that do not read Raft.
func newMetrics() *metrics {
	m := &metrics{
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wharf_fsm_apply_seconds",
			Help:    "Time the FSM takes to apply one Raft log entry, including the synced commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.collectors = append(m.collectors, m.applySeconds)
	return m
}

// addNodeGauges adds the gauges that read n's Raft and FSM.
func (m *metrics) addNodeGauges(n *Node) {
	for _, state := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		m.collectors = append(m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "wharf_raft_state",
			Help:        "1 for the Raft state the node is in, 0 for the others.",
			ConstLabels: prometheus.Labels{"state": state.String()},
		}, func() float64 {
			if n.raft.State() == state {
				return 1
			}
			return 0
		}))
	}
	gauges := []struct {
		name, help string
		value      func() uint64
	}{
		{"wharf_raft_term", "Current Raft term.", n.raft.CurrentTerm},
		{"wharf_raft_last_index", "Index of the last entry in the Raft log.", n.raft.LastIndex},
		{"wharf_raft_commit_index", "Index of the last committed Raft entry.", n.raft.CommitIndex},
		{"wharf_raft_applied_index", "Index of the last Raft entry applied.", n.raft.AppliedIndex},
		{"wharf_fsm_applied_index", "Index of the last command entry applied to the FSM.", n.fsm.AppliedIndex},
	}
	for _, g := range gauges {
		m.collectors = append(m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(g.value()) }))
	}
	m.collectors = append(m.collectors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wharf_raft_commit_nudges_total",
			Help: "Barriers this node appended as leader so that followers learn a commit index a read waits for.",
		}, func() float64 { return float64(n.nudge.nudges.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wharf_read_index_rounds_total",
			Help: "Read index round trips this node made for linearizable reads (one serves every read waiting when it starts).",
		}, func() float64 { return float64(n.reads.rounds.Load()) }))
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if m == nil || reg == nil {
		return
	}
	for _, c := range m.collectors {
		reg.Unregister(c)
	}
}

// instrumentedFSM times FSM.Apply.
// It also wakes readers waiting for the FSM to reach an index.
type instrumentedFSM struct {
	*fsm.FSM
	applySeconds prometheus.Observer
	applied      *notifier
}

func (f instrumentedFSM) Apply(l *raft.Log) any {
	start := time.Now()
	defer func() {
		f.applySeconds.Observe(time.Since(start).Seconds())
		f.applied.broadcast()
	}()
	return f.FSM.Apply(l)
}

func (f instrumentedFSM) Restore(r io.ReadCloser) error {
	defer f.applied.broadcast()
	return f.FSM.Restore(r)
}
