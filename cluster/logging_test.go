package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func TestHclogAdapterFormatsFmtValues(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, nil)), "raft", nil)
	l.Info("initial configuration", "index", 3, "servers", hclog.Fmt("%+v", []int{1, 2}))
	if got := buf.String(); !strings.Contains(got, `servers="[1 2]"`) || !strings.Contains(got, "index=3") {
		t.Errorf("logged %q, want the formatted servers and the index", got)
	}
}

func TestShutdownLevel(t *testing.T) {
	var stopping, running atomic.Bool
	stopping.Store(true)
	peerErr := errors.New("dial tcp 127.0.0.1:5002: connection refused")
	tests := []struct {
		name  string
		level slog.Level
		flag  *atomic.Bool
		errs  []error
		want  slog.Level
	}{
		{"own transport closed", slog.LevelError, &running, []error{raft.ErrTransportShutdown}, slog.LevelDebug},
		{"own socket closed", slog.LevelError, nil, []error{fmt.Errorf("write udp: %w", net.ErrClosed)}, slog.LevelDebug},
		{"peer unreachable while stopping", slog.LevelError, &stopping, []error{peerErr}, slog.LevelWarn},
		{"peer unreachable while running", slog.LevelError, &running, []error{peerErr}, slog.LevelError},
		{"no flag", slog.LevelError, nil, []error{peerErr}, slog.LevelError},
		{"warnings stay", slog.LevelWarn, &stopping, nil, slog.LevelWarn},
		{"info stays", slog.LevelInfo, &stopping, []error{raft.ErrTransportShutdown}, slog.LevelInfo},
	}
	for _, tt := range tests {
		if got := shutdownLevel(tt.level, tt.flag, tt.errs...); got != tt.want {
			t.Errorf("%s: level %v, want %v", tt.name, got, tt.want)
		}
	}
}
