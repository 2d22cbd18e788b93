package main

// Sync throughput of a large image from CNCF Distribution into one wharf
// node, against skopeo moving the same image on the same machine (make
// bench-sync; not part of make test):
//
//	go test -run='^$' -bench=SyncVsSkopeo -benchtime=1x ./cmd/wharf/
//
// WHARF_BENCH_SYNC_MIB sets the image size (default 1024, in 4 layers).
// Each round pushes a new image upstream (untimed), then times, in turn: a wharf sync job (from the request to the
// job's end: every blob fetched, verified and fsync'ed, the manifest
// committed through Raft), `skopeo sync` of the image to a directory, and
// `skopeo copy` of it into the same wharf node under another name. The
// ratios are skopeo's time over wharf's: above 1.0 wharf is faster.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func BenchmarkSyncVsSkopeo(b *testing.B) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		b.Fatal("skopeo is not on PATH: apt-get install skopeo")
	}
	mib := 1024
	if s := os.Getenv("WHARF_BENCH_SYNC_MIB"); s != "" {
		if mib, err = strconv.Atoi(s); err != nil || mib < 4 {
			b.Fatalf("WHARF_BENCH_SYNC_MIB=%q: want a number of MiB, at least 4", s)
		}
	}
	up := startDistribution(b)
	n := startAccessNodes(b, 1)[0]
	ctx := context.Background()
	if _, err := remotesAs(n, "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "dist", Url: up.url, Username: upstreamUser, Password: upstreamPassword, CaCertificatePem: up.caPEM,
		TimeoutNanos: int64(time.Minute),
	})); err != nil {
		b.Fatal(err)
	}
	certs := b.TempDir()
	if err := os.WriteFile(filepath.Join(certs, "ca.crt"), []byte(up.caPEM), 0o600); err != nil {
		b.Fatal(err)
	}
	creds := upstreamUser + ":" + upstreamPassword
	run := func(args ...string) time.Duration {
		start := time.Now()
		out, err := exec.Command(skopeo, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("skopeo %v: %v\n%s", args[0], err, out)
		}
		return time.Since(start)
	}
	var wharfT, syncT, copyT time.Duration
	for i := 0; b.Loop(); i++ {
		// A new image each round, pushed untimed: the registry would
		// otherwise link the blobs it holds instead of fetching them.
		upstream := fmt.Sprintf("team/big%d", i)
		img, err := random.Image(int64(mib)<<20/4, 4)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(up.ref(b, upstream+":v1"), img, up.opts...); err != nil {
			b.Fatalf("push the image upstream: %v", err)
		}
		start := time.Now()
		repo := fmt.Sprintf("mirrors/big%d", i)
		if _, err := n.reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{
			Repository: repo, Remote: "dist", Upstream: upstream, CreatedBy: "admin", MirrorMode: true,
		}})); err != nil {
			b.Fatal(err)
		}
		job := syncAndWait(b, n, repo)
		wharfT += time.Since(start)
		if job.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || job.GetProgress().GetBytesFetched() < int64(mib)<<20 {
			b.Fatalf("sync: %v %v %s", job.GetState(), job.GetProgress(), job.GetError())
		}

		dir := b.TempDir()
		syncT += run("sync", "--src", "docker", "--dest", "dir", "--src-cert-dir", certs, "--src-creds", creds,
			up.host+"/"+upstream+":v1", dir)
		copyT += run("copy", "--src-cert-dir", certs, "--src-creds", creds,
			"--dest-tls-verify=false", "--dest-creds", "admin:"+accAdminPassword,
			"docker://"+up.host+"/"+upstream+":v1", fmt.Sprintf("docker://%s/skopeo/big%d:v1", n.host(), i))
		_ = os.RemoveAll(dir)
	}
	rounds := float64(b.N)
	mb := float64(mib)
	b.ReportMetric(mb*rounds/wharfT.Seconds(), "wharf-sync-MiB/s")
	b.ReportMetric(mb*rounds/syncT.Seconds(), "skopeo-sync-dir-MiB/s")
	b.ReportMetric(mb*rounds/copyT.Seconds(), "skopeo-copy-wharf-MiB/s")
	b.ReportMetric(syncT.Seconds()/wharfT.Seconds(), "ratio-vs-skopeo-sync")
	b.ReportMetric(copyT.Seconds()/wharfT.Seconds(), "ratio-vs-skopeo-copy")
}
