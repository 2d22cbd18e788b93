package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"
)

// marshal encodes stored records deterministically (annotations are a map),
// so every replica writes the same bytes.
var marshal = proto.MarshalOptions{Deterministic: true}

// get returns a copy of the value of k, or ok == false if it is absent.
func get(r pebble.Reader, k []byte) (v []byte, ok bool, err error) {
	val, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %q: %w", k, err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), true, nil
}

func has(r pebble.Reader, k []byte) (bool, error) {
	_, ok, err := get(r, k)
	return ok, err
}

// getProto decodes the value of k into m; ok == false if k is absent.
func getProto(r pebble.Reader, k []byte, m proto.Message) (ok bool, err error) {
	v, ok, err := get(r, k)
	if err != nil || !ok {
		return false, err
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("decode %q: %w", k, err)
	}
	return true, nil
}

func getUint64(r pebble.Reader, k []byte) (uint64, error) {
	v, ok, err := get(r, k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read %q: value has %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func setProto(b *pebble.Batch, k []byte, m proto.Message) error {
	v, err := marshal.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return b.Set(k, v, nil)
}

// scan calls fn for each key in [lower, upper) in order until fn returns
// false. k and v are valid only during the call.
func scan(r pebble.Reader, lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("iterate %q: %w", lower, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate %q: %w", lower, err)
	}
	return nil
}

// scanPrefix is scan over every key starting with prefix.
func scanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) (bool, error)) error {
	return scan(r, prefix, prefixEnd(prefix), fn)
}

// count returns the number of keys starting with prefix.
func count(r pebble.Reader, prefix []byte) (int, error) {
	n := 0
	err := scanPrefix(r, prefix, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}
