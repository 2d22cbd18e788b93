// Package blobstore is wharf's content-addressed blob storage on the local
// filesystem.
//
// # Layout
//
// Everything lives under Config.Root:
//
//	blobs/<alg>/<first two hex digits>/<hex>   a stored blob, e.g. blobs/sha256/ab/ab12…
//	uploads/<id>.data                           bytes received so far by upload session <id>
//	uploads/<id>.owner                          what the session was started for (NewUploadFor), if anything
//
// <alg> is sha256 or sha512. Upload IDs are 26 lowercase base32 characters
// (128 random bits), so they are URL-safe, unguessable and cannot name a path
// outside uploads/.
//
// # Crash safety
//
// Nothing is ever written in place under blobs/. A blob is only created by
// rename(2) of a session's data file after that file has been verified
// against its digest and fsynced, and the directory that receives it is then
// fsynced too. After a crash, a blob's final path therefore either holds the
// whole verified blob or does not exist; partial data only lives under
// uploads/. Open removes what a crash can leave there (owner files without
// a data file, anything else that is not a session) and keeps the sessions
// that still have data, because clients can resume them; it moves sessions
// of the earlier layout, a directory per session, to this one. PurgeUploads
// removes idle sessions.
//
// # Upload sessions
//
// An Upload handle owns its session from NewUpload or OpenUpload until Close,
// Commit or Cancel; OpenUpload of a session that another handle owns waits
// for it, so the requests of one session never interleave. The methods of
// one handle are serialized as well.
//
// # Streaming
//
// Uploads are hashed while they stream, through a fixed pair of buffers: one
// chunk is hashed while it is written and the next one is read, so memory use
// does not grow with blob size and each byte is hashed exactly once. On
// Linux, writeback of each chunk starts as soon as it is written, so the
// fsync at commit has little left to flush, and chunks more than
// cachedWindow behind the end are dropped from the page cache once on disk
// (the rest at commit), so a large push neither floods the cache nor pays
// for fresh pages; blobs up to cachedWindow stay cached. The running hash of a session
// lives in memory between requests; after a restart, or when a commit asks
// for another algorithm, Commit re-reads the data file instead.
//
// # Disk space
//
// A Store given a Space (Config.Space) asks it before an upload session
// starts, before an append reads its body, and before every chunk it
// writes, so that a disk that runs short refuses new bytes instead of
// filling up; the bytes written before a refused chunk stay in the session.
// The Space hears of every error from a write or a commit, so that an
// ENOSPC is noticed at once.
package blobstore
