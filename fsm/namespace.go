package fsm

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// splitNamespace returns the namespace of repo and whether repo is a
// single-name repository, which makes a flat namespace of its own.
func splitNamespace(repo string) (ns string, flat bool) {
	ns, _, nested := strings.Cut(repo, "/")
	return ns, !nested
}

// namespaceConflict returns why repo may not be pushed to, or "" if it may.
// An existing repository never conflicts.
func namespaceConflict(r pebble.Reader, repo string) (string, error) {
	exists, err := has(r, repositoryKey(repo))
	if err != nil || exists {
		return "", err
	}
	return namespaceRule(r, repo)
}

// namespaceRule returns the namespace rule that creating repo would break,
// or "" if it breaks none.
func namespaceRule(r pebble.Reader, repo string) (string, error) {
	name, flat := splitNamespace(repo)
	var ns fsmpb.Namespace
	found, err := getProto(r, namespaceKey(name), &ns)
	if err != nil || !found {
		return "", err
	}
	switch {
	case ns.GetFlat():
		rest := strings.TrimPrefix(repo, name+"/")
		return fmt.Sprintf("namespace %q was created by the single-name repository %q and can hold no other repository; push to a name like %q or %q instead",
			name, name, name+"-"+rest, "otherns/"+rest), nil
	case flat:
		example, err := firstRepository(r, name+"/")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("namespace %q already holds repositories such as %q, so %q cannot also be a single-name repository; push to a name like %q instead",
			name, example, repo, name+"/"+repo), nil
	}
	return "", nil
}

// firstRepository returns the first repository whose name starts with prefix.
func firstRepository(r pebble.Reader, prefix string) (string, error) {
	var name string
	err := scanPrefix(r, key(prefixRepository, prefix), func(k, _ []byte) (bool, error) {
		name = strings.TrimPrefix(string(k), prefixRepository)
		return false, nil
	})
	return name, err
}

// ensureRepository creates repo and its namespace if they do not exist. A
// non-nil Result refuses the command.
func ensureRepository(b *pebble.Batch, repo string, now int64) (*fsmpb.Result, error) {
	exists, err := has(b, repositoryKey(repo))
	if err != nil || exists {
		return nil, err
	}
	msg, err := namespaceRule(b, repo)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		return conflict(msg), nil
	}
	name, flat := splitNamespace(repo)
	nsExists, err := has(b, namespaceKey(name))
	if err != nil {
		return nil, err
	}
	if !nsExists {
		ns := &fsmpb.Namespace{Name: name, Flat: flat, CreatedUnixNanos: now}
		if err := setProto(b, namespaceKey(name), ns); err != nil {
			return nil, err
		}
	}
	rec := &fsmpb.Repository{Name: repo, Namespace: name, CreatedUnixNanos: now, UpdatedUnixNanos: now}
	if err := indexRepository(b, nil, rec); err != nil {
		return nil, err
	}
	return nil, setProto(b, repositoryKey(repo), rec)
}

// CheckRepositoryName reports whether a push to repo would be refused: an
// error wrapping ErrInvalid for a malformed name, or ErrNamespaceConflict
// with the rule it breaks. It writes nothing.
func (f *FSM) CheckRepositoryName(repo string) error {
	if res := validateRepository(repo); res != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, res.GetMessage())
	}
	var msg string
	err := f.view(func(r pebble.Reader) (err error) {
		msg, err = namespaceConflict(r, repo)
		return err
	})
	if err != nil {
		return fmt.Errorf("check repository name %q: %w", repo, err)
	}
	if msg != "" {
		return fmt.Errorf("%w: %s", ErrNamespaceConflict, msg)
	}
	return nil
}
