package auth

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestChallenge(t *testing.T) {
	tests := []struct {
		c    Challenge
		want string
	}{
		{Challenge{Realm: "https://r.example/token", Service: "r.example"},
			`Bearer realm="https://r.example/token",service="r.example"`},
		{Challenge{Realm: "https://r.example/token", Service: "r.example", Scopes: []Scope{RepositoryScope("a/b", "pull", "push")}},
			`Bearer realm="https://r.example/token",service="r.example",scope="repository:a/b:pull,push"`},
		{Challenge{Realm: "r", Service: "s", Scopes: []Scope{RepositoryScope("a/b", "pull", "push"), RepositoryScope("c/d", "pull")}, Error: ErrorInsufficientScope},
			`Bearer realm="r",service="s",scope="repository:a/b:pull,push repository:c/d:pull",error="insufficient_scope"`},
		{Challenge{Realm: "r", Service: "s", Scopes: []Scope{CatalogScope()}, Error: ErrorInvalidToken},
			`Bearer realm="r",service="s",scope="registry:catalog:*",error="invalid_token"`},
		{Challenge{Realm: `a"b\c` + "\r\n", Service: "s"}, `Bearer realm="a\"b\\c",service="s"`},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() =\n %s\nwant\n %s", got, tt.want)
		}
	}
}

func TestRealm(t *testing.T) {
	tests := []struct {
		public  string
		host    string
		headers map[string]string
		tls     bool
		want    string
	}{
		{public: "https://registry.example/", host: "node1:5001", want: "https://registry.example/token"},
		{host: "node1:5001", want: "http://node1:5001/token"},
		{host: "node1:5001", tls: true, want: "https://node1:5001/token"},
		{host: "node1:5001", headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example"}, want: "https://registry.example/token"},
		{host: "node1:5001", headers: map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "lb.example:8443, inner"}, want: "https://lb.example:8443/token"},
		{host: "node1:5001", headers: map[string]string{"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": `evil"host`}, want: "http://node1:5001/token"},
		{host: "[::1]:5001", want: "http://[::1]:5001/token"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.Host = tt.host
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := Realm(tt.public, r); got != tt.want {
			t.Errorf("Realm(%q, %s %v) = %q, want %q", tt.public, tt.host, tt.headers, got, tt.want)
		}
	}
}
