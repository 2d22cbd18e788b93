// Package secretbox seals the secrets wharf must be able to read back
// (the passwords, tokens and keys of remote registries) before they enter
// the replicated state: AES-256-GCM under a key derived with HKDF-SHA256
// from the cluster key, so that every node of a cluster opens what any
// node sealed, and the Raft log, snapshots and Pebble files hold only
// ciphertext.
//
// Each ciphertext is bound to what it is the secret of (additional data:
// the remote's name and the field's name), so that a ciphertext copied to
// another record or field does not open, and travels with the fingerprint
// of its key, so that a node holding another key says so plainly.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a key file's key and of the derived key.
const KeySize = 32

// info separates this key from the others derived from the cluster key.
const info = "wharf remote secrets v1"

var (
	// ErrWrongKey: the ciphertext was sealed under another key.
	ErrWrongKey = errors.New("sealed under another key")
	// ErrTampered: the ciphertext does not open under this key: it was
	// changed, or belongs to another record or field.
	ErrTampered = errors.New("does not authenticate")
)

// Box seals and opens secrets under one derived key.
type Box struct {
	aead        cipher.AEAD
	fingerprint string
}

// New derives the sealing key from secret, the cluster key (or a lone
// node's key file), which must be at least 16 bytes.
func New(secret []byte) (*Box, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("secret box: key of %d bytes is too short, want at least 16", len(secret))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, info, KeySize)
	if err != nil {
		return nil, fmt.Errorf("secret box: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret box: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret box: %w", err)
	}
	sum := sha256.Sum256(key)
	return &Box{aead: aead, fingerprint: hex.EncodeToString(sum[:8])}, nil
}

// Fingerprint names the derived key: the first 8 bytes of its SHA-256, in
// hex. It reveals nothing of the key.
func (b *Box) Fingerprint() string { return b.fingerprint }

// additionalData binds a ciphertext to its place, e.g. ("remote", "hub",
// "password").
func additionalData(place []string) []byte {
	return []byte(info + "\x00" + strings.Join(place, "\x00"))
}

// Seal encrypts plaintext for place and returns the nonce followed by the
// ciphertext.
func (b *Box) Seal(plaintext []byte, place ...string) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret box: nonce: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plaintext, additionalData(place)), nil
}

// Open decrypts what Seal returned for the same place under the key named
// by fingerprint. A fingerprint that is not this box's is ErrWrongKey; a
// ciphertext that does not authenticate is ErrTampered.
func (b *Box) Open(sealed []byte, fingerprint string, place ...string) ([]byte, error) {
	if fingerprint != b.fingerprint {
		return nil, fmt.Errorf("secret box: secret %s was %w (fingerprint %s; this node's key is %s): the nodes do not share a cluster key, or the secret was set before it changed; set the secret again", strings.Join(place, "."), ErrWrongKey, fingerprint, b.fingerprint)
	}
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, fmt.Errorf("secret box: secret %s %w: %d bytes is too short", strings.Join(place, "."), ErrTampered, len(sealed))
	}
	out, err := b.aead.Open(nil, sealed[:n], sealed[n:], additionalData(place))
	if err != nil {
		return nil, fmt.Errorf("secret box: secret %s %w", strings.Join(place, "."), ErrTampered)
	}
	return out, nil
}

// LoadOrCreateKeyFile returns the key in path, creating it (KeySize
// random bytes, mode 0600) if it does not exist: a lone node without a
// cluster key seals with it. The file must hold exactly KeySize bytes.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key file %s holds %d bytes, want %d", path, len(key), KeySize)
	}
	return key, nil
}

func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write secret key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync secret key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write secret key file: %w", err)
	}
	// A link, not a rename: two starts racing keep the first key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKeyFile(path)
		}
		return nil, fmt.Errorf("install secret key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}
