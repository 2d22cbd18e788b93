package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// NewSigningKey generates an ES256 key for fsmpb.RotateSigningKey; its ID
// is KeyID of its public key.
func NewSigningKey() (*fsmpb.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	id, err := KeyID(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &fsmpb.SigningKey{Id: id, Pkcs8: der}, nil
}

// KeyID is the libtrust fingerprint docker registries use as "kid": the
// SHA-256 of the DER public key, truncated to 240 bits, in base32, in
// groups of four separated by colons.
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}

// errNoSigningKey: the cluster has no signing key yet.
var errNoSigningKey = errors.New("no token signing key yet")

// keyring parses signing keys once and remembers them by ID. Which keys
// are valid is always decided by the key set read from the state.
type keyring struct {
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey
}

func newKeyring() *keyring { return &keyring{keys: map[string]*ecdsa.PrivateKey{}} }

// current returns the current key of set and its ID.
func (k *keyring) current(set *fsmpb.SigningKeySet) (string, *ecdsa.PrivateKey, error) {
	priv, err := k.find(set, set.GetCurrentId())
	return set.GetCurrentId(), priv, err
}

// find returns key id if set holds it.
func (k *keyring) find(set *fsmpb.SigningKeySet, id string) (*ecdsa.PrivateKey, error) {
	for _, sk := range set.GetKeys() {
		if sk.GetId() == id {
			return k.parse(sk)
		}
	}
	if len(set.GetKeys()) == 0 {
		return nil, errNoSigningKey
	}
	return nil, fmt.Errorf("unknown signing key %q", id)
}

func (k *keyring) parse(sk *fsmpb.SigningKey) (*ecdsa.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if priv, ok := k.keys[sk.GetId()]; ok {
		return priv, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(sk.GetPkcs8())
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.GetId(), err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %s is not ECDSA P-256", sk.GetId())
	}
	if len(k.keys) >= 16 { // rotations are rare; forget old ones
		clear(k.keys)
	}
	k.keys[sk.GetId()] = priv
	return priv, nil
}
