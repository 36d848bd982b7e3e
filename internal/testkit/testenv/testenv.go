// Package testenv holds the one rule for tests that need a program the
// machine may lack (PostgreSQL, Chromium, Prometheus): skip with a clear
// message, unless CI said the program must be there.
package testenv

import (
	"os"
	"testing"
)

// Missing ends a test for want of a program. It skips with msg, or fails
// when the environment variable require is "1" (.ci/run sets it after
// installing the program), so that CI never passes by skipping.
func Missing(t testing.TB, msg, require string) {
	t.Helper()
	if os.Getenv(require) == "1" {
		t.Fatalf("%s; %s=1 requires it", msg, require)
	}
	t.Skip(msg)
}
