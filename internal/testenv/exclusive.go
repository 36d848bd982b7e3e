package testenv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("exclusive test lock: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
