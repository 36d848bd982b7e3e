package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
)

// The sample config the guide shows is a file in the repository, it
// loads, its sale is not closed (a past window would provision a sale
// that takes nothing), and the guide shows the file as it is.
func TestSampleConfig(t *testing.T) {
	const path = "../../docs/examples/sluice.yaml"
	t.Setenv("SLUICE_ADMIN_TOKEN", "") // restored after the test
	os.Unsetenv("SLUICE_ADMIN_TOKEN")  // the environment must not stand in for the file
	cfg, err := parseServe([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(cfg.Sales) != 1 || cfg.Sales[0].Name != "spring-drop" || cfg.AdminToken == "" {
		t.Fatalf("sales %+v, admin token %q", cfg.Sales, cfg.AdminToken)
	}
	if s := cfg.Sales[0].Sale; s.PhaseAt(time.Now()) == ledger.Closed || s.PayloadSchema == nil || s.MaxWait == 0 {
		t.Errorf("the sample's sale: phase %v, payload schema %v, max_wait %v", s.PhaseAt(time.Now()), s.PayloadSchema != nil, s.MaxWait)
	}
	file, _ := os.ReadFile(path)
	guide, _ := os.ReadFile("../../docs/configuration.md")
	if !strings.Contains(string(guide), "```yaml\n"+string(file)+"```\n") {
		t.Errorf("docs/configuration.md does not show %s as it is", path)
	}
}
