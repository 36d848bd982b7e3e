// Package testbin gives tests the sluice binary, built once for every
// package of a test run: the tests that run it as a subprocess (kill -9,
// SIGTERM, three clustered gates, the documentation's commands) share one
// build instead of building it per package.
//
// It is built without -race, even when the tests have it: a race-checked
// gate is several times slower, and the fault test's three clustered
// gates took 458 s for one seed with it, against about a minute without.
// It is built as deploy/build-image.sh builds the image's binary
// (CGO_ENABLED=0, -trimpath): the compiled packages are then the same,
// and the image test's build only links. With the defaults instead, a
// run from an empty build cache compiled every dependency three times
// (with -race for the tests, for this binary, and for the image), and
// modernc.org/sqlite and nats-server alone take a minute of both cores
// each time.
// It is kept under the system's temporary directory, keyed by a hash of
// the module's sources and the Go version, so that a second package (or a
// second run on the same sources) finds it built instead of building it
// again. SLUICE_TEST_BIN names a binary to use instead.
package testbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	once sync.Once
	path string
	err  error
)

// Path returns the sluice binary's path, building it the first time any
// test of any package asks for these sources.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(func() { path, err = build() })
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func build() (string, error) {
	if p := os.Getenv("SLUICE_TEST_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SLUICE_TEST_BIN: %w", err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	top := filepath.Join(os.TempDir(), "sluice-test-bin")
	dir := filepath.Join(top, key)
	bin := filepath.Join(dir, "sluice")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One build at a time: packages run in parallel, and the second waits
	// for the first's binary instead of building its own.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close too
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin+".tmp", "./cmd/sluice")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		return "", err
	}
	removeStale(top, key)
	return bin, nil
}

// removeStale removes the builds of other sources older than an hour:
// each is tens of megabytes, and a source tree being edited makes many.
func removeStale(top, keep string) {
	entries, _ := os.ReadDir(top)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.Name() != keep && time.Since(info.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(top, e.Name()))
		}
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbin: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// sourceKey hashes every file the binary may be built from (Go files but
// tests, go.mod, go.sum and anything embedded) and the Go version.
func sourceKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, ".") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\x00", rel)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("testbin: hash the sources: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}
