package main

// End-to-end tests of whole wharf nodes in one process, over real TCP on
// loopback, with go-containerregistry as the client.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
)

func ref(t testing.TB, host, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t testing.TB, layerBytes int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerBytes, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageBlobs returns the config and layer digests of img.
func imageBlobs(t testing.TB, img v1.Image) []digest.Digest {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []digest.Digest{digest.Digest(m.Config.Digest.String())}
	for _, l := range m.Layers {
		out = append(out, digest.Digest(l.Digest.String()))
	}
	return out
}

// checkPull pulls ref and checks that it is img: same manifest digest and
// bytes, and every layer's and the config's content verified (validate
// reads and hashes them all).
func checkPull(t testing.TB, r name.Reference, img v1.Image) {
	t.Helper()
	got, err := remote.Image(r, asAdmin())
	if err != nil {
		t.Fatalf("pull %s: %v", r, err)
	}
	wantDigest, _ := img.Digest()
	gotDigest, err := got.Digest()
	if err != nil {
		t.Fatalf("pull %s: digest: %v", r, err)
	}
	if gotDigest != wantDigest {
		t.Fatalf("pull %s: manifest digest %s, want %s", r, gotDigest, wantDigest)
	}
	wantRaw, _ := img.RawManifest()
	gotRaw, _ := got.RawManifest()
	if !bytes.Equal(wantRaw, gotRaw) {
		t.Fatalf("pull %s: manifest bytes differ", r)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("pull %s: content: %v", r, err)
	}
}

// ociError decodes an OCI error envelope.
func ociError(t testing.TB, body []byte) (code, message string) {
	t.Helper()
	var env struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an OCI error envelope: %q (%v)", body, err)
	}
	return env.Errors[0].Code, env.Errors[0].Message
}

// manifestFor builds an OCI image manifest over a config and layers that
// are already pushed.
func manifestFor(config []byte, layers ...[]byte) []byte {
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b).String(), "size": len(b)}
	}
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar", l))
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc("application/vnd.oci.image.config.v1+json", config),
		"layers":        ls,
	})
	return m
}

func putManifest(t testing.TB, base, repo, tag string, m []byte) (int, []byte) {
	t.Helper()
	code, _, body := doRequest(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag,
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, bytes.NewReader(m))
	return code, body
}

func randomBytes(t testing.TB, n int, seed byte) []byte {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7919/13) ^ seed ^ byte(i>>8)
	}
	// Make the blob unique per test run as well.
	copy(b, []byte(fmt.Sprintf("%d-%d-", time.Now().UnixNano(), seed)))
	return b
}

// TestClusterPushPullThroughLB: 3 nodes, R=3 W=2. An image pushed through
// the round-robin balancer pulls intact through every node and the
// balancer; every blob ends on all 3 nodes' disks and in the FSM as held by
// all 3; and a chunked upload whose requests hit three different nodes
// completes.
func TestClusterPushPullThroughLB(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2})
	img := randomImage(t, 64<<10, 4)
	if err := remote.Write(ref(t, h.lbHost(), "e2e/app:v1"), img, asAdmin()); err != nil {
		t.Fatalf("push through the balancer: %v", err)
	}
	checkPull(t, ref(t, h.lbHost(), "e2e/app:v1"), img)
	for i := range h.nodes {
		checkPull(t, ref(t, h.host(i), "e2e/app:v1"), img)
	}
	all := []int{0, 1, 2}
	for _, d := range imageBlobs(t, img) {
		waitUntil(t, 10*time.Second, func() error {
			if got := h.onDisk(d); !slices.Equal(got, all) {
				return fmt.Errorf("blob %s on disk of nodes %v, want %v", d, got, all)
			}
			for i := range h.nodes {
				if got := h.holders(i, d); !slices.Equal(got, all) {
					return fmt.Errorf("node %d's FSM: blob %s held by %v, want %v", i, d, got, all)
				}
			}
			return nil
		})
	}

	t.Run("chunked upload across nodes", func(t *testing.T) {
		chunks := [][]byte{randomBytes(t, 300<<10, 1), randomBytes(t, 200<<10, 2), randomBytes(t, 100<<10, 3)}
		whole := bytes.Join(chunks, nil)
		d := digest.FromBytes(whole)
		code, hdr, body := doRequest(t, http.MethodPost, h.nodes[0].baseURL+"/v2/e2e/chunked/blobs/uploads/", nil, nil)
		if code != http.StatusAccepted {
			t.Fatalf("POST on node 0: %d %s", code, body)
		}
		loc := resolve(t, h.nodes[0].baseURL, hdr.Get("Location"))
		if !strings.Contains(loc, h.nodes[0].id) {
			t.Errorf("session location %s does not name node 0 (%s)", loc, h.nodes[0].id)
		}
		// PATCHes on nodes 1 and 2, then the rest with the PUT on node 0.
		// The first bytes reach node 1, which adopts the empty session
		// (node 0 releases it); the later requests are proxied to node 1.
		offset := 0
		for i, c := range chunks[:2] {
			node := h.nodes[1+i]
			code, hdr, body = doRequest(t, http.MethodPatch, onNode(t, loc, node.baseURL), http.Header{
				"Content-Type":  {"application/octet-stream"},
				"Content-Range": {fmt.Sprintf("%d-%d", offset, offset+len(c)-1)},
			}, bytes.NewReader(c))
			if code != http.StatusAccepted {
				t.Fatalf("PATCH %d on node %d: %d %s", i, node.idx, code, body)
			}
			offset += len(c)
			if want := fmt.Sprintf("0-%d", offset-1); hdr.Get("Range") != want {
				t.Fatalf("PATCH %d on node %d: Range %q, want %q", i, node.idx, hdr.Get("Range"), want)
			}
			loc = resolve(t, node.baseURL, hdr.Get("Location"))
			if !strings.Contains(loc, h.nodes[1].id) {
				t.Fatalf("after PATCH %d on node %d the session is %s, want node 1's (%s)", i, node.idx, loc, h.nodes[1].id)
			}
		}
		put := onNode(t, loc, h.nodes[0].baseURL)
		put += map[bool]string{true: "&", false: "?"}[strings.Contains(put, "?")] + "digest=" + d.String()
		code, _, body = doRequest(t, http.MethodPut, put, http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", offset, len(whole)-1)},
		}, bytes.NewReader(chunks[2]))
		if code != http.StatusCreated {
			t.Fatalf("PUT on node 0: %d %s", code, body)
		}
		// The write that linked the blob recorded the mirrored copy too:
		// the blob was durable on W=2 nodes when the client heard 201.
		if got := h.holders(h.leader(), d); len(got) < 2 {
			t.Errorf("right after the PUT the leader records holders %v, want at least 2", got)
		}
		for _, n := range h.nodes {
			code, _, got := doRequest(t, http.MethodGet, n.baseURL+"/v2/e2e/chunked/blobs/"+d.String(), nil, nil)
			if code != http.StatusOK || !bytes.Equal(got, whole) {
				t.Fatalf("GET blob from node %d: %d, %d bytes (want %d)", n.idx, code, len(got), len(whole))
			}
		}
		// The session moved to node 1, so that is where the blob was written.
		if got := h.onDisk(d); !slices.Contains(got, 1) {
			t.Fatalf("chunked blob on disks %v, want node 1 among them", got)
		}
		for _, n := range h.nodes {
			if open := n.reg.blobs.OpenUploads(); open != 0 {
				t.Errorf("node %d still has %d upload sessions", n.idx, open)
			}
		}
	})
}

// TestClusterPlacement: 5 nodes, R=3 W=2. A blob pushed to node i ends on
// the disks of exactly owners(d) ∪ {i}, where owners are the 3 nodes
// rendezvous hashing picks: 3 copies when the writer is an owner, 4 when it
// is not (the writer keeps its copy). The FSM records exactly those
// holders. An image pushed through the balancer (writer unknown) has every
// blob on all 3 owners plus at most one other node.
func TestClusterPlacement(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 5, replicas: 3, writeQuorum: 2})
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	writers := map[digest.Digest]int{digest.FromBytes(config): 0}
	pushBlobMonolithic(t, h.nodes[0].baseURL, "place/raw", config)
	var layers [][]byte
	for i := range 10 {
		b := randomBytes(t, 32<<10, byte(i))
		writer := i % 5
		writers[pushBlobMonolithic(t, h.nodes[writer].baseURL, "place/raw", b)] = writer
		layers = append(layers, b)
	}
	if code, body := putManifest(t, h.lbURL(), "place/raw", "v1", manifestFor(config, layers...)); code != http.StatusCreated {
		t.Fatalf("manifest PUT: %d %s", code, body)
	}
	// A blob written on a node that is not an owner reaches its owners, then
	// the leader's repair trims the writer: exactly R holders.
	extra := 0
	for d, writer := range writers {
		owners := h.owners(d, h.nodes, 3)
		if !slices.Contains(owners, writer) {
			extra++
		}
		waitUntil(t, 10*time.Second, func() error {
			if got := h.holders(0, d); !slices.Equal(got, owners) {
				return fmt.Errorf("blob %s written on node %d: FSM holders %v, want its owners %v", d, writer, got, owners)
			}
			return nil
		})
	}
	// Each node's sweep then deletes the copies it no longer holds: exactly
	// R copies on disk.
	h.sweepNow()
	for d, writer := range writers {
		owners := h.owners(d, h.nodes, 3)
		if got := h.onDisk(d); !slices.Equal(got, owners) {
			t.Errorf("blob %s written on node %d: on disks %v after the sweep, want its owners %v", d, writer, got, owners)
		}
	}
	t.Logf("%d of %d blobs were written on a non-owner; their extra copy was trimmed", extra, len(writers))

	img := randomImage(t, 32<<10, 5)
	if err := remote.Write(ref(t, h.lbHost(), "place/img:v1"), img, asAdmin()); err != nil {
		t.Fatal(err)
	}
	for _, d := range imageBlobs(t, img) {
		owners := h.owners(d, h.nodes, 3)
		waitUntil(t, 10*time.Second, func() error {
			if got := h.holders(0, d); !slices.Equal(got, owners) {
				return fmt.Errorf("blob %s: FSM holders %v, want its owners %v", d, got, owners)
			}
			// Trimmed copies wait for their node's sweep: the writer's, and
			// the one mirrored to a provisional target (W-1 = 1) while the
			// upload streamed.
			got := h.onDisk(d)
			var others []int
			for _, i := range got {
				if !slices.Contains(owners, i) {
					others = append(others, i)
				}
			}
			if len(got)-len(others) != 3 || len(others) > 2 {
				return fmt.Errorf("blob %s on disks %v, want owners %v plus at most the writer and a mirror target", d, got, owners)
			}
			return nil
		})
	}
	checkPull(t, ref(t, h.lbHost(), "place/img:v1"), img)
}

// TestClusterRefusesBelowQuorum: 3 nodes, 2 crash. On the survivor a blob
// push and a manifest push of 8 layers (already durable) each fail within
// 3s (the quorum timeout is 1s) with 503 and an OCI UNAVAILABLE error
// mentioning quorum; /readyz turns 503.
func TestClusterRefusesBelowQuorum(t *testing.T) {
	// The harness's QuorumTimeout (2s): a shorter one can refuse writes on
	// a healthy cluster when a loaded machine delays heartbeats.
	h := startHarness(t, harnessOpts{nodes: 3})
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	pushBlobMonolithic(t, h.lbURL(), "quorum/app", config)
	// Eight layers: the manifest push reads each one's link, and every
	// read must not wait for a leader all over again.
	var layers [][]byte
	for i := range 8 {
		layers = append(layers, randomBytes(t, 8<<10, byte(20+i)))
		pushBlobMonolithic(t, h.lbURL(), "quorum/app", layers[i])
	}
	m := manifestFor(config, layers...)
	if code, body := putManifest(t, h.lbURL(), "quorum/app", "v1", m); code != http.StatusCreated {
		t.Fatalf("manifest PUT with all nodes up: %d %s", code, body)
	}
	// The survivor is a follower; the leader and the other follower die.
	survivor := h.follower()
	for i := range h.nodes {
		if i != survivor {
			h.crash(i)
		}
	}
	base := h.nodes[survivor].baseURL
	check := func(what string, code int, body []byte, took time.Duration) {
		t.Helper()
		t.Logf("%s refused after %v: %d %s", what, took.Round(time.Millisecond), code, bytes.TrimSpace(body))
		if code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503: %s", what, code, body)
		}
		if c, msg := ociError(t, body); c != "UNAVAILABLE" || !strings.Contains(msg, "quorum") {
			t.Fatalf("%s: error %s %q, want UNAVAILABLE mentioning quorum", what, c, msg)
		}
		if took > 5*time.Second {
			t.Fatalf("%s took %v to fail, want < 5s", what, took)
		}
	}
	start := time.Now()
	blob := randomBytes(t, 16<<10, 10)
	code, _, body := doRequest(t, http.MethodPost,
		base+"/v2/quorum/app/blobs/uploads/?digest="+digest.FromBytes(blob).String(),
		http.Header{"Content-Type": {"application/octet-stream"}}, bytes.NewReader(blob))
	check("blob push", code, body, time.Since(start))

	start = time.Now()
	code, body = putManifest(t, base, "quorum/app", "v2", m)
	check("manifest push", code, body, time.Since(start))

	waitUntil(t, 5*time.Second, func() error {
		code, _, _ := doRequest(t, http.MethodGet, base+"/readyz", nil, nil)
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz: %d, want 503", code)
		}
		return nil
	})
}

// crashingTransport kills the node holding an upload session in the
// middle of a push: once `after` blob uploads have completed, it sends the
// next upload's POST to that node (as the balancer might have) and crashes
// the node as soon as the session is open, so the upload's PATCH, sent
// through the balancer, reaches a node whose session holder is gone.
type crashingTransport struct {
	next   http.RoundTripper
	after  int32
	target string // host:port the session POST is sent to
	crash  func()

	done      atomic.Int32
	crashed   atomic.Bool
	afterReqs atomic.Int32 // requests sent after the crash
}

func (c *crashingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.crashed.Load() {
		c.afterReqs.Add(1)
		return c.next.RoundTrip(r)
	}
	isPost := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && r.URL.RawQuery == ""
	if isPost && c.done.Load() >= c.after {
		r = r.Clone(r.Context())
		r.URL.Host, r.Host = c.target, c.target
		resp, err := c.next.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusAccepted {
			c.crash()
			c.crashed.Store(true)
		}
		return resp, err
	}
	resp, err := c.next.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") &&
		resp.StatusCode == http.StatusCreated {
		c.done.Add(1)
	}
	return resp, err
}

// TestClusterLeaderDiesMidPush: 3 nodes, --public-url the balancer. After 2
// of 6 layers are uploaded, the 3rd layer's upload session is opened on the
// leader, which is then crashed; that push attempt (client retries off)
// fails because the session is gone. Retrying the push through the balancer
// succeeds, and the image pulls intact through the balancer and from both
// surviving nodes, whose disks end up holding every blob.
func TestClusterLeaderDiesMidPush(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 3, lbPublicURL: true})
	leader := h.leader()
	img := randomImage(t, 128<<10, 6)
	r := ref(t, h.lbHost(), "e2e/failover:v1")
	ct := &crashingTransport{next: http.DefaultTransport, after: 2, target: h.host(leader),
		crash: func() { h.crash(leader) }}
	first := remote.Write(r, img, asAdmin(), remote.WithTransport(ct), remote.WithJobs(1),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }))
	if !ct.crashed.Load() || ct.afterReqs.Load() == 0 {
		t.Fatalf("the leader was not crashed mid-push (crashed %v, requests after %d; push: %v)",
			ct.crashed.Load(), ct.afterReqs.Load(), first)
	}
	if first == nil {
		t.Fatal("the push whose upload session died with the leader succeeded")
	}
	t.Logf("leader n%d crashed holding the 3rd layer's session; first push attempt: %v", leader, first)
	start := time.Now()
	if err := remote.Write(r, img, asAdmin()); err != nil {
		t.Fatalf("retry of the push through the balancer: %v", err)
	}
	t.Logf("retry succeeded in %v; new leader n%d", time.Since(start).Round(time.Millisecond), h.leader())
	var survivors []int
	for _, n := range h.live() {
		survivors = append(survivors, n.idx)
		checkPull(t, ref(t, h.host(n.idx), "e2e/failover:v1"), img)
	}
	checkPull(t, r, img)
	for _, d := range imageBlobs(t, img) {
		waitUntil(t, 10*time.Second, func() error {
			if got := h.onDisk(d); !slices.Equal(got, survivors) {
				return fmt.Errorf("blob %s on live disks %v, want %v", d, got, survivors)
			}
			return nil
		})
	}
}

// TestClusterRelayDiesMidUpload: the node in the middle of an upload's
// mirror chain (the first the uploading node sends to, which passes the
// bytes on to the third) crashes while the client is still sending. The
// upload and its manifest still succeed: the copy after commit goes to the
// third node, which makes W=2 with the uploading node, and both serve the
// blob intact.
func TestClusterRelayDiesMidUpload(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2})
	leader := h.leader()
	// The uploading node: a follower, so that the relay to crash can be
	// the other follower and Raft keeps its leader.
	up := (leader + 1) % 3
	var loc string
	var relay, last int
	for range 50 {
		code, hdr, body := doRequest(t, http.MethodPost, h.nodes[up].baseURL+"/v2/e2e/relay/blobs/uploads/", nil, nil)
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
		loc = resolve(t, h.nodes[up].baseURL, hdr.Get("Location"))
		// The chain is ranked over the node's own session ID, the part
		// of the session ID after the node ID.
		id := path.Base(strings.SplitN(loc, "?", 2)[0])
		local := strings.TrimPrefix(id, h.nodes[up].id+".")
		chain := slices.DeleteFunc(h.rank(digest.FromString(local)), func(i int) bool { return i == up })
		relay, last = chain[0], chain[1]
		if relay != leader {
			break
		}
		doRequest(t, http.MethodDelete, loc, nil, nil)
	}
	if relay == leader {
		t.Fatal("every session's chain started at the leader")
	}

	const half = 24 << 20
	blob := randomBytes(t, 2*half, 7)
	d := digest.FromBytes(blob)
	body := &pausingReader{data: blob, pauseAt: half, resume: make(chan struct{})}
	patchDone := make(chan error, 1)
	go func() {
		code, hdr, msg := doRequest(t, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}}, body)
		if code != http.StatusAccepted {
			patchDone <- fmt.Errorf("PATCH: %d %s", code, msg)
			return
		}
		loc = resolve(t, h.nodes[up].baseURL, hdr.Get("Location"))
		patchDone <- nil
	}()
	// Crash the relay once it has passed bytes on to the last node.
	waitUntil(t, 20*time.Second, func() error {
		if n := h.nodes[last].reg.blobs.OpenUploads(); n == 0 {
			return fmt.Errorf("node %d has no relayed session yet", last)
		}
		return nil
	})
	h.crash(relay)
	close(body.resume)
	if err := <-patchDone; err != nil {
		t.Fatal(err)
	}
	sep := map[bool]string{true: "&", false: "?"}[strings.Contains(loc, "?")]
	code, _, msg := doRequest(t, http.MethodPut, loc+sep+"digest="+d.String(), nil, nil)
	if code != http.StatusCreated {
		t.Fatalf("PUT after the relay died: %d %s", code, msg)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := digest.FromBytes(config)
	code, _, msg = doRequest(t, http.MethodPost, h.nodes[up].baseURL+"/v2/e2e/relay/blobs/uploads/?digest="+cd.String(), nil, bytes.NewReader(config))
	if code != http.StatusCreated {
		t.Fatalf("config POST: %d %s", code, msg)
	}
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, len(config), d, len(blob))
	code, _, msg = doRequest(t, http.MethodPut, h.nodes[up].baseURL+"/v2/e2e/relay/manifests/v1",
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, bytes.NewReader(manifest))
	if code != http.StatusCreated {
		t.Fatalf("manifest PUT after the relay died: %d %s", code, msg)
	}
	for _, i := range []int{up, last} {
		code, _, got := doRequest(t, http.MethodGet, h.nodes[i].baseURL+"/v2/e2e/relay/blobs/"+d.String(), nil, nil)
		if code != http.StatusOK || !bytes.Equal(got, blob) {
			t.Fatalf("GET blob from node %d: %d, %d bytes", i, code, len(got))
		}
	}
	waitUntil(t, 10*time.Second, func() error {
		got := h.onDisk(d)
		if !slices.Contains(got, up) || !slices.Contains(got, last) {
			return fmt.Errorf("blob on live disks %v, want nodes %d and %d", got, up, last)
		}
		return nil
	})
}

// pausingReader yields data, stopping after pauseAt bytes until resume is
// closed.
type pausingReader struct {
	data    []byte
	off     int
	pauseAt int
	resume  chan struct{}
}

func (r *pausingReader) Read(p []byte) (int, error) {
	if r.off == r.pauseAt {
		<-r.resume
	}
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.off < r.pauseAt {
		end = r.pauseAt
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

// TestClusterRepairAfterHolderDies: 4 nodes, R=2 W=2. A follower that is
// one of only two holders of some blobs crashes; the image still pulls
// through the balancer, and the leader's repair brings every blob back to 2
// live copies (on disk and in the FSM). The time it takes is logged. The
// victim then restarts from its data dir, rejoins, and serves the image.
func TestClusterRepairAfterHolderDies(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 4, replicas: 2, writeQuorum: 2})
	img := randomImage(t, 256<<10, 8)
	r := ref(t, h.lbHost(), "e2e/repair:v1")
	if err := remote.Write(r, img, asAdmin()); err != nil {
		t.Fatal(err)
	}
	blobs := imageBlobs(t, img)
	// Copies on nodes that are not owners (the writer's, a mirror's) are
	// trimmed and swept first: then every blob has exactly its 2 owners'.
	leader := h.leader()
	for _, d := range blobs {
		owners := h.owners(d, h.nodes, 2)
		waitUntil(t, 10*time.Second, func() error {
			if got := h.holders(leader, d); !slices.Equal(got, owners) {
				return fmt.Errorf("blob %s: FSM holders %v, want its owners %v", d, got, owners)
			}
			return nil
		})
	}
	h.sweepNow()
	// The victim: the follower that is one of the two holders of the most
	// blobs, so that its death leaves those blobs with one live copy.
	victim, most := -1, 0
	for _, n := range h.nodes {
		exposed := 0
		for _, d := range blobs {
			if disk := h.onDisk(d); len(disk) == 2 && slices.Contains(disk, n.idx) {
				exposed++
			}
		}
		if n.idx != leader && exposed > most {
			victim, most = n.idx, exposed
		}
	}
	if victim < 0 {
		t.Fatal("no follower is one of only two holders of any blob")
	}
	var lost []digest.Digest // blobs the victim held
	for _, d := range blobs {
		if slices.Contains(h.onDisk(d), victim) {
			lost = append(lost, d)
		}
	}
	h.crash(victim)
	died := time.Now()
	checkPull(t, r, img)
	t.Logf("pull through the balancer right after n%d died: ok (%v after the crash)", victim, time.Since(died).Round(time.Millisecond))
	waitUntil(t, 30*time.Second, func() error {
		for _, d := range blobs {
			disk := h.onDisk(d)
			if len(disk) < 2 {
				return fmt.Errorf("blob %s on live disks %v, want 2", d, disk)
			}
			var liveHolders []int
			for _, i := range h.holders(leader, d) {
				if i != victim {
					liveHolders = append(liveHolders, i)
				}
			}
			if len(liveHolders) < 2 {
				return fmt.Errorf("blob %s: live FSM holders %v, want 2", d, liveHolders)
			}
			for _, i := range liveHolders {
				if !slices.Contains(disk, i) {
					return fmt.Errorf("blob %s: FSM says n%d holds it, its disk does not", d, i)
				}
			}
		}
		return nil
	})
	t.Logf("repair: n%d died holding %d of %d blobs, %d of them left with one live copy; all back at 2 live copies %v after the crash",
		victim, len(lost), len(blobs), most, time.Since(died).Round(time.Millisecond))
	for _, n := range h.live() {
		checkPull(t, ref(t, h.host(n.idx), "e2e/repair:v1"), img)
	}
	// The victim comes back from its data dir and serves the image again.
	h.restart(victim)
	h.waitHealthy(15 * time.Second)
	checkPull(t, ref(t, h.host(victim), "e2e/repair:v1"), img)
}

// TestClusterFullRestart: 3 nodes; two images are pushed and a tag is
// moved; every node crashes and all restart from their data dirs on the
// same ports. Tags (including the moved one), manifests and blobs are all
// there, through the balancer and every node.
func TestClusterFullRestart(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 3})
	one, two := randomImage(t, 64<<10, 3), randomImage(t, 64<<10, 2)
	for _, p := range []struct {
		tag string
		img v1.Image
	}{{"one", one}, {"two", two}, {"latest", one}, {"latest", two}} {
		if err := remote.Write(ref(t, h.lbHost(), "e2e/restart:"+p.tag), p.img, asAdmin()); err != nil {
			t.Fatalf("push %s: %v", p.tag, err)
		}
	}
	for _, n := range h.nodes {
		h.crash(n.idx)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(h.nodes))
	for i, n := range h.nodes {
		wg.Go(func() { errs[i] = h.startNode(n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.waitHealthy(20 * time.Second)
	t.Logf("cluster healthy %v after the restart", time.Since(start).Round(time.Millisecond))
	hosts := []string{h.lbHost()}
	for i := range h.nodes {
		hosts = append(hosts, h.host(i))
	}
	for _, host := range hosts {
		repo, _ := name.NewRepository(host+"/e2e/restart", name.Insecure)
		tags, err := remote.List(repo, asAdmin())
		if err != nil {
			t.Fatalf("list tags on %s: %v", host, err)
		}
		slices.Sort(tags)
		if want := []string{"latest", "one", "two"}; !slices.Equal(tags, want) {
			t.Fatalf("tags on %s: %v, want %v", host, tags, want)
		}
		checkPull(t, ref(t, host, "e2e/restart:one"), one)
		checkPull(t, ref(t, host, "e2e/restart:two"), two)
		checkPull(t, ref(t, host, "e2e/restart:latest"), two)
	}
	// And the restarted cluster takes writes again.
	three := randomImage(t, 16<<10, 1)
	if err := remote.Write(ref(t, h.lbHost(), "e2e/restart:three"), three, asAdmin()); err != nil {
		t.Fatalf("push after restart: %v", err)
	}
	checkPull(t, ref(t, h.host(0), "e2e/restart:three"), three)
}
