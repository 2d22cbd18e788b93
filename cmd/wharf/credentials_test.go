package main

import (
	"context"
	"errors"
	"testing"
)

func TestCredentialsFind(t *testing.T) {
	creds := credentials{Servers: map[string]serverCredential{
		"http://lb.example:8080":   {Username: "alice", PublicURL: "https://registry.example.com"},
		"http://lone.example:5001": {Username: "bob"},
	}}
	// identities is what each server reports as its cluster's public URL.
	identities := map[string]string{
		"http://10.0.0.2:5001":  "https://registry.example.com",
		"http://10.0.0.3:5001":  "https://registry.example.com/",
		"http://10.9.9.9:5001":  "https://other.example.com",
		"http://10.8.8.8:5001":  "",
		"http://down.example:1": "",
	}
	tests := []struct {
		server  string
		want    string // key found, "" for none
		asked   bool   // identify was called
		noAsker bool   // call find with a nil identify
	}{
		{server: "http://lb.example:8080", want: "http://lb.example:8080"},
		{server: "lb.example:8080/", want: "http://lb.example:8080"},
		{server: "https://registry.example.com", want: "http://lb.example:8080"},
		{server: "http://10.0.0.2:5001", want: "http://lb.example:8080", asked: true},
		{server: "10.0.0.3:5001", want: "http://lb.example:8080", asked: true},
		{server: "http://10.9.9.9:5001", asked: true},
		{server: "http://10.8.8.8:5001", asked: true},
		{server: "http://down.example:1", asked: true},
		{server: "http://10.0.0.2:5001", noAsker: true},
		{server: "http://lone.example:5001", want: "http://lone.example:5001"},
	}
	for _, tt := range tests {
		asked := false
		identify := func(_ context.Context, server string) (string, error) {
			asked = true
			if server == "http://down.example:1" {
				return "", errors.New("connection refused")
			}
			return identities[server], nil
		}
		if tt.noAsker {
			identify = nil
		}
		got, ok := creds.find(context.Background(), tt.server, identify)
		if got != tt.want || ok != (tt.want != "") || asked != tt.asked {
			t.Errorf("find(%q) = %q, %v (identify asked: %v); want %q (asked: %v)", tt.server, got, ok, asked, tt.want, tt.asked)
		}
	}
}

// Without any credential of a cluster, no server is asked who it is.
func TestCredentialsFindAsksNobodyWithoutClusters(t *testing.T) {
	creds := credentials{Servers: map[string]serverCredential{"http://lone.example:5001": {Username: "bob"}}}
	identify := func(context.Context, string) (string, error) {
		t.Error("identify called")
		return "", nil
	}
	if key, ok := creds.find(context.Background(), "http://10.0.0.2:5001", identify); ok {
		t.Errorf("found %q", key)
	}
}

func TestCredentialsStoreKeepsOnePerCluster(t *testing.T) {
	creds := credentials{Servers: map[string]serverCredential{
		"http://10.0.0.1:5001": {Username: "alice", PublicURL: "https://registry.example.com"},
		"http://lone:5001":     {Username: "bob"},
	}}
	creds.store("http://10.0.0.2:5001", serverCredential{Username: "carol", PublicURL: "https://registry.example.com"})
	if _, ok := creds.Servers["http://10.0.0.1:5001"]; ok {
		t.Error("the older login to the same cluster was kept")
	}
	if creds.Servers["http://10.0.0.2:5001"].Username != "carol" || creds.Current != "http://10.0.0.2:5001" {
		t.Errorf("new login not stored as current: %+v", creds)
	}
	if _, ok := creds.Servers["http://lone:5001"]; !ok {
		t.Error("the login to another server was dropped")
	}
	creds.remove("http://10.0.0.2:5001")
	if creds.Current != "" || len(creds.Servers) != 1 {
		t.Errorf("after remove: %+v", creds)
	}
}
