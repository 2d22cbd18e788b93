package admin

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/secretbox"
)

// A node holding another key than the one that sealed a secret says so,
// in the record it shows and when it tests the remote.
func TestRemoteSecretUnderAnotherKey(t *testing.T) {
	sealer, err := secretbox.New([]byte("the cluster key that sealed it.."))
	if err != nil {
		t.Fatal(err)
	}
	other, err := secretbox.New([]byte("another node's different key...."))
	if err != nil {
		t.Fatal(err)
	}
	s := &remoteService{cfg: Config{Secrets: sealer}}
	sealed, err := s.seal("hub", secretPassword, "hunter2-secret")
	if err != nil {
		t.Fatal(err)
	}
	rec := &fsmpb.Remote{Name: "hub", Url: "http://127.0.0.1:1", Username: "bob", Password: sealed, TimeoutNanos: 1e9}
	if m := remoteMessage(rec, sealer); len(m.KeyMismatch) != 0 || !m.PasswordSet {
		t.Errorf("under its own key: %v", m)
	}
	if m := remoteMessage(rec, other); !slices.Equal(m.KeyMismatch, []string{"password"}) {
		t.Errorf("under another key: key_mismatch %v", m.KeyMismatch)
	}
	creds, err := OpenRemoteSecrets(rec, sealer)
	if err != nil || creds.Password != "hunter2-secret" {
		t.Fatalf("open: %q, %v", creds.Password, err)
	}
	out := ProbeRemote(context.Background(), rec, other)
	if !strings.Contains(out.Error, "sealed under another key") || out.Reachable || strings.Contains(out.String(), "hunter2") {
		t.Errorf("probe under another key: %v", out)
	}
	// A ciphertext moved to another remote does not open.
	moved := &fsmpb.Remote{Name: "quay", Password: sealed}
	if _, err := OpenRemoteSecrets(moved, sealer); err == nil {
		t.Error("a password moved to another remote opened")
	}
}
