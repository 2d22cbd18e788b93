package fsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The FSM directory holds database generations and a CURRENT file naming the
// live one. Restore builds a new generation and switches CURRENT atomically.
const (
	currentFile      = "CURRENT"
	generationPrefix = "db-"
)

func generationName(n uint64) string { return fmt.Sprintf("%s%06d", generationPrefix, n) }

// parseGeneration returns the number of a generation directory name.
func parseGeneration(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, generationPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// readCurrent returns the generation CURRENT names; ok is false if there is
// no CURRENT file yet.
func readCurrent(dir string) (name string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", currentFile, err)
	}
	name = strings.TrimSpace(string(b))
	if _, valid := parseGeneration(name); !valid {
		return "", false, fmt.Errorf("%s names %q, not a database generation", currentFile, name)
	}
	return name, true, nil
}

// writeCurrent points CURRENT at generation name. The write is atomic and
// durable: temp file, fsync, rename, fsync of the directory.
func writeCurrent(dir, name string) error {
	tmp := filepath.Join(dir, currentFile+".tmp")
	if err := writeFileSync(tmp, []byte(name+"\n")); err != nil {
		return fmt.Errorf("write %s: %w", currentFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, currentFile)); err != nil {
		return fmt.Errorf("replace %s: %w", currentFile, err)
	}
	return syncDir(dir)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// generations lists the generation directories in dir.
func generations(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if _, ok := parseGeneration(e.Name()); ok && e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// nextGeneration returns a generation name above every existing one.
func nextGeneration(dir string) (string, error) {
	names, err := generations(dir)
	if err != nil {
		return "", err
	}
	var highest uint64
	for _, name := range names {
		n, _ := parseGeneration(name)
		highest = max(highest, n)
	}
	return generationName(highest + 1), nil
}

// removeGenerationsExcept deletes every generation but keep: leftovers of a
// restore that crashed before it switched CURRENT, or after it switched but
// before it removed the old generation.
func removeGenerationsExcept(dir, keep string) error {
	names, err := generations(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if name == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("remove stale generation: %w", err)
		}
	}
	return nil
}
