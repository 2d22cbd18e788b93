package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/wharf-registry/wharf/internal/diskspace"
)

func newTestFlags() (*pflag.FlagSet, *string, *int, *bool) {
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.String("config", "", "")
	dataDir := f.String("data-dir", "./wharf-data", "")
	expect := f.Int("bootstrap-expect", 1, "")
	sparse := f.Bool("sparse-manifests", false, "")
	return f, dataDir, expect, sparse
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "wharf.yaml")
	if err := os.WriteFile(file, []byte("data-dir: /from/file\nbootstrap-expect: 3\nsparse-manifests: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantDataDir string
		wantExpect  int
		wantSparse  bool
	}{
		{name: "defaults", wantDataDir: "./wharf-data", wantExpect: 1},
		{name: "file", args: []string{"--config", file}, wantDataDir: "/from/file", wantExpect: 3, wantSparse: true},
		{name: "config file from env", env: map[string]string{"WHARF_CONFIG": file}, wantDataDir: "/from/file", wantExpect: 3, wantSparse: true},
		{name: "env beats file", args: []string{"--config", file}, env: map[string]string{"WHARF_DATA_DIR": "/from/env"}, wantDataDir: "/from/env", wantExpect: 3, wantSparse: true},
		{name: "flag beats env", args: []string{"--data-dir", "/from/flag"}, env: map[string]string{"WHARF_DATA_DIR": "/from/env", "WHARF_BOOTSTRAP_EXPECT": "5"}, wantDataDir: "/from/flag", wantExpect: 5},
		{name: "flag beats file", args: []string{"--config", file, "--bootstrap-expect", "1", "--sparse-manifests=false"}, wantDataDir: "/from/file", wantExpect: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f, dataDir, expect, sparse := newTestFlags()
			if err := f.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := applyConfigSources(f, "config"); err != nil {
				t.Fatal(err)
			}
			if *dataDir != tt.wantDataDir || *expect != tt.wantExpect || *sparse != tt.wantSparse {
				t.Errorf("got data-dir=%q bootstrap-expect=%d sparse=%v, want %q %d %v",
					*dataDir, *expect, *sparse, tt.wantDataDir, tt.wantExpect, tt.wantSparse)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr string
	}{
		{name: "unknown key", yaml: "data-dri: /x\n", wantErr: `unknown setting "data-dri"`},
		{name: "bad yaml", yaml: "data-dir: [\n", wantErr: "parse config file"},
		{name: "nested value", yaml: "data-dir:\n  a: b\n", wantErr: "must be a scalar"},
		{name: "bad int in file", yaml: "bootstrap-expect: many\n", wantErr: "invalid value"},
		{name: "bad int in env", env: map[string]string{"WHARF_BOOTSTRAP_EXPECT": "x"}, wantErr: "WHARF_BOOTSTRAP_EXPECT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f, _, _, _ := newTestFlags()
			var args []string
			if tt.yaml != "" {
				file := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{"--config", file}
			}
			if err := f.Parse(args); err != nil {
				t.Fatal(err)
			}
			err := applyConfigSources(f, "config")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	f, _, _, _ := newTestFlags()
	if err := f.Parse([]string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigSources(f, "config"); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// TestDeployExampleConfig keeps deploy/wharf.yaml valid: every key is a
// flag of wharf serve and every value parses.
func TestDeployExampleConfig(t *testing.T) {
	cmd := newServeCommand()
	if err := cmd.Flags().Parse([]string{"--config", filepath.Join("..", "..", "deploy", "wharf.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigSources(cmd.Flags(), "config"); err != nil {
		t.Fatalf("deploy/wharf.yaml: %v", err)
	}
	for flag, want := range map[string]string{"bootstrap-expect": "3", "join": "[10.0.0.1:5003,10.0.0.2:5003,10.0.0.3:5003]", "write-quorum": "2"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("%s = %s, want %s", flag, got, want)
		}
	}
}

// TestMinFreeSpaceFlag checks --min-free-space from each source, and the
// disk watcher's thresholds it makes.
func TestMinFreeSpaceFlag(t *testing.T) {
	tests := []struct {
		name              string
		args              []string
		env, yaml         string
		wantReserve       string
		wantFloor, ofSize int64
		wantErr           string
	}{
		{name: "default", wantReserve: "1GiB", wantFloor: 256 << 20},
		{name: "flag", args: []string{"--min-free-space", "10GiB"}, wantReserve: "10GiB", wantFloor: 10 << 28},
		{name: "environment", env: "5%", wantReserve: "5%", ofSize: 1000 << 20, wantFloor: 1000 << 20 / 80},
		{name: "file", yaml: "min-free-space: 512MiB\n", wantReserve: "512MiB", wantFloor: 128 << 20},
		{name: "off", args: []string{"--min-free-space", "0"}, wantReserve: "0", wantFloor: 0},
		{name: "bad unit", env: "5 parsecs", wantErr: "WHARF_MIN_FREE_SPACE"},
		{name: "bad percentage", yaml: "min-free-space: 150%\n", wantErr: "percentage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("WHARF_MIN_FREE_SPACE", tt.env)
			}
			args := tt.args
			if tt.yaml != "" {
				file := filepath.Join(t.TempDir(), "wharf.yaml")
				if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", file)
			}
			cmd := newServeCommand()
			flags := cmd.Flags()
			err := flags.Parse(args)
			if err == nil {
				err = applyConfigSources(flags, "config")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			flag := flags.Lookup("min-free-space")
			if got := flag.Value.String(); got != tt.wantReserve {
				t.Errorf("min-free-space = %s, want %s", got, tt.wantReserve)
			}
			reserve := *flag.Value.(*diskspace.Threshold)
			cfg := serveOptions{minFreeSpace: reserve}.diskConfig(nil, nil)
			if got := cfg.Floor.Of(tt.ofSize); got != tt.wantFloor {
				t.Errorf("floor %d bytes, want %d", got, tt.wantFloor)
			}
		})
	}
}
