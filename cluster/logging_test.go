package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapterFormatsFmtValues(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, nil)), "raft")
	l.Info("initial configuration", "index", 3, "servers", hclog.Fmt("%+v", []int{1, 2}))
	if got := buf.String(); !strings.Contains(got, `servers="[1 2]"`) || !strings.Contains(got, "index=3") {
		t.Errorf("logged %q, want the formatted servers and the index", got)
	}
}
