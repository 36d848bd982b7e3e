package serve_test

import (
	"strings"
	"testing"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A start logs the gate's own lines at info, not the embedded NATS
// server's banner of some twenty lines (those are at debug).
func TestStartLogsNoNATSBannerAtInfo(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
	log, lines := gatetest.CaptureLog(t)
	cfg.Logger = log
	gatetest.Start(t, cfg)
	out := lines.String()
	if !strings.Contains(out, "sluice gate up") || !strings.Contains(out, "nats_server=2.") {
		t.Fatalf("no start line with the NATS server's version:\n%s", out)
	}
	if n := strings.Count(out, "component=nats"); n > 0 {
		t.Fatalf("%d lines of the NATS server at info on a start:\n%s", n, out)
	}
}
