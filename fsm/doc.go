// Package fsm is wharf's replicated state machine: the registry metadata
// (namespaces, repositories, tags, manifests, referrers and blob links) kept in
// a Pebble database and changed only by applying Raft log entries.
//
// # Applying commands
//
// Every log entry carries one fsmpb.Command. FSM.Apply decodes it and looks up
// the handler for its operation in a dispatch table. A handler reads and
// writes through one indexed Pebble batch; the applied log index is written
// into the same batch, which is committed with sync. The state on disk is
// therefore always "all entries up to the applied index", and entries at or
// below it are skipped when Raft replays its log after a restart.
//
// Apply is deterministic: it depends only on the log entry and the stored
// state. The one clock it sees is Command.unix_nanos, stamped by the proposer.
// A handler reports the outcome of a command as an fsmpb.Result; a storage
// error is not an outcome but a fault, and Apply panics on it, because an FSM
// that skipped an entry would silently diverge from its peers.
//
// A command with a request ID is applied at most once: its Result is stored
// and a later command with the same ID is answered with it. The FSM keeps the
// results of the most recent requestHistory request IDs.
//
// # Namespaces
//
// The first path component of a repository name is its namespace, created
// with the first repository in it (by PutManifest or LinkBlob). A repository
// without a slash, such as "foo", makes the flat namespace "foo", which holds
// only that repository: "foo/bar" is then refused, and "foo" is refused once a
// repository such as "foo/x" exists. CheckRepositoryName applies the same
// rules without writing, so the API can refuse a push before bytes flow.
//
// # Key layout
//
// Names never contain a NUL byte (repository names, tags and digests are
// validated), so NUL separates the parts of a composite key and every prefix
// scan below is exact:
//
//	m/applied                                applied log index, 8 bytes big endian
//	m/requests                               number of remembered request IDs, 8 bytes big endian
//	ns/<namespace>                           fsmpb.Namespace
//	repo/<repository>                        fsmpb.Repository
//	tag/<repository>\x00<tag>                digest the tag points at
//	man/<repository>\x00<digest>             fsmpb.Manifest
//	ref/<repository>\x00<subject>\x00<digest> empty; the referrers index
//	blob/<repository>\x00<digest>            blob size, 8 bytes big endian
//	req/<request id>                         fsmpb.Result of the request
//	reqlog/<log index>                       request ID applied at that index (8 bytes big endian index)
//
// Cluster membership and blob placement (nodes.go, holders.go, gc.go):
//
//	node/<node id>                           fsmpb.Node; a registered cluster member
//	holder/<digest>                          fsmpb.BlobHolders; node IDs sorted, no duplicates
//	bref/<digest>\x00l\x00<repository>        empty; the repository links the blob
//	bref/<digest>\x00m\x00<repository>\x00<manifest>  empty; a stored manifest lists the blob
//	gc/<digest>                              unreferenced since (unix nanos, 8 bytes big endian)
//	collected/<digest>                       fsmpb.CollectedBlob; the nodes that must still delete their copy
//	m/blobrefs                               the reference index covers the whole state (set on new state; see ErrStateTooOld)
//	emptyrepo/<repository>                   holds no manifest since (unix nanos, 8 bytes big endian); emptyrepo.go
//	m/emptyrepos                             set once the empty-repository record covers the whole state
//	gcrun/last                               fsmpb.GCRun; the last collection run (gcstatus.go)
//	sweep/<node id>                          fsmpb.SweepSummary; the node's last sweep of its blob files
//
// Management of repositories, images and tags (manage.go; read by
// manageread.go in bounded pages):
//
//	readme/<repository>                      the repository's readme, as given
//	mtag/<repository>\x00<digest>\x00<tag>   empty; the tags of a manifest
//	mchild/<repository>\x00<child>\x00<index> empty; an index lists the child manifest
//	rix/<order><8-byte time><repository>     empty; repositories by creation (c), update (u) or push (p)
//	rixn/<namespace>\x00<order><8-byte time><repository>  empty; the same, per namespace
//	act/a/<8-byte seq>                       fsmpb.Activity; every change, in order
//	act/r/<repository>\x00<8-byte seq>       empty; a repository's activity
//	act/n/<namespace>\x00<8-byte seq>        empty; a namespace's activity
//	m/actseq                                 the last activity seq, 8 bytes big endian
//	m/manage                                 set once these records cover the whole state (migrate.go)
//
// Access control (access.go has the details):
//
//	user/<name>                              fsmpb.User
//	m/userseq                                last assigned User.id, 8 bytes big endian
//	group/<name>                             fsmpb.Group
//	member/<group>\x00<user>                 empty; the members of a group
//	memberof/<user>\x00<group>               empty; the groups of a user
//	grant/<ns>\x00<kind>\x00<subject>\x00<role>  fsmpb.Grant; <ns> empty for global roles
//	sgrant/<kind>\x00<subject>\x00<ns>\x00<role> empty; the grants of a subject
//	nsowner/<namespace>                      fsmpb.NamespaceOwner; the creator, irrevocable
//	nspublic/<namespace>                     empty; the namespace is public
//	repopublic/<repository>                  empty; the repository is public
//	token/<id>                               fsmpb.ApiToken
//	usertoken/<user>\x00<id>                 empty; the API tokens of a user
//	m/signingkeys                            fsmpb.SigningKeySet
//
// Remote registries (remote.go; first part of issue 14):
//
//	remote/<name>                            fsmpb.Remote; secrets sealed by the proposer, never in clear
//
// # Files and snapshots
//
// The FSM directory holds generations of the database, "db-000001",
// "db-000002", ..., and a CURRENT file naming the live one. FSM.Snapshot is a
// Pebble snapshot; its Persist streams a header (format version and applied
// index) and every key/value pair through zstd. Restore loads a stream into a
// new generation, then replaces CURRENT (write, fsync, rename, fsync) and
// swaps the open database; readers never see a half-restored state, and a
// crash at any moment leaves a CURRENT that names a complete database. Open
// removes generations that CURRENT does not name.
//
// Restore skips a snapshot whose applied index is not above the FSM's own:
// both describe the same log, so the FSM's state is already newer. That makes
// the restore Raft performs on every start cheap (it reads a header), while a
// database that is behind its snapshots (lost, or a crash in the middle of an
// InstallSnapshot) is still repaired.
package fsm
