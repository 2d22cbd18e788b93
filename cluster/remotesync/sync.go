// Package remotesync is the sync engine of mirrored repositories: it copies
// one repository of an upstream registry into one local repository,
// incrementally, with go-containerregistry as the upstream client.
//
// It knows nothing of Raft or HTTP handlers. The local side is the narrow
// Sink interface; the upstream is described by an Upstream (TransportFor
// and UpstreamFor build one from a remote registry's record). A sync lists
// the upstream tags page by page, keeps those the job's filter keeps,
// compares each with the local tag by a HEAD, and fetches only what
// changed: children before their index, blobs before their manifest, and
// the tagged manifest last, so that a killed job leaves no tag pointing at
// missing content and a rerun continues where it stopped.
package remotesync

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Sink is the local registry a sync writes into.
type Sink interface {
	// Tags returns repo's local tags and the manifest digests they point at (empty map if repo has none).
	Tags(ctx context.Context, repo string) (map[string]digest.Digest, error)
	// HasManifest reports whether repo holds manifest d.
	HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error)
	// HasBlob reports whether blob d is linked into repo.
	HasBlob(ctx context.Context, repo string, d digest.Digest) (bool, error)
	// LinkBlob links blob d into repo if the registry already holds it (another repository's copy); false if it does not.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) (bool, error)
	// PutBlob stores r, size bytes, as blob d of repo; it verifies the digest as it streams and returns once the blob is durable. A short or wrong stream returns an error and stores nothing.
	PutBlob(ctx context.Context, repo string, d digest.Digest, size int64, r io.Reader) error
	// PutManifest stores a manifest in repo under its upstream digest d and points tags at it (no tags: untagged). An index whose children were dropped by a platform filter is accepted (sparse).
	PutManifest(ctx context.Context, repo string, d digest.Digest, mediaType string, body []byte, tags []string) error
	// DeleteTag removes a tag of repo.
	DeleteTag(ctx context.Context, repo, tag string) error
}

// Upstream is where a sync reads from.
type Upstream struct {
	URL                string            // base URL, http or https, e.g. https://registry-1.docker.io
	Username, Password string            // empty: anonymous
	Transport          http.RoundTripper // TLS, CA, client cert, proxy already applied; nil = http.DefaultTransport clone
	RateLimit          float64           // requests per second for this node's share; 0 = unlimited
	Concurrency        int               // parallel blob downloads, default 4
	Timeout            time.Duration     // per request, until the response's headers
}

// Job is one repository to sync.
type Job struct {
	Repository       string   // local
	Upstream         string   // upstream repository path, already normalized (library/ added)
	Include, Exclude []string // tag globs (* and ?) or digests (sha256:..., sha512:...)
	Platforms        []string // "os/arch" or "os/arch/variant"; empty keeps every child
	MirrorMode       bool
}

const (
	// maxManifestBytes bounds a manifest read whole.
	maxManifestBytes = 4 << 20
	// blobAttempts bounds the GETs of one blob whose stream broke.
	blobAttempts = 4
	// maxTagErrors is how many tag errors a job keeps.
	maxTagErrors = 100
	// reportEvery is the longest time between two reports.
	reportEvery = 2 * time.Second
	// listPageSize is the n of each tags/list page.
	listPageSize = 1000
)

// Syncer runs jobs against one upstream.
type Syncer struct {
	up   Upstream
	sink Sink
	log  *slog.Logger
	base http.RoundTripper
	reg  name.Registry
	auth authn.Authenticator
	// retry is the transport's retry policy (tests shorten it).
	retry retryPolicy
}

// NewSyncer checks up and returns a Syncer writing into sink.
func NewSyncer(up Upstream, sink Sink, logger *slog.Logger) (*Syncer, error) {
	if sink == nil {
		return nil, errors.New("remotesync: no sink")
	}
	u, err := url.Parse(up.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("remotesync: upstream URL must be http(s)://host[:port]")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("remotesync: upstream URL must not have a path")
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("remotesync: upstream registry name: %w", err)
	}
	if up.Concurrency <= 0 {
		up.Concurrency = 4
	}
	base := up.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var auth authn.Authenticator = authn.Anonymous
	if up.Username != "" || up.Password != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: up.Username, Password: up.Password})
	}
	return &Syncer{up: up, sink: sink, log: logger, base: base, reg: reg, auth: auth, retry: defaultRetry}, nil
}

// scrub removes the upstream's password from a message.
func (s *Syncer) scrub(msg string) string {
	if s.up.Password != "" {
		msg = strings.ReplaceAll(msg, s.up.Password, "[redacted]")
	}
	return msg
}

// scrubErr is err with the password scrubbed from its message; it keeps
// wrapping ctx's errors so that callers can tell a cancellation.
func (s *Syncer) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	msg := s.scrub(err.Error())
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)
	}
	return errors.New(msg)
}

// cosignTag matches the tags cosign stores signatures, attestations and
// SBOMs under: sha256-<hex of the subject>.<kind>.
var cosignTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att|sbom)$`)

// run is the state of one Sync.
type run struct {
	s        *Syncer
	job      Job
	repo     name.Repository
	puller   *remote.Puller
	rt       *resilientTransport
	filter   *Filter
	plat     platformFilter
	local    map[string]digest.Digest
	blobSlot chan struct{}

	mu      sync.Mutex
	prog    *fsmpb.SyncProgress
	errs    []*fsmpb.SyncTagError
	fresh   []*fsmpb.SyncTagError
	synced  map[digest.Digest]bool // upstream manifests this job kept
	present map[string]bool        // upstream tags this job kept

	reportMu sync.Mutex
	report   func(*fsmpb.SyncProgress, []*fsmpb.SyncTagError)
	lastSent time.Time
}

// Sync runs job. report is called (not concurrently) after each tag and at
// least every 2 s with the progress so far and the tag errors that are new
// since the last call. It returns the final progress, all tag errors (the
// first 100), and an error only when the job as a whole failed (listing
// failed, ctx cancelled, upstream unreachable); per-tag failures go into
// tag errors and do not stop the others.
func (s *Syncer) Sync(ctx context.Context, job Job, report func(*fsmpb.SyncProgress, []*fsmpb.SyncTagError)) (*fsmpb.SyncProgress, []*fsmpb.SyncTagError, error) {
	if report == nil {
		report = func(*fsmpb.SyncProgress, []*fsmpb.SyncTagError) {}
	}
	r := &run{
		s: s, job: job, report: report,
		prog:     &fsmpb.SyncProgress{},
		synced:   map[digest.Digest]bool{},
		present:  map[string]bool{},
		blobSlot: make(chan struct{}, s.up.Concurrency),
	}
	fail := func(err error) (*fsmpb.SyncProgress, []*fsmpb.SyncTagError, error) {
		p, errs := r.final()
		return p, errs, err
	}
	var err error
	if r.filter, err = NewFilter(job.Include, job.Exclude); err != nil {
		return fail(fmt.Errorf("sync %s: %w", job.Repository, err))
	}
	if r.plat, err = parsePlatforms(job.Platforms); err != nil {
		return fail(fmt.Errorf("sync %s: %w", job.Repository, err))
	}
	var nopts []name.Option
	if s.reg.Scheme() == "http" {
		nopts = append(nopts, name.Insecure)
	}
	if r.repo, err = name.NewRepository(s.reg.RegistryStr()+"/"+job.Upstream, nopts...); err != nil {
		return fail(fmt.Errorf("sync %s: upstream repository %q: %w", job.Repository, job.Upstream, err))
	}
	r.rt = newResilientTransport(s.base, s.up.RateLimit, s.up.Timeout, s.retry)
	r.puller, err = remote.NewPuller(
		remote.WithTransport(r.rt),
		remote.WithAuth(s.auth),
		remote.WithContext(ctx),
		remote.WithJobs(s.up.Concurrency),
		remote.WithPageSize(listPageSize),
		remote.WithUserAgent("wharf-sync"),
		// Retries are resilientTransport's; go-containerregistry's own
		// would multiply them.
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	)
	if err != nil {
		return fail(fmt.Errorf("sync %s: upstream client: %w", job.Repository, err))
	}

	// Reports at least every reportEvery until the job ends.
	tickCtx, stopTicks := context.WithCancel(ctx)
	var ticks sync.WaitGroup
	ticks.Go(func() {
		t := time.NewTicker(reportEvery / 4)
		defer t.Stop()
		for {
			select {
			case <-tickCtx.Done():
				return
			case <-t.C:
				r.emit(false)
			}
		}
	})
	defer func() { stopTicks(); ticks.Wait() }()

	tags, err := r.list(ctx)
	if err != nil {
		return fail(fmt.Errorf("sync %s: list tags of %s: %w", job.Repository, r.repo, s.scrubErr(err)))
	}
	if r.local, err = s.sink.Tags(ctx, job.Repository); err != nil {
		return fail(fmt.Errorf("sync %s: local tags: %w", job.Repository, err))
	}

	var kept, cosign []string
	for _, t := range tags {
		switch {
		case r.filter.Keep(t):
			kept = append(kept, t)
		case cosignTag.MatchString(t):
			cosign = append(cosign, t)
		}
	}
	type item struct {
		tag string
		dg  digest.Digest // a digest include, when tag is empty
	}
	var items []item
	for _, t := range kept {
		items = append(items, item{tag: t})
	}
	for _, d := range r.filter.IncludeDigests() {
		items = append(items, item{dg: d})
	}
	r.mu.Lock()
	r.prog.TagsTotal = int64(len(items))
	r.mu.Unlock()

	do := func(it item) {
		if it.tag != "" {
			r.syncTag(ctx, it.tag)
		} else {
			r.syncDigest(ctx, it.dg)
		}
		r.emit(true)
	}
	r.pool(ctx, len(items), func(i int) { do(items[i]) })

	// Cosign's signatures, attestations and SBOMs of what the job kept.
	var extra []item
	r.mu.Lock()
	for _, t := range cosign {
		m := cosignTag.FindStringSubmatch(t)
		if r.synced[digest.Digest("sha256:"+m[1])] {
			extra = append(extra, item{tag: t})
		}
	}
	r.prog.TagsTotal += int64(len(extra))
	r.mu.Unlock()
	r.pool(ctx, len(extra), func(i int) { do(extra[i]) })

	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", job.Repository, err))
	}

	if job.MirrorMode {
		r.prune(ctx)
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("sync %s: %w", job.Repository, err))
		}
	}
	p, errs := r.final()
	s.log.InfoContext(ctx, "sync done", "repository", job.Repository, "upstream", r.repo.String(),
		"tags", p.TagsTotal, "unchanged", p.TagsUnchanged, "failed", p.TagsFailed, "deleted", p.TagsDeleted,
		"blobs", p.BlobsFetched, "bytes", p.BytesFetched, "requests", p.UpstreamRequests)
	return p, errs, nil
}

// list lists every upstream tag, page by page.
func (r *run) list(ctx context.Context) ([]string, error) {
	l, err := r.puller.Lister(ctx, r.repo)
	if err != nil {
		return nil, err
	}
	var tags []string
	seen := map[string]bool{}
	for l.HasNext() {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		tags = append(tags, page.Tags...)
		if page.Next != "" {
			if seen[page.Next] {
				return nil, errors.New("the upstream links a page it already sent")
			}
			seen[page.Next] = true
		}
	}
	return tags, nil
}

// pool runs f(0..n-1), Concurrency at a time, until ctx ends.
func (r *run) pool(ctx context.Context, n int, f func(int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.s.up.Concurrency, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
}

// tagError records a failed tag.
func (r *run) tagError(tag string, err error) {
	msg := r.s.scrub(err.Error())
	r.s.log.Warn("sync: tag failed", "repository", r.job.Repository, "tag", tag, "error", msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prog.TagsFailed++
	if len(r.errs) < maxTagErrors {
		e := &fsmpb.SyncTagError{Tag: tag, Error: msg}
		r.errs = append(r.errs, e)
		r.fresh = append(r.fresh, e)
	}
}

// done counts a handled tag.
func (r *run) done(unchanged bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prog.TagsDone++
	if unchanged {
		r.prog.TagsUnchanged++
	}
}

// snapshot copies the progress and takes the fresh errors.
func (r *run) snapshot() (*fsmpb.SyncProgress, []*fsmpb.SyncTagError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := proto.Clone(r.prog).(*fsmpb.SyncProgress)
	if r.rt != nil {
		p.UpstreamRequests = r.rt.sent.Load()
	}
	fresh := r.fresh
	r.fresh = nil
	return p, fresh
}

// emit reports the progress: always after a tag (force), else when the
// last report is reportEvery old.
func (r *run) emit(force bool) {
	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	if !force && time.Since(r.lastSent) < reportEvery {
		return
	}
	p, fresh := r.snapshot()
	r.lastSent = time.Now()
	r.report(p, fresh)
}

// final is the progress and every error kept, after a last report.
func (r *run) final() (*fsmpb.SyncProgress, []*fsmpb.SyncTagError) {
	r.emit(true)
	p, _ := r.snapshot()
	r.mu.Lock()
	defer r.mu.Unlock()
	return p, append([]*fsmpb.SyncTagError(nil), r.errs...)
}

// syncTag brings one upstream tag up to date.
func (r *run) syncTag(ctx context.Context, tag string) {
	desc, err := r.puller.Head(ctx, r.repo.Tag(tag))
	if err != nil {
		r.tagError(tag, fmt.Errorf("HEAD manifest: %w", err))
		r.markPresent(tag)
		r.done(false)
		return
	}
	d := digest.Digest(desc.Digest.String())
	if r.filter.ExcludesDigest(d) {
		r.done(false)
		return
	}
	r.markPresent(tag)
	r.markSynced(d)
	if r.local[tag] == d {
		r.done(true)
		return
	}
	if err := r.storeManifest(ctx, d, desc.Size, []string{tag}, 0); err != nil {
		r.tagError(tag, err)
		r.done(false)
		return
	}
	r.done(false)
}

// syncDigest fetches a manifest an include entry names by digest, untagged.
func (r *run) syncDigest(ctx context.Context, d digest.Digest) {
	r.markSynced(d)
	has, err := r.s.sink.HasManifest(ctx, r.job.Repository, d)
	if err == nil && has {
		r.done(true)
		return
	}
	if err == nil {
		err = r.storeManifest(ctx, d, -1, nil, 0)
	}
	if err != nil {
		r.tagError(d.String(), err)
	}
	r.done(false)
}

func (r *run) markPresent(tag string) {
	r.mu.Lock()
	r.present[tag] = true
	r.mu.Unlock()
}

func (r *run) markSynced(d digest.Digest) {
	r.mu.Lock()
	r.synced[d] = true
	r.mu.Unlock()
}

// storeManifest fetches manifest d (size bytes, -1: unknown) and what it
// references that the repository lacks, stores it under tags, then its
// referrers. depth counts the referrer hops that led here.
func (r *run) storeManifest(ctx context.Context, d digest.Digest, size int64, tags []string, depth int) error {
	if size > maxManifestBytes {
		return fmt.Errorf("manifest %s: %d bytes, more than the %d allowed", d, size, maxManifestBytes)
	}
	got, err := r.puller.Get(ctx, r.repo.Digest(d.String()))
	if err != nil {
		return fmt.Errorf("GET manifest %s: %w", d, err)
	}
	r.mu.Lock()
	r.prog.ManifestsFetched++
	r.mu.Unlock()
	body := got.Manifest
	if len(body) > maxManifestBytes {
		return fmt.Errorf("manifest %s: %d bytes, more than the %d allowed", d, len(body), maxManifestBytes)
	}
	if got := digest.FromBytes(body); d.Algorithm() == digest.SHA256 && got != d {
		return fmt.Errorf("manifest %s: upstream sent content of digest %s", d, got)
	}
	mt := got.MediaType
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(body)))
		if err != nil {
			return fmt.Errorf("manifest %s: parse index: %w", d, err)
		}
		for _, child := range idx.Manifests {
			if !r.plat.keep(child.Platform) {
				continue
			}
			cd := digest.Digest(child.Digest.String())
			r.markSynced(cd)
			has, err := r.s.sink.HasManifest(ctx, r.job.Repository, cd)
			if err != nil {
				return fmt.Errorf("manifest %s: local child %s: %w", d, cd, err)
			}
			if has {
				continue
			}
			if err := r.storeManifest(ctx, cd, child.Size, nil, depth); err != nil {
				return fmt.Errorf("index %s: child %s: %w", d, cd, err)
			}
		}
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return fmt.Errorf("manifest %s: schema 1 manifests are not supported", d)
	default:
		m, err := v1.ParseManifest(strings.NewReader(string(body)))
		if err != nil {
			return fmt.Errorf("manifest %s (%s): parse: %w", d, mt, err)
		}
		blobs := make([]v1.Descriptor, 0, len(m.Layers)+1)
		blobs = append(blobs, m.Config)
		for _, l := range m.Layers {
			if !l.MediaType.IsDistributable() || len(l.URLs) > 0 {
				continue // non-distributable: clients fetch it from its URLs
			}
			blobs = append(blobs, l)
		}
		if err := r.fetchBlobs(ctx, blobs); err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
	}
	// The referrers come before the manifest: a tag that points at it
	// means that its referrers are here too, so that a job killed in
	// between, whose successor skips the tag as unchanged, loses none.
	if depth < 2 {
		if err := r.referrers(ctx, d, depth); err != nil {
			return err
		}
	}
	if err := r.s.sink.PutManifest(ctx, r.job.Repository, d, string(mt), body, tags); err != nil {
		return fmt.Errorf("store manifest %s: %w", d, err)
	}
	return nil
}

// referrers fetches the OCI 1.1 referrers of manifest d, untagged. An
// upstream without the referrers API has none (go-containerregistry then
// reads the tag schema's fallback tag).
func (r *run) referrers(ctx context.Context, d digest.Digest, depth int) error {
	idx, err := remote.Referrers(r.repo.Digest(d.String()), remote.Reuse(r.puller), remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("list the referrers of %s: %w", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("the referrers of %s: %w", d, err)
	}
	for _, ref := range im.Manifests {
		rd := digest.Digest(ref.Digest.String())
		has, err := r.s.sink.HasManifest(ctx, r.job.Repository, rd)
		if err == nil && !has {
			err = r.storeManifest(ctx, rd, ref.Size, nil, depth+1)
		}
		if err != nil {
			return fmt.Errorf("referrer %s of %s: %w", rd, d, err)
		}
	}
	return nil
}

// fetchBlobs brings blobs into the repository, Concurrency at a time over
// the whole job.
func (r *run) fetchBlobs(ctx context.Context, blobs []v1.Descriptor) error {
	var wg sync.WaitGroup
	errs := make([]error, len(blobs))
	for i, b := range blobs {
		select {
		case r.blobSlot <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-r.blobSlot }()
			errs[i] = r.blob(ctx, digest.Digest(b.Digest.String()), b.Size)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// blob brings blob d into the repository: already linked, linked from
// another repository's copy, or streamed from upstream, up to blobAttempts
// times when the stream breaks.
func (r *run) blob(ctx context.Context, d digest.Digest, size int64) error {
	repo := r.job.Repository
	if has, err := r.s.sink.HasBlob(ctx, repo, d); err != nil {
		return fmt.Errorf("blob %s: local: %w", d, err)
	} else if has {
		return nil
	}
	if linked, err := r.s.sink.LinkBlob(ctx, repo, d, size); err != nil {
		return fmt.Errorf("blob %s: link: %w", d, err)
	} else if linked {
		return nil
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	var last error
	for attempt := 1; attempt <= blobAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		last = r.streamBlob(ctx, d, size)
		if last == nil {
			r.mu.Lock()
			r.prog.BlobsFetched++
			r.prog.BytesFetched += size
			r.mu.Unlock()
			return nil
		}
		r.s.log.Debug("sync: blob attempt failed", "digest", d.String(), "attempt", attempt, "error", r.s.scrub(last.Error()))
	}
	return fmt.Errorf("blob %s: %d attempts: %w", d, blobAttempts, last)
}

// streamBlob GETs blob d once and streams it into the sink, checked.
func (r *run) streamBlob(ctx context.Context, d digest.Digest, size int64) error {
	l, err := r.puller.Layer(ctx, r.repo.Digest(d.String()))
	if err != nil {
		return fmt.Errorf("GET blob: %w", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("GET blob: %w", err)
	}
	defer rc.Close()
	cr := &checkedReader{r: rc, want: d, size: size, h: d.Algorithm().Hash()}
	if err := r.s.sink.PutBlob(ctx, r.job.Repository, d, size, cr); err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	if !cr.ok {
		// The sink returned before the end: it did not see a whole stream.
		return errors.New("store blob: the sink did not read the whole blob")
	}
	return nil
}

// checkedReader passes a blob's bytes through, and turns its end into an
// error unless exactly size bytes of digest want went by.
type checkedReader struct {
	r    io.Reader
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
	ok   bool
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if c.size >= 0 && c.n > c.size {
		return n, fmt.Errorf("blob %s: upstream sent more than %d bytes", c.want, c.size)
	}
	if err == io.EOF {
		if c.size >= 0 && c.n != c.size {
			return n, fmt.Errorf("blob %s: stream ended after %d of %d bytes: %w", c.want, c.n, c.size, io.ErrUnexpectedEOF)
		}
		if got := digest.NewDigestFromBytes(c.want.Algorithm(), c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("blob %s: upstream sent content of digest %s", c.want, got)
		}
		c.ok = true
	}
	return n, err
}

// prune deletes the local tags the upstream no longer has among the kept
// ones.
func (r *run) prune(ctx context.Context) {
	r.mu.Lock()
	var gone []string
	for t := range r.local {
		if !r.present[t] {
			gone = append(gone, t)
		}
	}
	r.mu.Unlock()
	for _, t := range gone {
		if ctx.Err() != nil {
			return
		}
		if err := r.s.sink.DeleteTag(ctx, r.job.Repository, t); err != nil {
			r.tagError(t, fmt.Errorf("delete tag: %w", err))
			continue
		}
		r.mu.Lock()
		r.prog.TagsDeleted++
		r.mu.Unlock()
	}
}
