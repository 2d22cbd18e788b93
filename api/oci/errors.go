package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// ErrorCode is the code field of an OCI error.
type ErrorCode string

// Error codes of the OCI distribution specification, and the few others
// this package answers with.
const (
	CodeBlobUnknown         ErrorCode = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   ErrorCode = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   ErrorCode = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       ErrorCode = "DIGEST_INVALID"
	CodeManifestBlobUnknown ErrorCode = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     ErrorCode = "MANIFEST_INVALID"
	CodeManifestUnknown     ErrorCode = "MANIFEST_UNKNOWN"
	CodeNameInvalid         ErrorCode = "NAME_INVALID"
	CodeNameUnknown         ErrorCode = "NAME_UNKNOWN"
	CodeSizeInvalid         ErrorCode = "SIZE_INVALID"
	CodeUnauthorized        ErrorCode = "UNAUTHORIZED"
	CodeDenied              ErrorCode = "DENIED"
	CodeUnsupported         ErrorCode = "UNSUPPORTED"
	CodeTooManyRequests     ErrorCode = "TOO_MANY_REQUESTS"

	// CodeTagInvalid reports a malformed tag (a Docker registry code).
	CodeTagInvalid ErrorCode = "TAG_INVALID"
	// CodePaginationNumberInvalid reports a bad n parameter (a Docker registry code).
	CodePaginationNumberInvalid ErrorCode = "PAGINATION_NUMBER_INVALID"
	// CodeUnavailable reports that the cluster cannot commit writes right now.
	CodeUnavailable ErrorCode = "UNAVAILABLE"
	// CodeInsufficientStorage reports that the node's disk has no room for
	// the write (507 Insufficient Storage); deletions still work.
	CodeInsufficientStorage ErrorCode = "INSUFFICIENT_STORAGE"
	// CodeUnknown reports an internal failure; details are in the server log.
	CodeUnknown ErrorCode = "UNKNOWN"
)

// apiError is an error a handler answers the client with. It may wrap the
// error that caused it, which is logged but not shown to the client.
type apiError struct {
	status  int
	code    ErrorCode
	message string
	detail  any
	cause   error
	// challenge is the WWW-Authenticate value of a 401.
	challenge string
	// retryAfter is the Retry-After value, in seconds.
	retryAfter string
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.code, e.message)
}

func (e *apiError) Unwrap() error { return e.cause }

// newError returns an apiError with a formatted message.
func newError(status int, code ErrorCode, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// withDetail sets the error's detail field.
func (e *apiError) withDetail(detail any) *apiError {
	e.detail = detail
	return e
}

// withCause records the underlying error for the log.
func (e *apiError) withCause(err error) *apiError {
	e.cause = err
	return e
}

// errorEnvelope is the JSON body of an error response.
type errorEnvelope struct {
	Errors []errorBody `json:"errors"`
}

type errorBody struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Detail  any       `json:"detail,omitempty"`
}

// classify turns any error a handler returned into the apiErrors to answer
// with. errors.Join of several apiErrors yields all of them; the first one's
// status is used for the response.
func classify(err error) []*apiError {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*apiError
		for _, e := range joined.Unwrap() {
			out = append(out, classify(e)...)
		}
		if len(out) > 0 {
			return out
		}
	}
	if e, ok := errors.AsType[*apiError](err); ok {
		return []*apiError{e}
	}
	return []*apiError{classifyCause(err)}
}

// classifyCause maps the sentinel errors of the packages below the API to
// OCI errors. It is the fallback for errors a handler did not translate.
func classifyCause(err error) *apiError {
	switch {
	case diskspace.IsFull(err):
		return errInsufficientStorage(err)
	case errors.Is(err, cluster.ErrNoQuorum):
		return newError(http.StatusServiceUnavailable, CodeUnavailable,
			"the cluster has no quorum, so the change could not be committed; retry later").withCause(err)
	case errors.Is(err, fsm.ErrNamespaceConflict):
		return newError(http.StatusBadRequest, CodeNameInvalid,
			"repository name refused by a namespace rule: %v", err).withCause(err)
	case errors.Is(err, fsm.ErrMirroredRepository):
		return errMirrored(err)
	case errors.Is(err, fsm.ErrInvalid):
		return newError(http.StatusBadRequest, CodeUnsupported,
			"the registry refused the request as malformed: %v", err).withCause(err)
	case errors.Is(err, blobstore.ErrUploadUnknown):
		return newError(http.StatusNotFound, CodeBlobUploadUnknown,
			"upload session not found: it was completed, cancelled or expired; start a new upload").withCause(err)
	case errors.Is(err, blobstore.ErrBlobUnknown):
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob not found").withCause(err)
	case errors.Is(err, blobstore.ErrDigestMismatch):
		return newError(http.StatusBadRequest, CodeDigestInvalid,
			"the uploaded content does not match the digest given; check the digest and upload again").withCause(err)
	case errors.Is(err, blobstore.ErrUnsupportedDigest):
		return newError(http.StatusBadRequest, CodeDigestInvalid,
			"unsupported digest: use sha256 or sha512").withCause(err)
	case errors.Is(err, blobstore.ErrSizeMismatch):
		return newError(http.StatusBadRequest, CodeSizeInvalid,
			"the uploaded size does not match the expected size").withCause(err)
	default:
		return newError(http.StatusInternalServerError, CodeUnknown,
			"internal server error; the registry logged the cause").withCause(err)
	}
}

// errInsufficientStorage answers a write refused, or failed, for lack of
// disk space. 507 rather than 503: podman, skopeo and docker print the
// status line of a 5xx, not its body, and "507 Insufficient Storage" says
// what is wrong; podman retries a 503 at once, which a full disk would
// not survive, and load balancers count 503s as an unhealthy node, while
// this one still serves pulls.
func errInsufficientStorage(err error) *apiError {
	return newError(http.StatusInsufficientStorage, CodeInsufficientStorage,
		"the registry's disk is full, so it stores nothing new until space is freed; deletions still work: "+
			"delete images or tags that are no longer needed, or have an operator add space, then retry").withCause(err)
}

// writeError answers a request with the error envelope and logs the cause.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		h.log.DebugContext(r.Context(), "client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	errs := classify(err)
	h.logError(r, errs[0].status, err)
	writeEnvelope(w, r, errs)
}

// writeEnvelope answers with the error envelope of errs and the first
// one's status.
func writeEnvelope(w http.ResponseWriter, r *http.Request, errs []*apiError) {
	status := errs[0].status
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if errs[0].retryAfter != "" {
		w.Header().Set("Retry-After", errs[0].retryAfter)
	}
	if errs[0].challenge != "" {
		w.Header().Set("WWW-Authenticate", errs[0].challenge)
	}
	env := errorEnvelope{Errors: make([]errorBody, len(errs))}
	for i, e := range errs {
		env.Errors[i] = errorBody{Code: e.code, Message: e.message, Detail: e.detail}
	}
	body, mErr := json.Marshal(env)
	if mErr != nil { // cannot happen with the types above; keep the status anyway
		body = []byte(`{"errors":[{"code":"UNKNOWN","message":"error encoding failed"}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (h *Handler) logError(r *http.Request, status int, err error) {
	level := slog.LevelDebug
	switch {
	case status == http.StatusInsufficientStorage:
		// The disk watcher logs once when it starts refusing.
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= http.StatusInternalServerError:
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
}

// errMirrored refuses a push into a mirrored repository or a pull-through
// cache: DENIED, with the FSM's message, which names the remote and says
// what to do instead.
func errMirrored(err error) *apiError {
	return newError(http.StatusForbidden, CodeDenied, "%s",
		strings.TrimPrefix(err.Error(), fsm.ErrMirroredRepository.Error()+": ")).withCause(err)
}
