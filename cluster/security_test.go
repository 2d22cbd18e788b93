package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	good, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"generated", good, true},
		{"not base64", "%%%", false},
		{"too short", "AAAA", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseKey(tt.key)
			if (err == nil) != tt.ok || (tt.ok && len(b) != keySize) {
				t.Fatalf("ParseKey(%q) = %d bytes, %v", tt.key, len(b), err)
			}
		})
	}
}

func TestDerivedCAIsDeterministic(t *testing.T) {
	key := bytes.Repeat([]byte{7}, keySize)
	a, _, err := deriveCA(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := deriveCA(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("two derivations of the CA differ")
	}
	other, _, err := deriveCA(bytes.Repeat([]byte{8}, keySize))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Raw, other.Raw) {
		t.Fatal("different keys derive the same CA")
	}
}

func testSecurity(t *testing.T, key, nodeID string) *security {
	t.Helper()
	s, err := newSecurity(Config{ClusterKey: key}, identity{nodeID: nodeID, host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClusterConfigRequiresKey(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"lone node, no key", Config{DataDir: "d", ClusterListen: ":0", BootstrapExpect: 1}, true},
		{"expect 3, no key", Config{DataDir: "d", ClusterListen: ":0", GossipListen: ":0", BootstrapExpect: 3}, false},
		{"join, no key", Config{DataDir: "d", ClusterListen: ":0", GossipListen: ":0", Join: []string{"x:1"}}, false},
		{"expect 3 with key", Config{DataDir: "d", ClusterListen: ":0", GossipListen: ":0", BootstrapExpect: 3, ClusterKey: "k"}, true},
		{"partial TLS files", Config{DataDir: "d", ClusterListen: ":0", BootstrapExpect: 1, TLSCertFile: "c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.withDefaults().validate(); (err == nil) != tt.ok {
				t.Fatalf("validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestClusterPortRefusesStrangers: bytes without the key achieve nothing on
// the cluster port, while a node with the key reaches the internal API over
// HTTP/2.
func TestClusterPortRefusesStrangers(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	n.InternalMux().HandleFunc("/internal/ping", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})
	addr := n.ClusterAddress()
	before := n.raft.LastIndex()

	// The node's own client: mutual TLS with the node's CA, HTTP/2.
	resp, err := n.PeerHTTPClient().Get("https://" + addr + "/internal/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("internal API answered %q, want HTTP/2.0", body)
	}

	// Plain bytes (a would-be Raft RPC) get no answer.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("\x01garbage that is not a TLS handshake\n"))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if got, err := io.ReadAll(conn); len(got) > 0 && !strings.HasPrefix(string(got), "\x15") {
		t.Fatalf("plain TCP got %q, %v", got, err)
	}
	conn.Close()

	// A client with a certificate from another cluster key is refused, for
	// Raft and for HTTP.
	stranger := testSecurity(t, mustKey(t), "stranger")
	for _, proto := range []string{alpnRaft, alpnHTTP2} {
		c, err := tls.Dial("tcp", addr, stranger.clientTLS(proto))
		if err == nil {
			// TLS 1.3 reports the server's refusal of the client
			// certificate on the first read.
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatalf("%s: a stranger's certificate was accepted", proto)
		}
	}
	// A TLS client without any certificate is refused too.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpnRaft}})
	if err == nil {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	if got := n.raft.LastIndex(); got != before {
		t.Fatalf("raft log moved from %d to %d", before, got)
	}
	if err := n.PutManifest(context.Background(), manifestOp("acme/app", "m1")); err != nil {
		t.Fatal(err) // the node still works
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
