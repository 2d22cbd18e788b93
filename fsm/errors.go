package fsm

import (
	"errors"
	"fmt"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The FSM's refusals. A command the FSM refuses leaves the state as it
// was and answers a Result whose code names the reason; ResultError turns
// it into an error wrapping one of these, which callers match with
// errors.Is.
var (
	// ErrNotFound: the repository, tag, manifest, blob link, user, group,
	// token or node does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNamespaceConflict: a repository name breaks a namespace rule.
	// Errors wrapping it say which rule.
	ErrNamespaceConflict = errors.New("namespace conflict")
	// ErrInvalid: a command is malformed.
	ErrInvalid = errors.New("invalid command")
	// ErrAlreadyExists: the user, group, token or namespace claim exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the state does not allow the command.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrBlobCollected: a command referenced a blob that was
	// garbage-collected.
	ErrBlobCollected = errors.New("blob was garbage-collected")
	// ErrBlobNotCollectable: CollectBlob found the blob referenced, or not
	// unreferenced for its grace period.
	ErrBlobNotCollectable = errors.New("blob is not collectable")
	// ErrRepositoryNotEmpty: RemoveEmptyRepository found the repository
	// holding a manifest or a tag, or empty for less than its grace period.
	ErrRepositoryNotEmpty = errors.New("repository is not empty")
	// ErrMirroredRepository: a push into a mirrored repository that takes
	// none; only its sync jobs write into it.
	ErrMirroredRepository = errors.New("repository is mirrored")
)

// refusals maps each result code but OK to its error.
var refusals = map[fsmpb.ResultCode]error{
	fsmpb.ResultCode_RESULT_CODE_NOT_FOUND:            ErrNotFound,
	fsmpb.ResultCode_RESULT_CODE_NAMESPACE_CONFLICT:   ErrNamespaceConflict,
	fsmpb.ResultCode_RESULT_CODE_INVALID:              ErrInvalid,
	fsmpb.ResultCode_RESULT_CODE_ALREADY_EXISTS:       ErrAlreadyExists,
	fsmpb.ResultCode_RESULT_CODE_FAILED_PRECONDITION:  ErrFailedPrecondition,
	fsmpb.ResultCode_RESULT_CODE_BLOB_COLLECTED:       ErrBlobCollected,
	fsmpb.ResultCode_RESULT_CODE_BLOB_NOT_COLLECTABLE: ErrBlobNotCollectable,
	fsmpb.ResultCode_RESULT_CODE_REPOSITORY_NOT_EMPTY: ErrRepositoryNotEmpty,
	fsmpb.ResultCode_RESULT_CODE_MIRRORED:             ErrMirroredRepository,
}

// ResultError returns nil for a successful result, else an error wrapping
// the refusal its code names, with its message.
func ResultError(res *fsmpb.Result) error {
	if res.GetCode() == fsmpb.ResultCode_RESULT_CODE_OK {
		return nil
	}
	if sentinel, ok := refusals[res.GetCode()]; ok {
		return fmt.Errorf("%w: %s", sentinel, res.GetMessage())
	}
	return fmt.Errorf("command failed with %v: %s", res.GetCode(), res.GetMessage())
}

// Results of apply handlers.

func success() *fsmpb.Result { return &fsmpb.Result{Code: fsmpb.ResultCode_RESULT_CODE_OK} }

func refused(code fsmpb.ResultCode, format string, args ...any) *fsmpb.Result {
	return &fsmpb.Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_INVALID, format, args...)
}

func notFound(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_NOT_FOUND, format, args...)
}

func conflict(msg string) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_NAMESPACE_CONFLICT, "%s", msg)
}

func alreadyExists(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_ALREADY_EXISTS, format, args...)
}

func failedPrecondition(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_FAILED_PRECONDITION, format, args...)
}

func blobCollected(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_BLOB_COLLECTED, format, args...)
}

func notCollectable(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_BLOB_NOT_COLLECTABLE, format, args...)
}

func notEmpty(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_REPOSITORY_NOT_EMPTY, format, args...)
}

func mirrored(format string, args ...any) *fsmpb.Result {
	return refused(fsmpb.ResultCode_RESULT_CODE_MIRRORED, format, args...)
}
