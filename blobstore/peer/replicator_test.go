package peer

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/blobstore"
)

func TestReplicator(t *testing.T) {
	const content = "replicate me"
	src := newTestPeer(t)
	d := src.put(t, content)
	targets := []*testPeer{newTestPeer(t), newTestPeer(t), newTestPeer(t)}
	down := downURL(t)
	urls := []string{targets[0].url, targets[1].url, down, targets[2].url}

	r, err := NewReplicator(ReplicatorConfig{Store: src.store, Client: http.DefaultClient, MaxPushes: 2})
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]error{}
	r.Replicate(context.Background(), d, urls, func(target string, err error) {
		if _, dup := reports[target]; dup {
			t.Errorf("target %s reported twice", target)
		}
		reports[target] = err
	})

	if len(reports) != len(urls) {
		t.Fatalf("got %d reports, want %d", len(reports), len(urls))
	}
	if reports[down] == nil {
		t.Errorf("unreachable target reported success")
	}
	for _, p := range targets {
		if err := reports[p.url]; err != nil {
			t.Errorf("target %s: %v", p.url, err)
			continue
		}
		if got := p.content(t, d); got != content {
			t.Errorf("target %s stored %q", p.url, got)
		}
	}
}

func TestReplicatorMissingBlob(t *testing.T) {
	src, dst := newTestPeer(t), newTestPeer(t)
	r, err := NewReplicator(ReplicatorConfig{Store: src.store, Client: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	d := dst.put(t, "only on the target")
	var got error
	r.Replicate(context.Background(), d, []string{dst.url}, func(_ string, err error) { got = err })
	if got == nil || dst.inflight.Load() != 0 {
		t.Fatalf("report = %v, want an error without contacting the target", got)
	}
	if !errors.Is(got, blobstore.ErrBlobUnknown) {
		t.Fatalf("report = %v, want blob unknown", got)
	}
}

func TestReplicatorBoundsPushes(t *testing.T) {
	const maxPushes = 2
	src := newTestPeer(t)
	d := src.put(t, "fan out")
	gate := make(chan struct{})
	var targets []*testPeer
	var urls []string
	for range 5 {
		p := newGatedPeer(t, gate)
		targets = append(targets, p)
		urls = append(urls, p.url)
	}
	r, err := NewReplicator(ReplicatorConfig{Store: src.store, Client: http.DefaultClient, MaxPushes: maxPushes})
	if err != nil {
		t.Fatal(err)
	}
	inflight := func() (n int32) {
		for _, p := range targets {
			n += p.inflight.Load()
		}
		return n
	}
	done := make(chan struct{})
	ok := 0
	go func() {
		defer close(done)
		r.Replicate(context.Background(), d, urls, func(_ string, err error) {
			if err == nil {
				ok++
			}
		})
	}()
	waitFor(t, func() bool { return inflight() == maxPushes })
	time.Sleep(20 * time.Millisecond) // a push past the bound would show up now
	if n := inflight(); n != maxPushes {
		t.Fatalf("%d pushes in flight, want %d", n, maxPushes)
	}
	close(gate)
	<-done
	if ok != len(urls) {
		t.Fatalf("%d of %d pushes succeeded", ok, len(urls))
	}
}
