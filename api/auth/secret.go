package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new password hashes (OWASP's recommendation for
// argon2id: 19 MiB, 2 passes, 1 lane). Verification reads the parameters
// from the hash, within the bounds below.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16

	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 16
	maxPasswordLength = 1024
)

var errHashFormat = errors.New("unsupported password hash")

// HashPassword returns an argon2id hash of password in PHC form.
func HashPassword(password string) (string, error) {
	if len(password) > maxPasswordLength {
		return "", fmt.Errorf("password is longer than %d bytes", maxPasswordLength)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash, an argon2id or
// bcrypt hash. The comparison takes constant time.
func CheckPassword(hash, password string) (bool, error) {
	if len(password) > maxPasswordLength {
		return false, nil
	}
	if strings.HasPrefix(hash, "$2") {
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		return err == nil, err
	}
	p, err := parseArgon2id(hash)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

type argonHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseArgon2id(hash string) (argonHash, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return argonHash{}, errHashFormat
	}
	var p argonHash
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return argonHash{}, fmt.Errorf("%w: %w", errHashFormat, err)
	}
	if p.memory == 0 || p.memory > maxArgonMemoryKiB || p.time == 0 || p.time > maxArgonTime || p.threads == 0 {
		return argonHash{}, fmt.Errorf("%w: argon2id parameters out of bounds", errHashFormat)
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return argonHash{}, fmt.Errorf("%w: salt: %w", errHashFormat, err)
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return argonHash{}, fmt.Errorf("%w: bad key", errHashFormat)
	}
	return p, nil
}

// dummyHash is checked when a user does not exist, so that the answer
// takes as long as for a wrong password.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Rb1cL1ZqjYV3gS1h9Yv8Ck0b2nHc3KpbqgrH6Z9VXE"

// apiTokenPrefix starts every API token, so that a token presented as a
// password is recognised (and so that secret scanners can find leaks).
const apiTokenPrefix = "wharf_"

// NewAPIToken returns a new token ID, the secret the user is shown once
// ("wharf_<id>_<secret>") and the SHA-256 of the secret part to store.
func NewAPIToken() (id, token string, secretSHA256 []byte) {
	id, secret := rand.Text(), rand.Text()
	sum := sha256.Sum256([]byte(secret))
	return id, apiTokenPrefix + id + "_" + secret, sum[:]
}

// ParseAPIToken splits a token made by NewAPIToken; ok is false for
// anything else, such as a password.
func ParseAPIToken(s string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, apiTokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" || len(id) > 64 || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// CheckAPITokenSecret reports, in constant time, whether secret hashes to
// want.
func CheckAPITokenSecret(want []byte, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], want) == 1
}
