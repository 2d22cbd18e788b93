package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

func TestCanRemoveVoter(t *testing.T) {
	tests := []struct {
		name   string
		voters []string
		alive  []string
		remove string
		want   bool
	}{
		{"3 voters, 2 alive, remove dead", []string{"a", "b", "c"}, []string{"a", "b"}, "c", true},
		{"3 voters, 1 alive, remove dead", []string{"a", "b", "c"}, []string{"a"}, "c", false},
		{"5 voters, 3 alive, remove dead", []string{"a", "b", "c", "d", "e"}, []string{"a", "b", "c"}, "e", true},
		{"5 voters, 2 alive, remove dead", []string{"a", "b", "c", "d", "e"}, []string{"a", "b"}, "e", false},
		{"4 voters, 2 alive, remove dead", []string{"a", "b", "c", "d"}, []string{"a", "b"}, "d", true},
		{"2 voters, 1 alive, remove dead", []string{"a", "b"}, []string{"a"}, "b", true},
		{"last voter", []string{"a"}, nil, "a", false},
		{"not a voter", []string{"a", "b", "c"}, nil, "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alive := map[string]bool{}
			for _, id := range tt.alive {
				alive[id] = true
			}
			if got := canRemoveVoter(tt.voters, alive, tt.remove); got != tt.want {
				t.Fatalf("canRemoveVoter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTargetVoters(t *testing.T) {
	tests := []struct{ alive, max, want int }{
		{1, 5, 3}, {3, 5, 3}, {4, 5, 3}, {5, 5, 5}, {9, 5, 5}, {9, 3, 3}, {2, 1, 1},
	}
	for _, tt := range tests {
		if got := targetVoters(tt.alive, tt.max); got != tt.want {
			t.Errorf("targetVoters(%d, %d) = %d, want %d", tt.alive, tt.max, got, tt.want)
		}
	}
}

func TestPlanBootstrap(t *testing.T) {
	m := func(id string, hasState bool, state memberlist.NodeStateType) Member {
		return Member{ID: id, ClusterAddr: id + ":1", HasRaftState: hasState, state: state}
	}
	alive := memberlist.StateAlive
	tests := []struct {
		name    string
		members []Member
		want    bootstrapDecision
		servers []raft.ServerID
	}{
		{"too few", []Member{m("a", false, alive), m("b", false, alive)}, bootstrapWait, nil},
		{"dead do not count", []Member{m("a", false, alive), m("b", false, alive), m("c", false, memberlist.StateDead)}, bootstrapWait, nil},
		{"expected, sorted", []Member{m("c", false, alive), m("a", false, alive), m("b", false, alive)}, bootstrapNow, []raft.ServerID{"a", "b", "c"}},
		{"one has state", []Member{m("a", false, alive), m("b", true, alive), m("c", false, alive)}, bootstrapJoin, nil},
		{"no address", []Member{m("a", false, alive), m("b", false, alive), {ID: "c", state: alive}}, bootstrapWait, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conf := planBootstrap(tt.members, 3)
			if got != tt.want {
				t.Fatalf("decision = %v, want %v", got, tt.want)
			}
			var ids []raft.ServerID
			for _, s := range conf.Servers {
				ids = append(ids, s.ID)
			}
			if len(ids) != len(tt.servers) {
				t.Fatalf("servers = %v, want %v", ids, tt.servers)
			}
			for i := range ids {
				if ids[i] != tt.servers[i] {
					t.Fatalf("servers = %v, want %v", ids, tt.servers)
				}
			}
		})
	}
}

// TestReadIndexerBatches: readers that arrive while a round trip is in
// flight share the next one.
func TestReadIndexerBatches(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	r := newReadIndexer(func() (uint64, error) {
		c := calls.Add(1)
		if c == 1 {
			<-release
		}
		return uint64(c * 10), nil
	})
	ctx := context.Background()
	first := make(chan uint64)
	go func() {
		idx, _ := r.index(ctx)
		first <- idx
	}()
	waitFor(t, 5*time.Second, func() error {
		if calls.Load() != 1 {
			return errors.New("first round not started")
		}
		return nil
	})
	const readers = 49
	var wg sync.WaitGroup
	results := make(chan uint64, readers)
	for range readers {
		wg.Go(func() {
			idx, err := r.index(ctx)
			if err != nil {
				t.Error(err)
			}
			results <- idx
		})
	}
	// Let every reader join the pending round before releasing the first.
	waitFor(t, 5*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.next == nil {
			return errors.New("no pending round")
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	close(release)
	if got := <-first; got != 10 {
		t.Fatalf("first reader got %d", got)
	}
	wg.Wait()
	close(results)
	for idx := range results {
		if idx != 20 {
			t.Fatalf("a later reader got index %d, want the second round's 20", idx)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d round trips for 50 readers, want 2", got)
	}
}
