package testenv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Exclusive keeps the test from running at the same time as any other
// Exclusive test of any package: go test runs packages' binaries side by
// side, and a test that takes both cores for seconds (a million-ticket
// line under -race, twenty thousand joins) starves one that measures
// time or needs a cluster to settle (the pacer's rate, acks landing on a
// replicated consumer). It holds an exclusive lock on a file in the
// system's temporary directory until the test ends.
func Exclusive(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "sluice-exclusive-tests.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("exclusive test lock: %v", err)
	}
	asked := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("exclusive test lock: %v", err)
	}
	// The wait is part of the test's elapsed time in go test's output:
	// said here, the time the test itself took can be told from it.
	if waited := time.Since(asked); waited >= time.Second {
		t.Logf("waited %v for the exclusive test lock", waited.Round(100*time.Millisecond))
	}
	held := time.Now()
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		t.Logf("held the exclusive test lock for %v", time.Since(held).Round(100*time.Millisecond))
	})
}
