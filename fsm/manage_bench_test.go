package fsm

// Benchmarks of the listing goal of issue 13: list repositories with 10k
// repositories, list images and tags of a repository with 100k tags, list
// the activity of a repository with 100k events, p50 and p99 per page;
// goal p99 < 20 ms.
//
//	go test -run '^$' -bench 'BenchmarkList' -benchtime 2000x -timeout 20m ./fsm
//
// Each benchmark function builds its state once, before its sub-benchmarks,
// through FSM.Apply (one unsynced Pebble batch per entry), then flushes and
// compacts it so that pages read sstables, as in a state that has settled.
// Each iteration fetches one page of 100, walking the whole listing with
// its tokens and starting over at its end. Besides ns/op (the mean), each
// sub-benchmark reports the p50, p99 and max page latency in ms and the
// records per page; a filter that keeps few records gives short pages.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const benchPage = 100

// benchState is an FSM that a benchmark fills through Apply.
type benchState struct {
	*FSM
	tb    testing.TB
	index uint64
	now   int64
}

func openBench(tb testing.TB) *benchState {
	tb.Helper()
	f, err := Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return &benchState{FSM: f, tb: tb}
}

// apply applies each command as the next entry, stamped with the next
// millisecond, and fails on a result other than OK.
func (s *benchState) apply(cmds ...*fsmpb.Command) {
	s.tb.Helper()
	for _, cmd := range cmds {
		s.index++
		s.now += int64(time.Millisecond)
		cmd.UnixNanos, cmd.Actor, cmd.NodeId = s.now, "bench", "node-1"
		data, err := proto.Marshal(cmd)
		if err != nil {
			s.tb.Fatal(err)
		}
		res, _ := s.Apply(&raft.Log{Index: s.index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
		if res.GetCode() != codeOK {
			s.tb.Fatalf("apply %v: %v", cmd, res)
		}
	}
}

// settle flushes the memtables and compacts the whole key space.
func (s *benchState) settle() {
	s.tb.Helper()
	err := s.view(func(r pebble.Reader) error {
		db := r.(*pebble.DB)
		if err := db.Flush(); err != nil {
			return err
		}
		return db.Compact([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff}, true)
	})
	if err != nil {
		s.tb.Fatal(err)
	}
}

// done logs how long building the state took.
func (s *benchState) done(what string, start time.Time) {
	s.tb.Logf("setup: %s: %d entries applied, %v (with flush and compaction)", what, s.index, time.Since(start).Round(time.Millisecond))
}

// benchManifestContent is an image manifest of about 800 bytes, unique to id.
func benchManifestContent(id string) string {
	return fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":1469},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":3623807},`+
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":27145915},`+
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":1049},`+
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":131}],`+
		`"annotations":{"org.opencontainers.image.ref.name":"%s","org.opencontainers.image.source":"https://example.com/src"}}`,
		dgst(id+"/config"), dgst(id+"/l1"), dgst(id+"/l2"), dgst(id+"/l3"), dgst(id+"/l4"), id)
}

// benchPages runs b.N iterations of page, one page each, timing each page,
// and reports the latency percentiles and records per page. page returns
// how many records its page held.
func benchPages(b *testing.B, page func() (int, error)) {
	b.ReportAllocs()
	durations := make([]time.Duration, 0, b.N)
	records := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		n, err := page()
		durations = append(durations, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		records += n
	}
	b.StopTimer()
	slices.Sort(durations)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(durations, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(durations, 0.99)), "p99-ms")
	b.ReportMetric(ms(durations[len(durations)-1]), "max-ms")
	b.ReportMetric(float64(records)/float64(b.N), "records/page")
}

// percentile returns the nearest-rank p-quantile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

const (
	benchRepos      = 10_000
	benchNamespaces = 100
	// One repository in 97 is named "special": about 1%, spread over the
	// namespaces.
	benchSpecialEvery = 97
)

func benchRepoName(i int) string {
	kind := "app"
	if i%benchSpecialEvery == 0 {
		kind = "special"
	}
	return fmt.Sprintf("ns%02d/%s-%05d", i%benchNamespaces, kind, i)
}

// BenchmarkListRepositories lists 10,000 repositories in 100 namespaces,
// each with a manifest, a tag and a description.
func BenchmarkListRepositories(b *testing.B) {
	start := time.Now()
	s := openBench(b)
	for i := range benchRepos {
		repo := benchRepoName(i)
		s.apply(putManifest(repo, benchManifestContent(repo), "latest"))
	}
	// Descriptions, and pushes in an order other than creation's.
	for i := range benchRepos {
		repo := benchRepoName((i * 7919) % benchRepos)
		s.apply(setInfo(repo, ptr("The "+repo+" service: builds of its main branch, published by the CI pipeline of its team."), nil))
		if i%2 == 0 {
			s.apply(putManifest(repo, benchManifestContent(repo+"/2"), "latest"))
		}
	}
	s.settle()
	s.done("10k repositories", start)

	special := func(r *fsmpb.Repository) bool { return strings.Contains(r.GetName(), "/special-") }
	tests := []struct {
		name string
		q    RepositoryQuery
		// eachNamespace: the listing is of one namespace at a time, the
		// next one once it ends.
		eachNamespace bool
	}{
		{name: "by-name", q: RepositoryQuery{Order: ByName}},
		{name: "by-pushed-desc", q: RepositoryQuery{Order: ByPushed, Descending: true}},
		{name: "namespace-by-name", q: RepositoryQuery{Order: ByName}, eachNamespace: true},
		{name: "namespace-by-pushed-desc", q: RepositoryQuery{Order: ByPushed, Descending: true}, eachNamespace: true},
		{name: "keep-1pct-by-name", q: RepositoryQuery{Order: ByName, Keep: special}},
		{name: "keep-1pct-by-pushed-desc", q: RepositoryQuery{Order: ByPushed, Descending: true, Keep: special}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			q := tt.q
			q.Limit = benchPage
			ns := 0
			if tt.eachNamespace {
				q.Namespace = fmt.Sprintf("ns%02d", ns)
			}
			benchPages(b, func() (int, error) {
				page, err := s.ListRepositoryPage(q)
				q.Token = page.Next
				if page.Next == "" && tt.eachNamespace {
					ns = (ns + 1) % benchNamespaces
					q.Namespace = fmt.Sprintf("ns%02d", ns)
				}
				return len(page.Repositories), err
			})
		})
	}
}

// BenchmarkListImages lists the images and the tags of a repository with
// 100,000 tags, in two shapes: "wide", 1,000 manifests with 100 tags each,
// and "flat", 100,000 manifests with one tag each (a build per push).
func BenchmarkListImages(b *testing.B) {
	const (
		tags         = 100_000
		tagsPerWide  = 100
		wide, flat   = "big/wide", "big/flat"
		wideManifest = tags / tagsPerWide
	)
	start := time.Now()
	s := openBench(b)
	for i := range wideManifest {
		names := make([]string, tagsPerWide)
		for j := range names {
			names[j] = fmt.Sprintf("v%d.%d.%d", i/100, i%100, j)
		}
		s.apply(putManifest(wide, benchManifestContent(fmt.Sprint(i)), names...))
	}
	for i := range tags {
		s.apply(putManifest(flat, benchManifestContent(fmt.Sprintf("build-%d", i)), fmt.Sprintf("build-%06d", i)))
	}
	s.settle()
	s.done("100k tags on 1k manifests and 100k tags on 100k manifests", start)
	for _, repo := range []string{wide, flat} {
		if rec := wantBenchRecord(b, s.FSM, repo); rec.GetTagCount() != tags {
			b.Fatalf("%s holds %d tags, want %d", repo, rec.GetTagCount(), tags)
		}
	}

	for _, repo := range []string{wide, flat} {
		shape := strings.TrimPrefix(repo, "big/")
		b.Run(shape+"/images", func(b *testing.B) {
			q := ImageQuery{Repository: repo, Limit: benchPage}
			benchPages(b, func() (int, error) {
				page, err := s.ListImages(q)
				q.Token = page.Next
				return len(page.Images), err
			})
		})
		b.Run(shape+"/images-hide-children", func(b *testing.B) {
			q := ImageQuery{Repository: repo, Limit: benchPage, HideChildren: true}
			benchPages(b, func() (int, error) {
				page, err := s.ListImages(q)
				q.Token = page.Next
				return len(page.Images), err
			})
		})
		b.Run(shape+"/tags", func(b *testing.B) {
			last := ""
			benchPages(b, func() (int, error) {
				tags, err := s.ListTags(repo, last, benchPage)
				last = ""
				if len(tags) == benchPage {
					last = tags[len(tags)-1]
				}
				return len(tags), err
			})
		})
	}
}

func wantBenchRecord(b *testing.B, f *FSM, repo string) *fsmpb.Repository {
	b.Helper()
	rec, err := f.Repository(repo)
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

// BenchmarkListActivity lists the activity of a repository with about
// 100,000 events (manifests added and removed, tags added, moved and
// removed), newest first, with that of 100 other repositories interleaved;
// and the activity of its namespace and of the whole registry.
func BenchmarkListActivity(b *testing.B) {
	const (
		repo      = "big/app"
		manifests = 1_000
		tagsEach  = 40
		removed   = 450
	)
	start := time.Now()
	s := openBench(b)
	noise := func(i int) {
		other := fmt.Sprintf("other%02d/app", i%100)
		s.apply(putManifest(other, benchManifestContent(fmt.Sprintf("%s/%d", other, i)), "latest"))
	}
	// 1,000 manifests with 40 new tags each: 41,000 events.
	for i := range manifests {
		tags := make([]string, tagsEach)
		for j := range tags {
			tags[j] = fmt.Sprintf("t%05d", i*tagsEach+j)
		}
		s.apply(putManifest(repo, benchManifestContent(fmt.Sprintf("a%d", i)), tags...))
		noise(i)
	}
	// 1,000 more that take those tags over: 41,000 events.
	for i := range manifests {
		tags := make([]string, tagsEach)
		for j := range tags {
			tags[j] = fmt.Sprintf("t%05d", i*tagsEach+j)
		}
		s.apply(putManifest(repo, benchManifestContent(fmt.Sprintf("b%d", i)), tags...))
		noise(i)
	}
	// 450 of those deleted with their tags: 18,450 events.
	for i := range removed {
		s.apply(deleteManifest(repo, benchManifestContent(fmt.Sprintf("b%d", i))))
		noise(i)
	}
	s.settle()
	s.done("100k activity events", start)

	tests := []struct {
		name string
		q    ActivityQuery
	}{
		{"repository", ActivityQuery{Repository: repo}},
		{"namespace", ActivityQuery{Namespace: "big"}},
		{"registry", ActivityQuery{}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			q := tt.q
			q.Limit = benchPage
			benchPages(b, func() (int, error) {
				page, err := s.ListActivity(q)
				q.Before = page.Next
				return len(page.Activity), err
			})
		})
	}
}
