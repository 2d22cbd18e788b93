package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

func TestClassify(t *testing.T) {
	api := newError(http.StatusNotFound, CodeManifestUnknown, "gone")
	tests := []struct {
		name   string
		err    error
		status int
		codes  []ErrorCode
	}{
		{"api error", api, 404, []ErrorCode{CodeManifestUnknown}},
		{"wrapped api error", fmt.Errorf("context: %w", api), 404, []ErrorCode{CodeManifestUnknown}},
		{"joined api errors", errors.Join(api, newError(400, CodeNameInvalid, "x")), 404, []ErrorCode{CodeManifestUnknown, CodeNameInvalid}},
		{"no quorum", fmt.Errorf("put: %w", cluster.ErrNoQuorum), 503, []ErrorCode{CodeUnavailable}},
		{"namespace conflict", fmt.Errorf("%w: rule", fsm.ErrNamespaceConflict), 400, []ErrorCode{CodeNameInvalid}},
		{"invalid command", fmt.Errorf("%w: bad", fsm.ErrInvalid), 400, []ErrorCode{CodeUnsupported}},
		{"upload unknown", blobstore.ErrUploadUnknown, 404, []ErrorCode{CodeBlobUploadUnknown}},
		{"blob unknown", blobstore.ErrBlobUnknown, 404, []ErrorCode{CodeBlobUnknown}},
		{"digest mismatch", blobstore.ErrDigestMismatch, 400, []ErrorCode{CodeDigestInvalid}},
		{"unsupported digest", blobstore.ErrUnsupportedDigest, 400, []ErrorCode{CodeDigestInvalid}},
		{"size mismatch", blobstore.ErrSizeMismatch, 400, []ErrorCode{CodeSizeInvalid}},
		{"ENOSPC", fmt.Errorf("append: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), 507, []ErrorCode{CodeInsufficientStorage}},
		{"EDQUOT", &fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, 507, []ErrorCode{CodeInsufficientStorage}},
		{"ENOSPC through raft", fmt.Errorf("raft: %w", fmt.Errorf("store logs: %w", syscall.ENOSPC)), 507, []ErrorCode{CodeInsufficientStorage}},
		{"refused by the disk watcher", fmt.Errorf("new upload: %w", &diskspace.RefusedError{Write: "upload"}), 507, []ErrorCode{CodeInsufficientStorage}},
		{"refused by the leader's disk", fmt.Errorf("forward write to leader: %w: %v", diskspace.ErrInsufficientStorage, "its disk is below its floor"), 507, []ErrorCode{CodeInsufficientStorage}},
		{"anything else", errors.New("disk on fire"), 500, []ErrorCode{CodeUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if got[0].status != tt.status {
				t.Errorf("status %d, want %d", got[0].status, tt.status)
			}
			var codes []ErrorCode
			for _, e := range got {
				codes = append(codes, e.code)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tt.codes) {
				t.Errorf("codes %v, want %v", codes, tt.codes)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	h := New(Config{})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		h.writeError(w, httptest.NewRequest(method, "/v2/x/manifests/y", nil), errors.New("secret detail"))
		if w.Code != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", method, w.Code)
		}
		body := w.Body.String()
		if method == http.MethodHead && body != "" {
			t.Errorf("HEAD answered with a body: %q", body)
		}
		if method == http.MethodGet && (body == "" || strings.Contains(body, "secret detail")) {
			t.Errorf("GET body %q: want an envelope that hides the cause", body)
		}
	}
}
