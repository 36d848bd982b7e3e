package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/gatetest"
	"sluice/internal/ledger"
	"sluice/loadtest"
)

func TestLoadtestCommand(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 50}))
	html := filepath.Join(t.TempDir(), "report.html")
	var out bytes.Buffer
	err := run(context.Background(), []string{"loadtest", "--target", "http://" + srv.APIAddr(), "--sale", "s1",
		"--profile", "constant", "--rate", "400", "--duration", "1s", "--buyers", "300", "--json", "--html", html, "--quiet"},
		&out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json: %v", err)
	}
	if rep.Requests != 400 || rep.Verification == nil || !rep.Verification.Passed || rep.Verification.Confirmed != 50 {
		t.Fatalf("report: %d requests, verification %+v", rep.Requests, rep.Verification)
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<canvas") {
		t.Fatalf("--html: %v", err)
	}
}

func TestLoadtestRefusesARemoteTarget(t *testing.T) {
	err := run(context.Background(), []string{"loadtest", "--target", "http://8.8.8.8:80", "--quiet"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "allow-remote") {
		t.Fatalf("remote target: %v", err)
	}
}

// --threshold fails a run that misses it with k6's exit status 99, after
// printing the report; --compare shows the change from a --json report;
// a bad threshold or compare file fails before anything is sent.
func TestLoadtestThresholdsAndCompare(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "t1", Stock: 20}, ledger.Sale{Name: "t2", Stock: 20}))
	prev := filepath.Join(t.TempDir(), "prev.json")
	args := func(sale string, extra ...string) []string {
		return append([]string{"loadtest", "--target", "http://" + srv.APIAddr(), "--sale", sale, "--profile", "constant",
			"--rate", "200", "--duration", "500ms", "--buyers", "100", "--quiet"}, extra...)
	}
	var out bytes.Buffer
	err := run(context.Background(), args("t1", "--json", "--threshold", "dropped==0", "--threshold", "confirmed==20"), &out, io.Discard)
	if err != nil {
		t.Fatalf("thresholds that hold: %v", err)
	}
	if err := os.WriteFile(prev, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(context.Background(), args("t2", "--threshold", "p99<1us", "--threshold", "confirmed==20", "--compare", prev), &out, io.Discard)
	if code := exitCode(err); code != 99 {
		t.Fatalf("a missed threshold: exit %d (%v)", code, err)
	}
	text := out.String()
	for _, want := range []string{"Thresholds    FAILED", "✗ p99<1us", "✓ confirmed==20", "Compared with " + prev, "achieved_rate"} {
		if !strings.Contains(text, want) {
			t.Fatalf("report lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range [][]string{{"--threshold", "p99<<1ms"}, {"--compare", filepath.Join(t.TempDir(), "none.json")}} {
		if err := run(context.Background(), args("t2", bad...), io.Discard, io.Discard); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
