package remotesync

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// TestSyncTagErrorDoesNotStopOthers: a tag whose blob the upstream lost
// fails alone; the rerun after the upstream recovers fetches only it.
func TestSyncTagErrorDoesNotStopOthers(t *testing.T) {
	var lost atomic.Value
	lost.Store("")
	up := newUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := lost.Load().(string); d != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
				http.Error(w, "gone", http.StatusNotFound)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	good := up.pushImage(t, "app:good")
	bad := up.pushImage(t, "app:bad")
	m, err := bad.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	lost.Store(m.Layers[0].Digest.String())

	sink := newMemSink()
	s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
	job := Job{Repository: localRepo, Upstream: "app"}
	var reported []*fsmpb.SyncTagError
	p, errs, err := s.Sync(context.Background(), job, func(_ *fsmpb.SyncProgress, fresh []*fsmpb.SyncTagError) {
		reported = append(reported, fresh...)
	})
	if err != nil {
		t.Fatalf("job failed: %v", err)
	}
	if len(errs) != 1 || errs[0].GetTag() != "bad" || len(reported) != 1 {
		t.Fatalf("tag errors %v, reported %v: want one for bad", errs, reported)
	}
	if p.TagsFailed != 1 || p.TagsDone != 2 {
		t.Errorf("progress %v", p)
	}
	checkImage(t, sink, "good", good)
	if _, ok := sink.tag(localRepo, "bad"); ok {
		t.Fatal("bad is tagged though its content is missing")
	}

	lost.Store("")
	sink.resetCalls()
	p = runSync(t, s, job)
	checkImage(t, sink, "bad", bad)
	if p.TagsUnchanged != 1 || p.BlobsFetched != 1 {
		t.Errorf("rerun %v: want only the missing layer fetched", p)
	}
}
