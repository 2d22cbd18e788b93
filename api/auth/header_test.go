package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in      string
		want    Credentials
		wantErr bool
	}{
		{in: "", want: Credentials{}},
		{in: basic("alice", "s3cret:with:colons"), want: Credentials{Scheme: SchemeBasic, Username: "alice", Password: "s3cret:with:colons"}},
		{in: "basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), want: Credentials{Scheme: SchemeBasic, Username: "a", Password: "b"}},
		{in: "Basic Og==", want: Credentials{}}, // ":" is anonymous
		{in: basic("alice", ""), want: Credentials{Scheme: SchemeBasic, Username: "alice"}},
		{in: "Bearer eyJhbGciOi.J9.sig-_~+/==", want: Credentials{Scheme: SchemeBearer, Token: "eyJhbGciOi.J9.sig-_~+/=="}},
		{in: "BEARER abc", want: Credentials{Scheme: SchemeBearer, Token: "abc"}},
		{in: "Bearer", wantErr: true},
		{in: "Bearer a b", wantErr: true},
		{in: "Bearer ===", wantErr: true},
		{in: "Basic !!!", wantErr: true},
		{in: "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), wantErr: true},
		{in: "Basic " + base64.StdEncoding.EncodeToString([]byte("a\nb:c")), wantErr: true},
		{in: "Digest foo", wantErr: true},
		{in: "Bearer " + strings.Repeat("a", 9000), wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAuthorization(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseAuthorization(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q repeats the secret", err)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", basic("alice", "pw"), "Basic Og==", "Bearer abc.def.ghi", "bearer  x", "Basic", "Digest x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := ParseAuthorization(h)
		if err != nil {
			if c != (Credentials{}) {
				t.Fatalf("ParseAuthorization(%q) failed but returned %+v", h, c)
			}
			return
		}
		switch c.Scheme {
		case SchemeNone:
			if c != (Credentials{}) {
				t.Fatalf("anonymous credentials carry data: %+v", c)
			}
		case SchemeBasic:
			if c.Username == "" && c.Password == "" || strings.ContainsAny(c.Username, "\x00\r\n") {
				t.Fatalf("bad Basic credentials %+v from %q", c, h)
			}
			// Basic credentials survive a round trip.
			again, err := ParseAuthorization(basic(c.Username, c.Password))
			if err != nil || again != c {
				t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
			}
		case SchemeBearer:
			if !isToken68(c.Token) || c.Username != "" {
				t.Fatalf("bad Bearer credentials %+v from %q", c, h)
			}
		}
	})
}
