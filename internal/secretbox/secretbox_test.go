package secretbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newBox(t *testing.T, secret string) *Box {
	t.Helper()
	b, err := New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := newBox(t, "cluster key of at least 16 bytes")
	for _, pt := range []string{"", "hunter2", string(bytes.Repeat([]byte{0xff}, 5000))} {
		ct, err := b.Seal([]byte(pt), "remote", "hub", "password")
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 3 && bytes.Contains(ct, []byte(pt)) {
			t.Error("the ciphertext holds the plaintext")
		}
		got, err := b.Open(ct, b.Fingerprint(), "remote", "hub", "password")
		if err != nil || string(got) != pt {
			t.Fatalf("Open = %q, %v", got, err)
		}
		// Another box from the same secret (another node) opens it too.
		got, err = newBox(t, "cluster key of at least 16 bytes").Open(ct, b.Fingerprint(), "remote", "hub", "password")
		if err != nil || string(got) != pt {
			t.Fatalf("other node: Open = %q, %v", got, err)
		}
	}
	a1, _ := b.Seal([]byte("x"), "p")
	a2, _ := b.Seal([]byte("x"), "p")
	if bytes.Equal(a1, a2) {
		t.Error("two seals of the same secret are equal: nonce reused")
	}
}

func TestWrongKey(t *testing.T) {
	a, b := newBox(t, "the first key, 32 bytes long...."), newBox(t, "the second key, also long enough")
	if a.Fingerprint() == b.Fingerprint() || len(a.Fingerprint()) != 16 {
		t.Fatalf("fingerprints %q %q", a.Fingerprint(), b.Fingerprint())
	}
	ct, err := a.Seal([]byte("pw"), "remote", "hub", "password")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(ct, a.Fingerprint(), "remote", "hub", "password")
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open under another key = %v, want ErrWrongKey", err)
	}
	// A forged fingerprint does not get past the cipher.
	if _, err := b.Open(ct, b.Fingerprint(), "remote", "hub", "password"); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open with a forged fingerprint = %v, want ErrTampered", err)
	}
}

func TestTampered(t *testing.T) {
	b := newBox(t, "cluster key of at least 16 bytes")
	ct, _ := b.Seal([]byte("pw"), "remote", "hub", "password")
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 1
		if _, err := b.Open(bad, b.Fingerprint(), "remote", "hub", "password"); !errors.Is(err, ErrTampered) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := b.Open(ct[:10], b.Fingerprint(), "remote", "hub", "password"); !errors.Is(err, ErrTampered) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestAdditionalDataMismatch(t *testing.T) {
	b := newBox(t, "cluster key of at least 16 bytes")
	ct, _ := b.Seal([]byte("pw"), "remote", "hub", "password")
	for _, place := range [][]string{{"remote", "quay", "password"}, {"remote", "hub", "client_key"}, {"remote", "hubpassword"}, {}} {
		if _, err := b.Open(ct, b.Fingerprint(), place...); !errors.Is(err, ErrTampered) {
			t.Errorf("opened for %q: %v", place, err)
		}
	}
}

func TestShortKey(t *testing.T) {
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "remote-secrets.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("create: %d bytes, %v", len(k1), err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start read another key: %v", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a short key file was accepted")
	}
}
