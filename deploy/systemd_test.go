package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sluice/internal/testenv"
)

// The unit passes systemd-analyze verify with nothing to say: a misspelt
// key, a bad value or a missing command fails the test. Its ExecStart
// points at a freshly built sluice (verify checks the command exists), and
// the unit keeps what the guide promises.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze is not installed (apt-get install systemd)", "SLUICE_REQUIRE_SYSTEMD")
	}
	raw, err := os.ReadFile("systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=sluice", "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "EnvironmentFile=-/etc/sluice/env",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	dir := t.TempDir()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/sluice", sluiceBinary(t))
	path := filepath.Join(dir, "sluice.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// verify exits 0 on an unknown key: what it says about the unit counts.
	about := regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(path)+`.*$|(?m)^.*sluice\.service.*$`).FindAllString(string(out), -1)
	if err != nil || len(about) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
