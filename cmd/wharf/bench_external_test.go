package main

// Push throughput of a real 3-node cluster against a lone node, each node a
// `wharf serve` process of its own, started by scripts/bench-cluster.sh
// (make bench-cluster), which gives every node the same CPU budget with a
// cgroup, as if each had a machine of its own, and runs
//
//	go test -run='^$' -bench=ExternalPush -benchtime=3x ./cmd/wharf/
//
// with these settings in the environment (without the first two the
// benchmark skips):
//
//	WHARF_BENCH_CLUSTER_URL   the balancer in front of the cluster
//	WHARF_BENCH_SINGLE_URL    the lone node
//	WHARF_BENCH_NODE_URLS     each cluster node, comma-separated
//	WHARF_BENCH_CLUSTER_PIDS  the cluster nodes' process IDs, comma-separated
//	WHARF_BENCH_SINGLE_PID    the lone node's process ID
//	WHARF_ADMIN_PASSWORD      the password of admin on every node
//
// WHARF_BENCH_LARGE=1 adds a 1 GiB push. WHARF_BENCH_CLIENTS (default 1)
// is a comma-separated list of client counts: for each count above 1 the
// sizes run again as "<size>x<count>", with that many clients pushing an
// image each at the same time, as podman pushes an image's layers and as
// a registry serving many clients sees them.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// fullRPoll is how often the wait for a blob's last copy asks the nodes
// that still lack it, all at once; each ask is one small Connect call on
// that node.
const fullRPoll = 10 * time.Millisecond

// BenchmarkExternalPush: per iteration, an image (config, one layer pushed
// with POST, PATCH and PUT, manifest) through the balancer to 3 nodes with
// R=3 W=2, then the same image to the lone node; each push is timed from
// the first request to the manifest PUT's 201, as BenchmarkClusterPush
// does. Between the two, untimed, it waits until every cluster node stores
// both blobs, so that a copy still running in the background slows neither
// the next push nor the lone node's.
//
// Reports cluster-MB/s, single-MB/s and cluster/single (the ratio of the
// rates); fullR-ms, the mean time from the cluster's 201 until all 3 nodes
// stored the layer and the config; and the CPU the nodes spent per GB
// pushed (user plus system time from /proc, over the whole sub-benchmark,
// waits included): cluster-cpu-s/GB (the 3 nodes together),
// busiest-node-cpu-s/GB and single-cpu-s/GB.
func BenchmarkExternalPush(b *testing.B) {
	clusterURL := strings.TrimSuffix(os.Getenv("WHARF_BENCH_CLUSTER_URL"), "/")
	singleURL := strings.TrimSuffix(os.Getenv("WHARF_BENCH_SINGLE_URL"), "/")
	if clusterURL == "" || singleURL == "" {
		b.Skip("WHARF_BENCH_CLUSTER_URL and WHARF_BENCH_SINGLE_URL are not set; scripts/bench-cluster.sh starts the nodes and sets them")
	}
	password := os.Getenv("WHARF_ADMIN_PASSWORD")
	if password == "" {
		b.Fatal("WHARF_ADMIN_PASSWORD is not set")
	}
	nodeURLs := splitList(os.Getenv("WHARF_BENCH_NODE_URLS"))
	if len(nodeURLs) == 0 {
		b.Fatal("WHARF_BENCH_NODE_URLS is not set")
	}
	clusterPIDs := parsePIDs(b, "WHARF_BENCH_CLUSTER_PIDS", os.Getenv("WHARF_BENCH_CLUSTER_PIDS"))
	singlePIDs := parsePIDs(b, "WHARF_BENCH_SINGLE_PID", os.Getenv("WHARF_BENCH_SINGLE_PID"))
	if len(clusterPIDs) == 0 || len(singlePIDs) != 1 {
		b.Fatal("WHARF_BENCH_CLUSTER_PIDS and WHARF_BENCH_SINGLE_PID must name the nodes' processes")
	}
	prev := benchPassword
	benchPassword = password
	b.Cleanup(func() { benchPassword = prev })

	statusClient := &http.Client{Timeout: 10 * time.Second, Transport: basicAuth{adminUser, password}}
	nodes := make([]wharfv1connect.ClusterServiceClient, len(nodeURLs))
	for i, u := range nodeURLs {
		nodes[i] = wharfv1connect.NewClusterServiceClient(statusClient, strings.TrimSuffix(u, "/"))
	}
	// A node checks a password (argon2id) once and then remembers it for
	// minutes: check it on every node now, not inside the first push.
	for i := range nodes {
		mustNodeBlobs(b, nodes, i)
	}
	benchDo(b, http.MethodGet, singleURL+"/v2/", nil, nil, 0, http.StatusOK)
	for range nodeURLs {
		benchDo(b, http.MethodGet, clusterURL+"/v2/", nil, nil, 0, http.StatusOK)
	}
	// What the nodes burn doing nothing (Raft heartbeats, gossip, the
	// balancer's health checks), for reading the CPU figures of small
	// pushes.
	const idle = 3 * time.Second
	idleCluster, idleSingle := cpuSeconds(b, clusterPIDs), cpuSeconds(b, singlePIDs)
	time.Sleep(idle)
	perSecond := func(cpu []float64) string {
		var ms []string
		for _, s := range cpu {
			ms = append(ms, fmt.Sprintf("%.0f", s*1000/idle.Seconds()))
		}
		return strings.Join(ms, ", ")
	}
	b.Logf("idle CPU, ms per second: cluster nodes %s; lone node %s",
		perSecond(sub(cpuSeconds(b, clusterPIDs), idleCluster)), perSecond(sub(cpuSeconds(b, singlePIDs), idleSingle)))

	sizes := []int64{1 << 20, 10 << 20, 100 << 20}
	if benchLarge() {
		sizes = append(sizes, 1<<30)
	}
	seed := uint64(time.Now().UnixNano())
	for _, clients := range benchClients(b) {
		for _, size := range sizes {
			name := fmt.Sprintf("%dMiB", size>>20)
			if clients > 1 {
				name += fmt.Sprintf("x%d", clients)
			}
			b.Run(name, func(b *testing.B) {
				externalPush(b, nodes, clusterURL, singleURL, clusterPIDs, singlePIDs, size, clients, &seed)
			})
		}
	}
}

// externalPush is one sub-benchmark of BenchmarkExternalPush: b.N rounds
// of clients images with a layer of size bytes each, pushed at the same
// time, to the cluster and then to the lone node.
func externalPush(b *testing.B, nodes []wharfv1connect.ClusterServiceClient, clusterURL, singleURL string,
	clusterPIDs, singlePIDs []int, size int64, clients int, seed *uint64) {
	b.StopTimer()
	cluster0, single0 := cpuSeconds(b, clusterPIDs), cpuSeconds(b, singlePIDs)
	var clusterTime, singleTime, fullR time.Duration
	var clusterSteps, singleSteps pushSteps
	// What each node stores before the next push: asked once, then
	// carried over from the wait for the previous push's last copies, so
	// that the nodes answer as few status calls as can be (each one
	// authenticates its caller with a read index).
	before := make([]blobTotals, len(nodes))
	for j := range nodes {
		before[j] = mustNodeBlobs(b, nodes, j)
	}
	for i := 0; i < b.N; i++ {
		srcs := make([]blobSource, clients)
		for c := range srcs {
			*seed++
			srcs[c] = blobSource{seed: *seed, size: size}
		}

		b.StartTimer()
		start := time.Now()
		pushImages(b, clusterURL, srcs, &clusterSteps)
		acked := time.Now()
		clusterTime += acked.Sub(start)
		b.StopTimer()
		before = waitFullR(b, nodes, before, 2*int64(clients), int64(clients)*size)
		fullR += time.Since(acked)

		b.StartTimer()
		start = time.Now()
		pushImages(b, singleURL, srcs, &singleSteps)
		singleTime += time.Since(start)
		b.StopTimer()
	}
	clusterCPU := sub(cpuSeconds(b, clusterPIDs), cluster0)
	singleCPU := sub(cpuSeconds(b, singlePIDs), single0)
	mb := float64(size) * float64(clients) * float64(b.N) / 1e6
	gb := mb / 1e3
	b.ReportMetric(mb/clusterTime.Seconds(), "cluster-MB/s")
	b.ReportMetric(mb/singleTime.Seconds(), "single-MB/s")
	b.ReportMetric(singleTime.Seconds()/clusterTime.Seconds(), "cluster/single")
	b.ReportMetric(float64(fullR.Microseconds())/1e3/float64(b.N), "fullR-ms")
	b.ReportMetric(sum(clusterCPU)/gb, "cluster-cpu-s/GB")
	b.ReportMetric(slices.Max(clusterCPU)/gb, "busiest-node-cpu-s/GB")
	b.ReportMetric(sum(singleCPU)/gb, "single-cpu-s/GB")
	clusterSteps.report(b, "cluster")
	singleSteps.report(b, "single")
}

// pushImages pushes an image of each source's blob to base, all at once,
// and returns when every manifest PUT has been answered 201.
func pushImages(b *testing.B, base string, srcs []blobSource, steps *pushSteps) {
	if len(srcs) == 1 {
		pushImageOfBlob(b, base, "bench/push", fmt.Sprintf("s%d", srcs[0].seed), srcs[0], srcs[0].Digest(), steps)
		return
	}
	var wg sync.WaitGroup
	for _, src := range srcs {
		// A failed push ends its goroutine (FailNow); the check below
		// ends the benchmark.
		wg.Go(func() { pushImageOfBlob(b, base, "bench/push", fmt.Sprintf("s%d", src.seed), src, src.Digest(), steps) })
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// benchClients parses WHARF_BENCH_CLIENTS.
func benchClients(b *testing.B) []int {
	v := os.Getenv("WHARF_BENCH_CLIENTS")
	if v == "" {
		return []int{1}
	}
	var out []int
	for _, f := range splitList(v) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 64 {
			b.Fatalf("WHARF_BENCH_CLIENTS: %q is not a client count from 1 to 64", f)
		}
		out = append(out, n)
	}
	return out
}

// blobTotals is what a node reports of its blob store: how many blobs it
// stores on its disk, and their bytes.
type blobTotals struct{ count, bytes int64 }

func nodeBlobs(nodes []wharfv1connect.ClusterServiceClient, i int) (blobTotals, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := nodes[i].Status(ctx, connect.NewRequest(&wharfv1.StatusRequest{}))
	if err != nil {
		return blobTotals{}, fmt.Errorf("status of cluster node %d: %w", i, err)
	}
	return blobTotals{resp.Msg.BlobCount, resp.Msg.BlobBytes}, nil
}

func mustNodeBlobs(b testing.TB, nodes []wharfv1connect.ClusterServiceClient, i int) blobTotals {
	t, err := nodeBlobs(nodes, i)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// waitFullR waits until every node stores the blobs just pushed (count of
// them, of bytes in all, layers and configs) on top of what it stored
// before: they then have all R=3 copies. It returns what each node stores
// then. It asks the nodes themselves, because the
// cluster's count of under-replicated blobs (cluster status) is only
// refreshed by the leader's repair scan (--repair-interval, 30s), and a
// HEAD of the blob on a node that lacks it fetches it from a peer.
func waitFullR(b testing.TB, nodes []wharfv1connect.ClusterServiceClient, before []blobTotals, count, bytes int64) []blobTotals {
	deadline := time.Now().Add(10 * time.Minute)
	pending := make([]int, len(nodes))
	for i := range pending {
		pending[i] = i
	}
	after := make([]blobTotals, len(nodes))
	for {
		lacking := make([]bool, len(nodes))
		var wg sync.WaitGroup
		for _, i := range pending {
			wg.Go(func() {
				now, err := nodeBlobs(nodes, i)
				if err != nil {
					b.Error(err)
					return
				}
				after[i] = now
				lacking[i] = now.count < before[i].count+count || now.bytes < before[i].bytes+bytes
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		var still []int
		for _, i := range pending {
			if lacking[i] {
				still = append(still, i)
			}
		}
		if pending = still; len(pending) == 0 {
			return after
		}
		if time.Now().After(deadline) {
			b.Fatalf("cluster nodes %v still lack the last pushed blobs after 10 minutes", pending)
		}
		time.Sleep(fullRPoll)
	}
}

// cpuSeconds returns the user plus system CPU time of each process, in
// seconds, from /proc/<pid>/stat (all its threads, in clock ticks).
func cpuSeconds(b testing.TB, pids []int) []float64 {
	out := make([]float64, len(pids))
	for i, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatalf("CPU time of process %d: %v", pid, err)
		}
		// The command name, in parentheses, may hold spaces; the fields
		// after it start with the state (field 3), so utime (field 14) and
		// stime (field 15) are its 11th and 12th.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			b.Fatalf("/proc/%d/stat: too few fields: %q", pid, s)
		}
		utime, err1 := strconv.ParseInt(fields[11], 10, 64)
		stime, err2 := strconv.ParseInt(fields[12], 10, 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, fields[11], fields[12])
		}
		out[i] = float64(utime+stime) / clockTicks
	}
	return out
}

func sub(after, before []float64) []float64 {
	out := make([]float64, len(after))
	for i := range after {
		out[i] = after[i] - before[i]
	}
	return out
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parsePIDs(b testing.TB, name, s string) []int {
	var pids []int
	for _, f := range splitList(s) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			b.Fatalf("%s: %q is not a process ID", name, f)
		}
		pids = append(pids, pid)
	}
	return pids
}
