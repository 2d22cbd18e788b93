package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// credentials is the file 'wharf login' writes: one credential per cluster.
//
// A credential is stored under the server it was checked against, with the
// public URL (--public-url) that server reported for its cluster, which
// every node of a cluster shares. It serves that server, the public URL,
// and any other server that reports the same public URL when asked (the
// unauthenticated ClusterService.Identity), so a login through the load
// balancer also serves 'wharf --server' naming one node. A stored
// credential only goes to a server the command line or the environment
// named; a server that reports no public URL, or another one, gets none.
type credentials struct {
	// Current is the server of the last login, used when none is given.
	Current string                      `json:"current,omitempty"`
	Servers map[string]serverCredential `json:"servers"`
}

type serverCredential struct {
	Username string `json:"username"`
	// Password is what the commands authenticate with: the secret of a
	// login session when Session is set (what 'wharf login' stores for a
	// password), else the API token given at login.
	Password string `json:"password"`
	// Session is the ID of the login session, which 'wharf logout'
	// revokes on the server.
	Session string `json:"session,omitempty"`
	// PublicURL is the public URL of the server's cluster, as the server
	// reported it at login; empty if it has none.
	PublicURL string `json:"public_url,omitempty"`
}

// identifyFunc asks a server for the public URL of its cluster.
type identifyFunc func(ctx context.Context, server string) (string, error)

// find returns the key of the credential that serves server: the one
// stored for it, else the one of the cluster whose public URL it is, else
// the one of the cluster server reports being part of. identify is asked
// only in the last case, and only if some credential names a cluster; nil
// skips that case.
func (c credentials) find(ctx context.Context, server string, identify identifyFunc) (string, bool) {
	server = normalizeServer(server)
	if _, ok := c.Servers[server]; ok {
		return server, true
	}
	if key, ok := c.byPublicURL(server); ok {
		return key, true
	}
	if identify == nil || !c.namesACluster() {
		return "", false
	}
	public, err := identify(ctx, server)
	if err != nil || public == "" {
		return "", false
	}
	return c.byPublicURL(normalizeServer(public))
}

// byPublicURL returns the key of the credential of the cluster whose public
// URL is u; login keeps one per cluster, and the first key wins otherwise.
func (c credentials) byPublicURL(u string) (string, bool) {
	keys := make([]string, 0, len(c.Servers))
	for k := range c.Servers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if c.Servers[k].PublicURL == u {
			return k, true
		}
	}
	return "", false
}

func (c credentials) namesACluster() bool {
	for _, s := range c.Servers {
		if s.PublicURL != "" {
			return true
		}
	}
	return false
}

// store saves the credential checked against server, replacing any other
// of the same cluster, and makes server the current one.
func (c *credentials) store(server string, cred serverCredential) {
	if cred.PublicURL != "" {
		for k, s := range c.Servers {
			if s.PublicURL == cred.PublicURL {
				delete(c.Servers, k)
			}
		}
	}
	c.Servers[server] = cred
	c.Current = server
}

// remove forgets the credential stored under key.
func (c *credentials) remove(key string) {
	delete(c.Servers, key)
	if c.Current == key {
		c.Current = ""
	}
}

// credentialsPath is $XDG_CONFIG_HOME/wharf/credentials.json, or
// ~/.config/wharf/credentials.json.
func credentialsPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the credentials file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "wharf", "credentials.json"), nil
}

func loadCredentials() (credentials, error) {
	creds := credentials{Servers: map[string]serverCredential{}}
	path, err := credentialsPath()
	if err != nil {
		return creds, nil // no home: no stored credentials
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return creds, nil
	}
	if err != nil {
		return creds, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &creds); err != nil {
		return creds, fmt.Errorf("read %s: %w", path, err)
	}
	if creds.Servers == nil {
		creds.Servers = map[string]serverCredential{}
	}
	return creds, nil
}

func saveCredentials(creds credentials) (string, error) {
	path, err := credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	return path, nil
}
