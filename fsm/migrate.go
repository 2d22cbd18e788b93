package fsm

import (
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// keyManagementIndexed marks state whose management records (manage.go:
// the mtag/, mchild/ and rix/ indexes and the repositories' counts) cover
// every repository, as the commands keep them.
var keyManagementIndexed = []byte("m/manage")

// migrateBatchKeys is how many keys one batch of a migration writes.
const migrateBatchKeys = 10_000

// keyNamespaceOrderIndexed marks state whose rixn/ index (repositories of
// a namespace in time order) covers every repository; state indexed before
// rixn/ existed has m/manage without it.
var keyNamespaceOrderIndexed = []byte("m/manage-rixn")

// indexManagement builds the management records of state written before
// they existed, and marks new state as having them. It runs when the
// database is opened or restored, before any command is applied, a
// repository at a time in batches of bounded size; what it writes is a
// function of the state alone, so every node derives the same records.
func indexManagement(db *pebble.DB, applied uint64) error {
	managed, err := has(db, keyManagementIndexed)
	if err != nil {
		return err
	}
	byNamespace, err := has(db, keyNamespaceOrderIndexed)
	if err != nil {
		return err
	}
	switch {
	case managed && byNamespace:
		return nil
	case applied > 0 && !managed:
		err = indexRepositories(db, indexRepositoryRecords)
	case applied > 0:
		err = indexRepositories(db, indexRepositoryNamespace)
	}
	if err != nil {
		return fmt.Errorf("index repositories: %w", err)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(keyManagementIndexed, []byte{1}, nil); err != nil {
		return err
	}
	if err := b.Set(keyNamespaceOrderIndexed, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// indexRepositoryNamespace writes into b repo's rixn/ keys, from its
// record.
func indexRepositoryNamespace(db *pebble.DB, b *pebble.Batch, repo string) error {
	var rec fsmpb.Repository
	if _, err := getProto(db, repositoryKey(repo), &rec); err != nil {
		return err
	}
	for order, nanos := range repoTimes(&rec) {
		if err := b.Set(repoNsIndexKey(rec.GetNamespace(), order, nanos, repo), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// indexRepositories runs index for every repository of db, committing its
// writes in batches of bounded size.
func indexRepositories(db *pebble.DB, index func(*pebble.DB, *pebble.Batch, string) error) error {
	var repos []string
	err := scanPrefix(db, []byte(prefixRepository), func(k, _ []byte) (bool, error) {
		repos = append(repos, string(k[len(prefixRepository):]))
		return true, nil
	})
	if err != nil {
		return err
	}
	b := db.NewBatch()
	defer func() { b.Close() }()
	for _, repo := range repos {
		if err := index(db, b, repo); err != nil {
			return fmt.Errorf("%s: %w", repo, err)
		}
		if b.Count() >= migrateBatchKeys {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	return b.Commit(pebble.Sync)
}

// indexRepositoryRecords writes into b repo's tag and child indexes, its
// counts and its rix/ keys, from what db holds.
func indexRepositoryRecords(db *pebble.DB, b *pebble.Batch, repo string) error {
	var rec fsmpb.Repository
	if _, err := getProto(db, repositoryKey(repo), &rec); err != nil {
		return err
	}
	rec.TagCount, rec.ManifestCount = 0, 0
	err := scanPrefix(db, tagPrefix(repo), func(k, v []byte) (bool, error) {
		rec.TagCount++
		return true, b.Set(manTagKey(repo, string(v), string(k[len(tagPrefix(repo)):])), nil, nil)
	})
	if err != nil {
		return err
	}
	err = scanPrefix(db, manifestPrefix(repo), func(k, v []byte) (bool, error) {
		var m fsmpb.Manifest
		if err := unmarshalRecord(k, v, &m); err != nil {
			return false, err
		}
		rec.ManifestCount++
		rec.PushedUnixNanos = max(rec.PushedUnixNanos, m.GetCreatedUnixNanos())
		for _, child := range uniqueBlobs(m.GetManifests()) {
			if err := b.Set(manChildKey(repo, child, m.GetDigest()), nil, nil); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	readme, _, err := get(db, readmeKey(repo))
	if err != nil {
		return err
	}
	rec.ReadmeBytes = int64(len(readme))
	rec.UpdatedUnixNanos = max(rec.GetCreatedUnixNanos(), rec.GetPushedUnixNanos())
	if err := indexRepository(b, nil, &rec); err != nil {
		return err
	}
	return setProto(b, repositoryKey(repo), &rec)
}
