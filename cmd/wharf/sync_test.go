package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/testnet"
)

// distribution is a running CNCF Distribution registry: TLS under a CA
// made by the test, htpasswd auth.
type distribution struct {
	host  string // 127.0.0.1:port
	url   string // https://host
	caPEM string
	opts  []remote.Option // for the test's own pushes
}

const upstreamUser, upstreamPassword = "mirror", "upstream-Secret-7c1d"

// startDistribution runs CNCF Distribution's registry v3.0.0, built once
// by scripts/distribution.sh.
func startDistribution(t testing.TB) *distribution {
	t.Helper()
	out, err := exec.Command("../../scripts/distribution.sh").Output()
	if err != nil {
		t.Fatalf("scripts/distribution.sh: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	dir := t.TempDir()
	caPEM, cert := testCA(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(upstreamPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"htpasswd": []byte(upstreamUser + ":" + string(hash) + "\n"),
	}
	host := testnet.FreeAddr(t)
	files["config.yml"] = fmt.Appendf(nil, `version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %[1]s/data}
  delete: {enabled: true}
http:
  addr: %[2]s
  tls: {certificate: %[1]s/cert.pem, key: %[1]s/key.pem}
auth:
  htpasswd: {realm: upstream, path: %[1]s/htpasswd}
`, dir, host)
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("distribution's log:\n%s", strings.Join(logs.lines(), "\n"))
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	d := &distribution{host: host, url: "https://" + host, caPEM: caPEM,
		opts: []remote.Option{remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: upstreamUser, Password: upstreamPassword})}}
	waitUntil(t, 20*time.Second, func() error {
		resp, err := (&http.Client{Transport: tr}).Get(d.url + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("GET /v2/: %d", resp.StatusCode)
		}
		return nil
	})
	return d
}

func (d *distribution) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(d.host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushImage pushes a small random image as repo:tag and returns it.
func (d *distribution) pushImage(t *testing.T, repo, tag string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d.ref(t, repo+":"+tag), img, d.opts...); err != nil {
		t.Fatalf("push %s:%s upstream: %v", repo, tag, err)
	}
	return img
}

// pushIndex pushes an index of a linux/amd64 and a linux/arm64 image.
func (d *distribution) pushIndex(t *testing.T, repo, tag string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	if err := remote.WriteIndex(d.ref(t, repo+":"+tag), idx, d.opts...); err != nil {
		t.Fatalf("push index %s:%s upstream: %v", repo, tag, err)
	}
	return idx
}

func (d *distribution) deleteTag(t *testing.T, repo, tag string) {
	t.Helper()
	desc, err := remote.Head(d.ref(t, repo+":"+tag), d.opts...)
	if err != nil {
		t.Fatal(err)
	}
	// Distribution deletes manifests by digest, with their tags.
	if err := remote.Delete(d.ref(t, repo+"@"+desc.Digest.String()), d.opts...); err != nil {
		t.Fatalf("delete %s:%s upstream: %v", repo, tag, err)
	}
}

// syncAndWait requests a sync of repo through node n and waits for the
// job to end.
func syncAndWait(t testing.TB, n *accNode, repo string) *fsmpb.SyncJob {
	t.Helper()
	cmd := fsm.NewCommand(&fsmpb.RequestSync{Repository: repo, Trigger: fsm.SyncTriggerManual, RequestedBy: "admin"})
	res, err := n.reg.node.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatalf("request sync of %s: %v", repo, err)
	}
	id := res.GetValue()
	var job *fsmpb.SyncJob
	waitUntil(t, 60*time.Second, func() error {
		job, err = n.reg.node.FSM().SyncJob(id)
		if err != nil {
			return err
		}
		if fsm.SyncJobActive(job.GetState()) {
			return fmt.Errorf("job %s is %v: %v", id, job.GetState(), job.GetProgress())
		}
		return nil
	})
	return job
}

// A mirrored repository syncs from CNCF Distribution (TLS under the
// test's CA, htpasswd) through the worker and the leader's scheduler:
// upstream digests kept, filters and the platform filter applied, pushes
// refused, and a second sync moves only what changed upstream.
func TestSyncFromDistribution(t *testing.T) {
	up := startDistribution(t)
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()

	v1img := up.pushImage(t, "team/app", "v1")
	up.pushImage(t, "team/app", "v1-source")
	up.pushImage(t, "team/app", "old")
	multi := up.pushIndex(t, "team/app", "multi")
	v1digest, _ := v1img.Digest()
	sig := up.pushImage(t, "team/app", strings.Replace(v1digest.String(), ":", "-", 1)+".sig")

	if _, err := remotesAs(n, "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "dist", Url: up.url, Username: upstreamUser, Password: upstreamPassword, CaCertificatePem: up.caPEM,
		TimeoutNanos: int64(10 * time.Second),
	})); err != nil {
		t.Fatal(err)
	}
	mirror := fsm.NewCommand(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{
		Repository: "mirrors/app", Remote: "dist", Upstream: "team/app",
		ExcludeTags: []string{"old"}, Platforms: []string{"linux/amd64"}, MirrorMode: true, CreatedBy: "admin",
	}})
	if _, err := n.reg.node.Apply(ctx, mirror); err != nil {
		t.Fatal(err)
	}

	job := syncAndWait(t, n, "mirrors/app")
	p := job.GetProgress()
	t.Logf("first sync: %v, %v, errors %v", job.GetState(), p, job.GetTagErrors())
	if job.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED {
		t.Fatalf("first sync: %v %s %v", job.GetState(), job.GetError(), job.GetTagErrors())
	}

	local := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: accAdminPassword})}
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(n.host()+"/mirrors/app"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tags, err := remote.List(ref("").Context(), local...)
	if err != nil {
		t.Fatal(err)
	}
	sigTag := strings.Replace(v1digest.String(), ":", "-", 1) + ".sig"
	if want := []string{"multi", sigTag, "v1"}; strings.Join(tags, ",") != strings.Join(want, ",") {
		t.Fatalf("synced tags = %v, want %v (v1-source and old excluded, the signature along)", tags, want)
	}
	got, err := remote.Image(ref(":v1"), local...)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != v1digest {
		t.Fatalf("v1 = %s here, %s upstream", d, v1digest)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verified against its digest by go-containerregistry
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("pull a synced layer: %v", err)
		}
		rc.Close()
	}
	sigDigest, _ := sig.Digest()
	if d, err := remote.Head(ref(":"+sigTag), local...); err != nil || d.Digest != sigDigest {
		t.Fatalf("signature tag: %v, %v", d, err)
	}
	// The index keeps its upstream digest; only its linux/amd64 child came.
	multiDigest, _ := multi.Digest()
	if d, err := remote.Head(ref(":multi"), local...); err != nil || d.Digest != multiDigest {
		t.Fatalf("multi: %v, %v; want %s", d, err, multiDigest)
	}
	im, _ := multi.IndexManifest()
	for _, child := range im.Manifests {
		_, err := remote.Head(ref("@"+child.Digest.String()), local...)
		if child.Platform.Architecture == "amd64" && err != nil {
			t.Errorf("linux/amd64 child: %v", err)
		}
		if child.Platform.Architecture == "arm64" && err == nil {
			t.Errorf("the linux/arm64 child was synced despite the platform filter")
		}
	}

	// Pushing into the mirror is refused with DENIED.
	img, _ := random.Image(64, 1)
	err = remote.Write(ref(":pushed"), img, local...)
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "mirrors dist/team/app") {
		t.Fatalf("push into the mirror: %v, want DENIED naming the upstream", err)
	}

	// Nothing changed upstream: only listing and HEADs.
	again := syncAndWait(t, n, "mirrors/app")
	t.Logf("unchanged sync: %v", again.GetProgress())
	if pa := again.GetProgress(); again.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED ||
		pa.GetBlobsFetched() != 0 || pa.GetManifestsFetched() != 0 || pa.GetTagsUnchanged() != pa.GetTagsTotal() {
		t.Fatalf("second sync with nothing changed: %v %v", again.GetState(), pa)
	}

	// New tag, moved tag, deleted tag: only those move.
	up.pushImage(t, "team/app", "v2")
	moved := up.pushImage(t, "team/app", "v1")
	up.deleteTag(t, "team/app", "multi")
	third := syncAndWait(t, n, "mirrors/app")
	p3 := third.GetProgress()
	t.Logf("sync after changes: %v", p3)
	if third.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || p3.GetTagsDeleted() != 1 || p3.GetManifestsFetched() != 2 {
		t.Fatalf("third sync: %v %v %v", third.GetState(), p3, third.GetTagErrors())
	}
	movedDigest, _ := moved.Digest()
	if d, err := remote.Head(ref(":v1"), local...); err != nil || d.Digest != movedDigest {
		t.Fatalf("moved v1: %v, %v", d, err)
	}
	if _, err := remote.Head(ref(":multi"), local...); err == nil {
		t.Fatal("multi, deleted upstream, is still here in mirror mode")
	}
	_, _, metrics := doRequest(t, http.MethodGet, n.url+"/metrics", nil, nil)
	if !strings.Contains(string(metrics), `wharf_sync_jobs_finished_total{state="succeeded"} 3`) {
		t.Errorf("metrics do not count the three jobs:\n%s", grepLines(string(metrics), "wharf_sync"))
	}
}

func grepLines(s, want string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, want) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A node killed in the middle of a sync job: the leader gives the job to
// another node, which finishes it, and the result equals the upstream.
func TestSyncJobSurvivesItsNodesDeath(t *testing.T) {
	up := startDistribution(t)
	h := startHarness(t, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour})
	nodes := accNodesOf(t, h)
	ctx := context.Background()
	want := map[string]v1.Hash{}
	for i := range 12 {
		tag := fmt.Sprintf("t%02d", i)
		d, _ := up.pushImage(t, "team/big", tag).Digest()
		want[tag] = d
	}
	// A slow upstream (6 requests/s), so that the job is still running
	// when its node dies.
	if _, err := remotesAs(nodes[0], "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "dist", Url: up.url, Username: upstreamUser, Password: upstreamPassword, CaCertificatePem: up.caPEM,
		RateLimit: 6, Concurrency: 2, TimeoutNanos: int64(10 * time.Second),
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{
		Repository: "mirrors/big", Remote: "dist", Upstream: "team/big", MirrorMode: true, CreatedBy: "admin",
	}})); err != nil {
		t.Fatal(err)
	}
	res, err := nodes[0].reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.RequestSync{Repository: "mirrors/big", Trigger: fsm.SyncTriggerManual, RequestedBy: "admin"}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetValue()
	var running *fsmpb.SyncJob
	waitUntil(t, 60*time.Second, func() error {
		running, err = nodes[0].reg.node.FSM().SyncJob(id)
		if err != nil {
			return err
		}
		if running.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING || running.GetProgress().GetTagsDone() < 2 {
			return fmt.Errorf("job %v, progress %v", running.GetState(), running.GetProgress())
		}
		return nil
	})
	victim := h.indexOf(running.GetNode())
	t.Logf("killing node %d (%s), which runs job %s at %v", victim, running.GetNode(), id, running.GetProgress())
	h.crash(victim)
	survivor := nodes[(victim+1)%3]

	var job *fsmpb.SyncJob
	waitUntil(t, 90*time.Second, func() error {
		job, err = survivor.reg.node.FSM().SyncJob(id)
		if err != nil {
			return err
		}
		if fsm.SyncJobActive(job.GetState()) {
			return fmt.Errorf("job %s %v on %s, attempt %d", id, job.GetState(), job.GetNode(), job.GetAttempt())
		}
		return nil
	})
	t.Logf("job %s: %v on %s, attempt %d, %v", id, job.GetState(), job.GetNode(), job.GetAttempt(), job.GetProgress())
	if job.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || job.GetAttempt() != 2 || job.GetNode() == running.GetNode() {
		t.Fatalf("after the kill: %v on %s, attempt %d: %s %v", job.GetState(), job.GetNode(), job.GetAttempt(), job.GetError(), job.GetTagErrors())
	}
	local := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: accAdminPassword})}
	for tag, d := range want {
		r, err := name.ParseReference(survivor.host()+"/mirrors/big:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r, local...)
		if err != nil {
			t.Fatalf("pull %s through a survivor: %v", tag, err)
		}
		if got, _ := img.Digest(); got != d {
			t.Fatalf("%s: %s here, %s upstream", tag, got, d)
		}
		if err := validateImage(img); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
	}
}

// validateImage reads every layer of img, which go-containerregistry
// verifies against its digest.
func validateImage(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
