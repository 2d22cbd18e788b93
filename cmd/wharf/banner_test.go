package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExposure(t *testing.T) {
	tests := []struct {
		listen, want string
	}{
		{"127.0.0.1:5001", "loopback only"},
		{"[::1]:5001", "loopback only"},
		{"localhost:5001", "loopback only"},
		{":5001", "every network interface"},
		{"0.0.0.0:5001", "every network interface"},
		{"[::]:5001", "every network interface"},
		{"10.0.0.1:5001", "the interface of 10.0.0.1 only"},
	}
	for _, tt := range tests {
		if got := exposure(tt.listen); !strings.HasPrefix(got, tt.want) {
			t.Errorf("exposure(%q) = %q, want it to start with %q", tt.listen, got, tt.want)
		}
	}
}

func TestClientHost(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"127.0.0.1:5001", "localhost:5001"},
		{":5001", "localhost:5001"},
		{"0.0.0.0:5001", "localhost:5001"},
		{"10.0.0.1:5001", "10.0.0.1:5001"},
		{"registry.lan:5001", "registry.lan:5001"},
	}
	for _, tt := range tests {
		if got := clientHost(tt.listen); got != tt.want {
			t.Errorf("clientHost(%q) = %q, want %q", tt.listen, got, tt.want)
		}
	}
}

func TestCLICommand(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ arg0, want string }{
		{"wharf", "wharf"},
		{filepath.Join(wd, "bin", "wharf"), filepath.Join("bin", "wharf")},
		{filepath.Join("bin", "wharf"), filepath.Join("bin", "wharf")},
		{filepath.Join(wd, "wharf"), "./wharf"},
		{"/usr/local/bin/wharf", "/usr/local/bin/wharf"},
		{"/tmp/go-build123/b001/exe/wharf", "wharf"},
	}
	saved := os.Args[0]
	defer func() { os.Args[0] = saved }()
	for _, tt := range tests {
		os.Args[0] = tt.arg0
		if got := cliCommand(); got != tt.want {
			t.Errorf("os.Args[0] = %q: cliCommand() = %q, want %q", tt.arg0, got, tt.want)
		}
	}
}

// The banner names the binary that printed it and says who can reach the
// node, as 'make run' relies on.
func TestBannerNamesBinaryAndExposure(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Args[0]
	defer func() { os.Args[0] = saved }()
	os.Args[0] = filepath.Join(wd, "bin", "wharf")
	var buf bytes.Buffer
	printBanner(&buf, serveOptions{listen: "127.0.0.1:5001"}, "pw", "wharf-data/admin-password")
	for _, want := range []string{
		"podman login --tls-verify=false -u admin localhost:5001",
		"bin/wharf login http://localhost:5001 -u admin --password-stdin < wharf-data/admin-password",
		"Listening on 127.0.0.1:5001: loopback only, so other machines cannot reach it.",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, buf.String())
		}
	}
}
