package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// syncBuffer is a bytes.Buffer that several loggers write at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged so far that contain every one of want.
func (b *syncBuffer) lines(want ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		for _, w := range want {
			if !strings.Contains(sc.Text(), w) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// Every node of a cluster stopped at once (SIGTERM to all) shuts down
// promptly, saying so at info level, without waiting out its shutdown
// timeout for a removal no quorum can commit, and logs no error.
func TestAllNodesStopTogether(t *testing.T) {
	logs := &syncBuffer{}
	h := startHarness(t, harnessOpts{logs: logs})
	const timeout = 30 * time.Second
	took := make([]time.Duration, len(h.nodes))
	var wg sync.WaitGroup
	for i, n := range h.nodes {
		reg := n.registry()
		n.mu.Lock()
		n.live = false
		n.mu.Unlock()
		_ = n.srv.Close()
		wg.Go(func() {
			start := time.Now()
			reg.close(timeout)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, d := range took {
		if d > 10*time.Second {
			t.Errorf("node %d took %v to stop, want a few seconds", i, d)
		}
	}
	if errs := logs.lines("level=ERROR"); len(errs) > 0 {
		t.Errorf("stopping logged errors:\n%s", strings.Join(errs, "\n"))
	}
	if infos := logs.lines("level=INFO", "shutting down without waiting"); len(infos) == 0 {
		t.Errorf("no node said at info level that it shut down without waiting; log:\n%s", strings.Join(logs.lines("component=cluster"), "\n"))
	}
}

// A cluster whose nodes all stop at once starts again, as many times as
// it is stopped: no node may stop in a state that leaves the restarted
// voters unable to elect a leader (a leaving leader that removed itself
// could), and every image pushed before is still there.
func TestClusterStoppedTogetherStartsAgain(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2})
	var images []string
	for round := range 4 {
		tag := fmt.Sprintf("stop/app:v%d", round)
		img := randomImage(t, 16<<10, 1)
		if err := remote.Write(ref(t, h.lbHost(), tag), img, asAdmin()); err != nil {
			t.Fatalf("round %d: push: %v", round, err)
		}
		images = append(images, tag)
		var wg sync.WaitGroup
		for _, n := range h.nodes {
			wg.Go(func() { h.stopNode(n, true) })
		}
		wg.Wait()
		errs := make([]error, len(h.nodes))
		for i, n := range h.nodes {
			wg.Go(func() { errs[i] = h.startNode(n) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: restart: %v", round, err)
		}
		h.waitHealthy(30 * time.Second)
		for _, tag := range images {
			if _, err := remote.Get(ref(t, h.lbHost(), tag), asAdmin()); err != nil {
				t.Fatalf("round %d: %s after the restart: %v", round, tag, err)
			}
		}
	}
}
