package fsm

import (
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Apply applies a committed log entry and returns its *fsmpb.Result. Entries
// at or below the applied index were applied before a restart and are
// skipped; their Result is nil. Only LogCommand entries reach an FSM.
//
// A storage failure panics: the entry cannot be skipped, and retrying it later
// would apply entries out of order.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	h, err := f.acquire()
	if err != nil {
		panic(fmt.Sprintf("fsm: apply log entry %d: %v", l.Index, err))
	}
	defer h.release()
	res, err := f.apply(h.db, l.Index, l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: apply log entry %d: %v", l.Index, err))
	}
	if res == nil {
		return nil // a typed nil would hide "skipped" from callers
	}
	return res
}

// apply commits the effects of one entry and the new applied index in a
// single batch. The batch is not synced: the entry is in the Raft log,
// synced on a quorum before it was committed, and Raft replays the log
// after its latest snapshot at every start, so an FSM that a power cut
// left behind (Pebble recovers a prefix of its batches, each whole) is
// brought up to date by applying again the entries above its applied
// index. The sync would add one fsync to every write's commit path.
func (f *FSM) apply(db *pebble.DB, index uint64, data []byte) (*fsmpb.Result, error) {
	if index <= f.applied.Load() {
		return nil, nil
	}
	b := db.NewIndexedBatch()
	defer b.Close()
	res, err := f.execute(b, index, data)
	if err != nil {
		return nil, err
	}
	if err := b.Set(keyApplied, encodeUint64(index), nil); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	f.applied.Store(index)
	return res, nil
}

// execute decodes a command and runs it, answering a repeated request ID with
// the stored result.
func (f *FSM) execute(b *pebble.Batch, index uint64, data []byte) (*fsmpb.Result, error) {
	var cmd fsmpb.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		return invalid("decode command: %v", err), nil
	}
	if err := indexEmptyRepositories(b, cmd.GetUnixNanos()); err != nil {
		return nil, fmt.Errorf("index empty repositories: %w", err)
	}
	id := cmd.GetRequestId()
	if id != "" {
		res, ok, err := lookupRequest(b, id)
		if err != nil || ok {
			return res, err
		}
	}
	res, err := dispatch(b, &cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opName(&cmd), err)
	}
	if id != "" {
		if err := f.rememberRequest(b, index, id, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func lookupRequest(r pebble.Reader, id string) (*fsmpb.Result, bool, error) {
	var res fsmpb.Result
	ok, err := getProto(r, requestKey(id), &res)
	if err != nil || !ok {
		return nil, false, err
	}
	return &res, true, nil
}

// rememberRequest stores the result of request id, applied at index, and
// forgets the oldest requests beyond the history limit.
func (f *FSM) rememberRequest(b *pebble.Batch, index uint64, id string, res *fsmpb.Result) error {
	if err := setProto(b, requestKey(id), res); err != nil {
		return err
	}
	if err := b.Set(requestLogKey(index), []byte(id), nil); err != nil {
		return err
	}
	n, err := getUint64(b, keyRequestCount)
	if err != nil {
		return err
	}
	n++
	for n > f.requestHistory {
		if err := forgetOldestRequest(b); err != nil {
			return fmt.Errorf("prune request history: %w", err)
		}
		n--
	}
	return b.Set(keyRequestCount, encodeUint64(n), nil)
}

// forgetOldestRequest deletes the request applied at the lowest log index.
func forgetOldestRequest(b *pebble.Batch) error {
	var logKey []byte
	var id string
	err := scanPrefix(b, []byte(prefixRequestLog), func(k, v []byte) (bool, error) {
		logKey, id = append([]byte(nil), k...), string(v)
		return false, nil
	})
	if err != nil || logKey == nil {
		return err
	}
	if err := b.Delete(logKey, nil); err != nil {
		return err
	}
	return b.Delete(requestKey(id), nil)
}
