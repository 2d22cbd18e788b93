package fsm

import (
	"encoding/binary"
	"strings"
)

// sep separates the parts of a composite key. Validated names cannot hold it.
const sep = "\x00"

// Key prefixes; see the package documentation for the full layout.
const (
	prefixNamespace  = "ns/"
	prefixRepository = "repo/"
	prefixTag        = "tag/"
	prefixManifest   = "man/"
	prefixReferrer   = "ref/"
	prefixBlob       = "blob/"
	prefixRequest    = "req/"
	prefixRequestLog = "reqlog/"
)

var (
	keyApplied      = []byte("m/applied")
	keyRequestCount = []byte("m/requests")
)

// key joins a prefix and parts with sep.
func key(prefix string, parts ...string) []byte {
	return []byte(prefix + strings.Join(parts, sep))
}

func namespaceKey(ns string) []byte        { return key(prefixNamespace, ns) }
func repositoryKey(repo string) []byte     { return key(prefixRepository, repo) }
func tagKey(repo, tag string) []byte       { return key(prefixTag, repo, tag) }
func tagPrefix(repo string) []byte         { return key(prefixTag, repo, "") }
func manifestKey(repo, dgst string) []byte { return key(prefixManifest, repo, dgst) }
func manifestPrefix(repo string) []byte    { return key(prefixManifest, repo, "") }
func blobKey(repo, dgst string) []byte     { return key(prefixBlob, repo, dgst) }
func blobPrefix(repo string) []byte        { return key(prefixBlob, repo, "") }
func requestKey(id string) []byte          { return key(prefixRequest, id) }
func referrerPrefix(repo, subject string) []byte {
	return key(prefixReferrer, repo, subject, "")
}

func referrerKey(repo, subject, dgst string) []byte {
	return key(prefixReferrer, repo, subject, dgst)
}

func requestLogKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixRequestLog), index)
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix. Every prefix used here ends in a byte below 0xff.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// after returns the smallest key greater than k.
func after(k []byte) []byte {
	return append(append([]byte(nil), k...), 0)
}

func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
