package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash = %q", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	tests := []struct {
		hash, password string
		want, wantErr  bool
	}{
		{h, "correct horse", true, false},
		{h, "correct horsE", false, false},
		{h, "", false, false},
		{string(bc), "correct horse", true, false},
		{string(bc), "wrong", false, false},
		{dummyHash, "anything", false, false},
		{"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA", "x", false, true},
		{"$argon2i$v=19$m=16,t=1,p=1$c2FsdA$aGFzaA", "x", false, true},
		{"plain", "plain", false, true},
	}
	for _, tt := range tests {
		got, err := CheckPassword(tt.hash, tt.password)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("CheckPassword(%.20q, %q) = %v, %v", tt.hash, tt.password, got, err)
		}
	}
}

func TestAPITokenFormat(t *testing.T) {
	id, token, sum := NewAPIToken()
	gotID, secret, ok := ParseAPIToken(token)
	if !ok || gotID != id || !CheckAPITokenSecret(sum, secret) || CheckAPITokenSecret(sum, secret+"x") {
		t.Fatalf("ParseAPIToken(%q) = %q, %q, %v", token, gotID, secret, ok)
	}
	for _, s := range []string{"password", "wharf_", "wharf_abc", "wharf__x", "wharf_abc_"} {
		if _, _, ok := ParseAPIToken(s); ok {
			t.Errorf("ParseAPIToken(%q) accepted", s)
		}
	}
}
