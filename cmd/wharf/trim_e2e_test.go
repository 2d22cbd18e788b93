package main

import (
	"context"
	"time"

	"github.com/wharf-registry/wharf/cluster/blobstate"
	"github.com/wharf-registry/wharf/cluster/gc"
)

// sweepNow runs on every live node the local sweep that deletes copies it
// no longer holds, without the Settle wait that spares recent copies (the
// nodes' own sweeps run every minute and spare copies younger than 5m).
func (h *harness) sweepNow() {
	h.t.Helper()
	for _, n := range h.live() {
		reg := n.registry()
		c, err := gc.New(gc.Config{
			Local: reg.blobs, Cluster: blobstate.Of(reg.node),
			Settle: time.Nanosecond, Replicas: h.opts.replicas,
		})
		if err != nil {
			h.t.Fatal(err)
		}
		rep, err := c.Sweep(context.Background())
		c.Close()
		if err != nil {
			h.t.Fatalf("node %d: sweep: %v", n.idx, err)
		}
		h.t.Logf("node %d: sweep %+v", n.idx, rep)
	}
}
