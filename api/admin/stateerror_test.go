package admin

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

func TestStateErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		want connect.Code
	}{
		{fmt.Errorf("x: %w", fsm.ErrNotFound), connect.CodeNotFound},
		{fmt.Errorf("x: %w", cluster.ErrNoQuorum), connect.CodeUnavailable},
		{fmt.Errorf("node n1: %w", &diskspace.RefusedError{Write: "metadata write"}), connect.CodeResourceExhausted},
		{fmt.Errorf("raft: %w", syscall.ENOSPC), connect.CodeResourceExhausted},
		{errors.New("boom"), connect.CodeInternal},
	}
	for _, tt := range tests {
		if got := connect.CodeOf(stateError(tt.err)); got != tt.want {
			t.Errorf("stateError(%v) has code %v, want %v", tt.err, got, tt.want)
		}
	}
}
