package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The read API of management (manage.go): pages of repositories, images
// and activity. Each page reads a bounded range of keys from one snapshot
// of the state, whatever the state's size; a filter that keeps few records
// yields short pages, each with the token to go on.

// RepositoryOrder orders a page of repositories.
type RepositoryOrder int

// Repository orders.
const (
	ByName RepositoryOrder = iota
	ByCreated
	ByUpdated
	ByPushed
)

// DefaultScanFactor bounds the keys a page reads: this many per record
// the page may hold, unless the query says otherwise.
const DefaultScanFactor = 20

// TimeOrderScanFactor is DefaultScanFactor for repositories in a time
// order, where each index key costs a point read of the record it names
// (in name order the record is the key's value).
const TimeOrderScanFactor = 5

// RepositoryQuery asks for a page of repositories.
type RepositoryQuery struct {
	Order      RepositoryOrder
	Descending bool
	// Namespace, if set, keeps only that namespace's repositories.
	Namespace string
	// Keep, if set, keeps only the repositories it reports true for.
	Keep func(*fsmpb.Repository) bool
	// Limit is the most repositories on the page (at least 1).
	Limit int
	// Scan is the most index keys the page reads (default
	// DefaultScanFactor × Limit in name order, TimeOrderScanFactor × Limit
	// in the others).
	Scan int
	// Token is the previous page's Next; empty for the first page.
	Token string
}

// RepositoryPage is a page of repositories.
type RepositoryPage struct {
	Repositories []*fsmpb.Repository
	// Next continues the listing; empty once it is complete.
	Next string
}

// pageBounds are the keys a page may read, where it starts, and in which
// direction it goes.
type pageBounds struct {
	lower, upper []byte
	start        []byte // the token's key, exclusive; nil: from the edge
	descending   bool
}

// repositoryBounds returns the key range of q's order.
func repositoryBounds(q RepositoryQuery) (pageBounds, error) {
	var lower, upper []byte
	switch q.Order {
	case ByName:
		lower, upper = []byte(prefixRepository), prefixEnd([]byte(prefixRepository))
		if q.Namespace != "" {
			// The flat repository "ns" sorts just before "ns/...".
			lower, upper = repositoryKey(q.Namespace), prefixEnd(repositoryKey(q.Namespace+"/"))
		}
	case ByCreated, ByUpdated, ByPushed:
		order := map[RepositoryOrder]byte{ByCreated: orderCreated, ByUpdated: orderUpdated, ByPushed: orderPushed}[q.Order]
		prefix := repoIndexPrefix(order)
		if q.Namespace != "" {
			prefix = repoNsIndexPrefix(q.Namespace, order)
		}
		lower, upper = prefix, prefixEnd(prefix)
	default:
		return pageBounds{}, fmt.Errorf("%w: unknown repository order %d", ErrInvalid, q.Order)
	}
	start, err := decodeToken(q.Token, lower, upper)
	return pageBounds{lower: lower, upper: upper, start: start, descending: q.Descending}, err
}

// decodeToken returns the key a page token names, which must lie within
// [lower, upper).
func decodeToken(token string, lower, upper []byte) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	k, err := hex.DecodeString(token)
	if err != nil || bytes.Compare(k, lower) < 0 || bytes.Compare(k, upper) >= 0 {
		return nil, fmt.Errorf("%w: page token %q is not one this listing gave", ErrInvalid, token)
	}
	return k, nil
}

// walk visits the keys of b in its direction, after its start, until fn
// returns false or scan keys were read; it returns the last key read if
// the range may hold more.
func walk(r pebble.Reader, b pageBounds, scan int, fn func(k, v []byte) (bool, error)) ([]byte, error) {
	lower, upper := b.lower, b.upper
	if b.start != nil {
		if b.descending {
			upper = b.start
		} else {
			lower = after(b.start)
		}
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	first, next := it.First, it.Next
	if b.descending {
		first, next = it.Last, it.Prev
	}
	var last []byte
	read := 0
	for ok := first(); ok; ok = next() {
		read++
		last = append(last[:0], it.Key()...)
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		if !more || read >= scan {
			// More may follow, unless this was the range's last key.
			if b.descending && !it.Prev() || !b.descending && !it.Next() {
				return nil, it.Error()
			}
			return last, it.Error()
		}
	}
	return nil, it.Error()
}

// ListRepositoryPage returns a page of repositories.
func (f *FSM) ListRepositoryPage(q RepositoryQuery) (RepositoryPage, error) {
	q.Limit = max(q.Limit, 1)
	if q.Scan <= 0 {
		q.Scan = DefaultScanFactor * q.Limit
		if q.Order != ByName {
			q.Scan = TimeOrderScanFactor * q.Limit
		}
	}
	bounds, err := repositoryBounds(q)
	if err != nil {
		return RepositoryPage{}, err
	}
	var page RepositoryPage
	err = f.snapshot(func(r pebble.Reader) error {
		last, err := walk(r, bounds, q.Scan, func(k, v []byte) (bool, error) {
			if q.Order != ByName {
				k = k[len(bounds.lower):]
			}
			rec, err := repositoryOfIndexKey(r, q.Order, k, v)
			if err != nil || rec == nil {
				return err == nil, err
			}
			if (q.Namespace == "" || rec.GetNamespace() == q.Namespace) && (q.Keep == nil || q.Keep(rec)) {
				page.Repositories = append(page.Repositories, rec)
			}
			return len(page.Repositories) < q.Limit, nil
		})
		if last != nil {
			page.Next = hex.EncodeToString(last)
		}
		return err
	})
	if err != nil {
		return RepositoryPage{}, fmt.Errorf("list repositories: %w", err)
	}
	return page, nil
}

// repositoryOfIndexKey returns the repository record an index key names,
// given without its prefix (a time and the name; in name order the name of
// a repo/ key, with its value); nil if it is gone.
func repositoryOfIndexKey(r pebble.Reader, order RepositoryOrder, k, v []byte) (*fsmpb.Repository, error) {
	var rec fsmpb.Repository
	if order == ByName {
		return &rec, unmarshalRecord(k, v, &rec)
	}
	name := string(k[8:])
	found, err := getProto(r, repositoryKey(name), &rec)
	if err != nil || !found {
		return nil, err
	}
	return &rec, nil
}

// Readme returns the readme of repo ("" if it has none), or ErrNotFound
// for a repository that does not exist.
func (f *FSM) Readme(repo string) (string, error) {
	var readme []byte
	err := f.view(func(r pebble.Reader) error {
		if err := mustExist(r, repositoryKey(repo)); err != nil {
			return err
		}
		var err error
		readme, _, err = get(r, readmeKey(repo))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("readme of %q: %w", repo, err)
	}
	return string(readme), nil
}

// RepositoryUsage is the storage a repository's blob links reference.
type RepositoryUsage struct {
	// Bytes counts each blob linked into the repository once.
	Bytes int64
	// UniqueBytes counts those that no other repository references.
	UniqueBytes int64
	Blobs       int64
}

// RepositoryUsage returns what repo's blobs take, reading every blob link
// of repo and the references of each.
func (f *FSM) RepositoryUsage(repo string) (RepositoryUsage, error) {
	var u RepositoryUsage
	err := f.snapshot(func(r pebble.Reader) error {
		prefix := blobPrefix(repo)
		return scanPrefix(r, prefix, func(k, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("blob link %q: size has %d bytes", k, len(v))
			}
			size := int64(binary.BigEndian.Uint64(v))
			u.Blobs++
			u.Bytes += size
			shared, err := referencedElsewhere(r, string(k[len(prefix):]), repo)
			if err == nil && !shared {
				u.UniqueBytes += size
			}
			return err == nil, err
		})
	})
	if err != nil {
		return RepositoryUsage{}, fmt.Errorf("usage of %q: %w", repo, err)
	}
	return u, nil
}

// referencedElsewhere reports whether a repository other than repo links
// or lists blob dgst.
func referencedElsewhere(r pebble.Reader, dgst, repo string) (bool, error) {
	prefix := blobRefPrefix(dgst)
	other := false
	err := scanPrefix(r, prefix, func(k, _ []byte) (bool, error) {
		// l\x00<repo> or m\x00<repo>\x00<manifest>
		rest := string(k[len(prefix):])
		_, rest, _ = strings.Cut(rest, sep)
		name, _, _ := strings.Cut(rest, sep)
		other = name != repo
		return !other, nil
	})
	return other, err
}

// Signature artifact types: cosign's, Notation's and the sigstore bundle's.
var signatureTypes = map[string]bool{
	"application/vnd.dev.cosign.artifact.sig.v1+json":      true,
	"application/vnd.cncf.notary.signature":                true,
	"application/vnd.dev.sigstore.bundle.v0.3+json":        true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
}

// IsSignature reports whether a referrer of this artifact type is a
// signature.
func IsSignature(artifactType string) bool { return signatureTypes[artifactType] }

// Signed reports whether repo holds a signature: a cosign signature tag
// (sha256-<hex>.sig) or a referrer whose artifact type is a signature's.
func (f *FSM) Signed(repo string) (bool, error) {
	signed := false
	err := f.snapshot(func(r pebble.Reader) error {
		err := scanPrefix(r, key(prefixTag, repo, "sha256-"), func(k, _ []byte) (bool, error) {
			signed = strings.HasSuffix(string(k), ".sig")
			return !signed, nil
		})
		if err != nil || signed {
			return err
		}
		return scanPrefix(r, key(prefixReferrer, repo, ""), func(k, _ []byte) (bool, error) {
			dgst := k[bytes.LastIndexByte(k, 0)+1:]
			var m fsmpb.Manifest
			found, err := getProto(r, manifestKey(repo, string(dgst)), &m)
			signed = found && IsSignature(m.GetArtifactType())
			return !signed, err
		})
	})
	if err != nil {
		return false, fmt.Errorf("signatures of %q: %w", repo, err)
	}
	return signed, nil
}

// ImageQuery asks for a page of a repository's manifests, in digest order.
type ImageQuery struct {
	Repository string
	// DigestPrefix, if set, keeps only digests that start with it.
	DigestPrefix string
	// HideChildren leaves out the manifests an index of the repository
	// lists.
	HideChildren bool
	// Keep, if set, keeps only the images it reports true for.
	Keep  func(*Image) bool
	Limit int
	// Scan is the most manifests the page reads (default
	// DefaultScanFactor × Limit).
	Scan  int
	Token string
}

// Image is a manifest of a repository and what points at it.
type Image struct {
	Manifest *fsmpb.Manifest
	Tags     []string
	// Child: an index of the repository lists it.
	Child bool
	// Referrers are the manifests whose subject it is.
	Referrers []*fsmpb.Manifest
}

// ImagePage is a page of images.
type ImagePage struct {
	Images []*Image
	Next   string
}

// ListImages returns a page of repo's images, or ErrNotFound for a
// repository that does not exist.
func (f *FSM) ListImages(q ImageQuery) (ImagePage, error) {
	q.Limit = max(q.Limit, 1)
	if q.Scan <= 0 {
		q.Scan = DefaultScanFactor * q.Limit
	}
	prefix := manifestPrefix(q.Repository)
	lower := append(bytes.Clone(prefix), q.DigestPrefix...)
	upper := prefixEnd(prefix)
	if q.DigestPrefix != "" {
		upper = prefixEnd(lower)
	}
	start, err := decodeToken(q.Token, lower, upper)
	if err != nil {
		return ImagePage{}, err
	}
	var page ImagePage
	err = f.snapshot(func(r pebble.Reader) error {
		if err := mustExist(r, repositoryKey(q.Repository)); err != nil {
			return err
		}
		ir, err := newImageReader(r, q.Repository)
		if err != nil {
			return err
		}
		defer ir.close()
		last, err := walk(r, pageBounds{lower: lower, upper: upper, start: start}, q.Scan, func(k, v []byte) (bool, error) {
			img, err := ir.read(k, v)
			if err != nil {
				return false, err
			}
			if (!q.HideChildren || !img.Child) && (q.Keep == nil || q.Keep(img)) {
				page.Images = append(page.Images, img)
			}
			return len(page.Images) < q.Limit, nil
		})
		if last != nil {
			page.Next = hex.EncodeToString(last)
		}
		return err
	})
	if err != nil {
		return ImagePage{}, fmt.Errorf("list images of %q: %w", q.Repository, err)
	}
	return page, nil
}

// Image returns manifest dgst of repo with its tags, referrers and whether
// it is a child, or ErrNotFound.
func (f *FSM) Image(repo, dgst string) (*Image, error) {
	var img *Image
	err := f.snapshot(func(r pebble.Reader) error {
		v, found, err := get(r, manifestKey(repo, dgst))
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound // the error below names the image
		}
		ir, err := newImageReader(r, repo)
		if err != nil {
			return err
		}
		defer ir.close()
		img, err = ir.read(manifestKey(repo, dgst), v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image %s of %q: %w", dgst, repo, err)
	}
	return img, nil
}

// imageReader reads images of one repository with one iterator per index
// (tags, children, referrers) for a whole page, seeking each to the next
// manifest instead of opening iterators per image.
type imageReader struct {
	r                    pebble.Reader
	repo                 string
	tags, children, refs *pebble.Iterator
}

func newImageReader(r pebble.Reader, repo string) (*imageReader, error) {
	ir := &imageReader{r: r, repo: repo}
	for _, x := range []struct {
		it     **pebble.Iterator
		prefix []byte
	}{
		{&ir.tags, key(prefixManTag, repo, "")},
		{&ir.children, key(prefixManChild, repo, "")},
		{&ir.refs, key(prefixReferrer, repo, "")},
	} {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: x.prefix, UpperBound: prefixEnd(x.prefix)})
		if err != nil {
			ir.close()
			return nil, err
		}
		*x.it = it
	}
	return ir, nil
}

func (ir *imageReader) close() {
	for _, it := range []*pebble.Iterator{ir.tags, ir.children, ir.refs} {
		if it != nil {
			it.Close()
		}
	}
}

// seekSuffixes returns the rest of each key of it that starts with prefix,
// at most max of them (0: all).
func seekSuffixes(it *pebble.Iterator, prefix []byte, max int) ([]string, error) {
	var out []string
	for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix) && (max <= 0 || len(out) < max); ok = it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Error()
}

// read decodes the manifest record k, v and adds what points at it.
func (ir *imageReader) read(k, v []byte) (*Image, error) {
	var m fsmpb.Manifest
	if err := unmarshalRecord(k, v, &m); err != nil {
		return nil, err
	}
	img := &Image{Manifest: &m}
	var err error
	if img.Tags, err = seekSuffixes(ir.tags, manTagPrefix(ir.repo, m.GetDigest()), 0); err != nil {
		return nil, err
	}
	parents, err := seekSuffixes(ir.children, manChildPrefix(ir.repo, m.GetDigest()), 1)
	if err != nil {
		return nil, err
	}
	img.Child = len(parents) > 0
	refs, err := seekSuffixes(ir.refs, referrerPrefix(ir.repo, m.GetDigest()), 0)
	if err != nil {
		return nil, err
	}
	for _, d := range refs {
		var ref fsmpb.Manifest
		found, err := getProto(ir.r, manifestKey(ir.repo, d), &ref)
		if err != nil {
			return nil, err
		}
		if found {
			img.Referrers = append(img.Referrers, &ref)
		}
	}
	return img, nil
}

// ActivityQuery asks for a page of activity, newest first: a repository's,
// a namespace's, or (both empty) the whole registry's.
type ActivityQuery struct {
	Repository string
	Namespace  string
	// Before, if not 0, starts the page below this seq: the previous
	// page's Next.
	Before uint64
	Limit  int
}

// ActivityPage is a page of activity.
type ActivityPage struct {
	Activity []*fsmpb.Activity
	// Next is the Before of the next page; 0 once the listing is complete.
	Next uint64
}

// ListActivity returns a page of activity.
func (f *FSM) ListActivity(q ActivityQuery) (ActivityPage, error) {
	q.Limit = max(q.Limit, 1)
	if q.Repository != "" && q.Namespace != "" {
		return ActivityPage{}, fmt.Errorf("%w: ask for a repository's or a namespace's activity, not both", ErrInvalid)
	}
	prefix := []byte(prefixActAll)
	switch {
	case q.Repository != "":
		prefix = repoActivityPrefix(q.Repository)
	case q.Namespace != "":
		prefix = nsActivityPrefix(q.Namespace)
	}
	bounds := pageBounds{lower: prefix, upper: prefixEnd(prefix), descending: true}
	if q.Before != 0 {
		bounds.start = binary.BigEndian.AppendUint64(bytes.Clone(prefix), q.Before)
	}
	var page ActivityPage
	err := f.snapshot(func(r pebble.Reader) error {
		last, err := walk(r, bounds, q.Limit, func(k, v []byte) (bool, error) {
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			var a fsmpb.Activity
			if len(prefix) == len(prefixActAll) {
				if err := unmarshalRecord(k, v, &a); err != nil {
					return false, err
				}
			} else if _, err := getProto(r, activityKey(seq), &a); err != nil {
				return false, err
			}
			page.Activity = append(page.Activity, &a)
			return true, nil
		})
		if last != nil {
			page.Next = binary.BigEndian.Uint64(last[len(last)-8:])
		}
		return err
	})
	if err != nil {
		return ActivityPage{}, fmt.Errorf("list activity: %w", err)
	}
	return page, nil
}

// ListNamespaces returns up to n namespaces after last, in name order:
// those holding repositories and those only claimed by their creator.
func (f *FSM) ListNamespaces(last string, n int) ([]string, error) {
	var names []string
	err := f.snapshot(func(r pebble.Reader) error {
		made, err := listNames(r, []byte(prefixNamespace), last, n)
		if err != nil {
			return err
		}
		claimed, err := listNames(r, []byte(prefixNamespaceOwn), last, n)
		if err != nil {
			return err
		}
		names = mergeSorted(made, claimed, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return names, nil
}

// NamespaceKnown reports whether namespace ns holds repositories or was
// claimed by its creator.
func (f *FSM) NamespaceKnown(ns string) (bool, error) {
	var known bool
	err := f.view(func(r pebble.Reader) (err error) {
		known, err = namespaceKnown(r, ns)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("namespace %q: %w", ns, err)
	}
	return known, nil
}

// NamespacePublic reports whether namespace ns is public, all its
// repositories with it.
func (f *FSM) NamespacePublic(ns string) (bool, error) {
	var public bool
	err := f.view(func(r pebble.Reader) (err error) {
		public, err = has(r, namespacePublicKey(ns))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("visibility of namespace %q: %w", ns, err)
	}
	return public, nil
}

// mergeSorted merges two sorted lists without duplicates, up to n names
// (n <= 0: all).
func mergeSorted(a, b []string, n int) []string {
	out := make([]string, 0, len(a)+len(b))
	for (len(a) > 0 || len(b) > 0) && (n <= 0 || len(out) < n) {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}

// snapshot runs fn on a consistent snapshot of the state.
func (f *FSM) snapshot(fn func(r pebble.Reader) error) error {
	return f.view(func(r pebble.Reader) error {
		db, ok := r.(*pebble.DB)
		if !ok {
			return fn(r)
		}
		snap := db.NewSnapshot()
		defer snap.Close()
		return fn(snap)
	})
}
