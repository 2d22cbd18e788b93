package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The crash test runs a writer in a child process (this test binary, in
// TestCrashChild), kills it with SIGKILL at random moments, and checks that
// the node reopens with every acknowledged write and a consistent state.
const (
	crashDirEnv   = "WHARF_CRASH_DIR"
	crashRoundEnv = "WHARF_CRASH_ROUND"
	crashRounds   = 5
)

func crashConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.SnapshotThreshold = 16
	cfg.TrailingLogs = 8
	cfg.SnapshotInterval = 50 * time.Millisecond
	return cfg
}

// TestCrashChild is the writer; it runs only when started by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs as the child of TestCrashRecovery")
	}
	round := os.Getenv(crashRoundEnv)
	n := openNode(t, crashConfig(dir))
	fmt.Println("ready")
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second) // never outlive a failed parent for long
	for i := 0; time.Now().Before(deadline); i++ {
		repo := fmt.Sprintf("ns%d/app%d", i%3, i%5)
		tag := fmt.Sprintf("r%s-%d", round, i)
		content := "manifest " + tag
		switch i % 4 {
		case 0, 1:
			if err := n.PutManifest(ctx, manifestOp(repo, content, tag, "latest")); err != nil {
				t.Fatal(err)
			}
			// The parent checks every acknowledged tag after the crash.
			fmt.Printf("ack %s %s %s\n", repo, tag, digest.FromString(content))
		case 2:
			if err := n.LinkBlob(ctx, "solo", digest.FromString(tag), int64(i), ""); err != nil {
				t.Fatal(err)
			}
		case 3:
			if i%20 == 3 {
				err := n.raft.Snapshot().Error()
				if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
					t.Fatal(err)
				}
			}
		}
	}
}

type ack struct{ repo, tag, digest string }

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	var acked []ack
	for round := range crashRounds {
		acks, err := runAndKill(dir, round, time.Duration(50+rand.IntN(350))*time.Millisecond)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		acked = append(acked, acks...)
		t.Logf("round %d: %d acknowledged writes", round, len(acks))
		checkRecovered(t, dir, acked)
	}
}

// runAndKill runs the child writer on dir and kills it after it has been
// writing for d. It returns the writes the child acknowledged.
func runAndKill(dir string, round int, d time.Duration) ([]ack, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashRoundEnv, round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout) // a line cut by the kill has no newline and is dropped
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case line := <-lines:
		if line != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("child said %q, want ready; stderr:\n%s", line, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("child not ready; stderr:\n%s", stderr.String())
	}
	time.Sleep(d)
	if err := cmd.Process.Kill(); err != nil {
		return nil, err
	}
	var acks []ack
	for line := range lines {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "ack" {
			acks = append(acks, ack{f[1], f[2], f[3]})
		}
	}
	cmd.Wait() // killed: the error is expected
	return acks, nil
}

// checkRecovered reopens the node in-process and checks it.
func checkRecovered(t *testing.T, dir string, acked []ack) {
	t.Helper()
	n := openNode(t, crashConfig(dir)) // opens, leads, and passes a barrier
	defer shutdown(t, n)
	if s := n.raft.State(); s != raft.Leader {
		t.Fatalf("state after restart = %v, want leader", s)
	}
	if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	checkAppliedIndex(t, n)
	checkTagsResolve(t, n)
	for _, a := range acked {
		d, err := n.ResolveTag(context.Background(), a.repo, a.tag)
		if err != nil || d.String() != a.digest {
			t.Fatalf("acknowledged tag %s:%s = %s, %v; want %s", a.repo, a.tag, d, err, a.digest)
		}
	}
}

// checkAppliedIndex compares the FSM's applied index with the Raft log. Only
// command entries reach the FSM, so after the barrier the FSM must stand at
// the last command in the log, and after a new command, at that command.
func checkAppliedIndex(t *testing.T, n *Node) {
	t.Helper()
	if last, ok := lastCommandIndex(t, n); ok && n.fsm.AppliedIndex() != last {
		t.Fatalf("fsm applied index = %d, last command in the log = %d", n.fsm.AppliedIndex(), last)
	}
	data, err := proto.Marshal(fsm.NewCommand(&fsmpb.LinkBlob{
		Repository: "probe/probe", Digest: digest.FromString("probe").String(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	f := n.raft.Apply(data, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	// The leader's own reconciliation may append configuration entries
	// (say, this node's new address) after the probe; they never reach the
	// FSM, so the probe must be the last command and the FSM must be there.
	last, _ := lastCommandIndex(t, n)
	if applied := n.fsm.AppliedIndex(); applied != f.Index() || last != f.Index() {
		t.Fatalf("after a probe at %d: fsm applied index %d, last command in the log %d", f.Index(), applied, last)
	}
}

// lastCommandIndex returns the index of the last command entry in the log.
func lastCommandIndex(t *testing.T, n *Node) (uint64, bool) {
	t.Helper()
	first, err := n.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	for i := n.raft.LastIndex(); i >= first && i > 0; i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, true
		}
	}
	return 0, false
}

// checkTagsResolve checks that every tag points at a stored manifest.
func checkTagsResolve(t *testing.T, n *Node) {
	t.Helper()
	ctx := context.Background()
	repos, err := n.ListRepositories(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range repos {
		tags, err := n.ListTags(ctx, repo, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			d, err := n.ResolveTag(ctx, repo, tag)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Manifest(ctx, repo, d); err != nil {
				t.Fatalf("tag %s:%s points at %s: %v", repo, tag, d, err)
			}
		}
	}
}
