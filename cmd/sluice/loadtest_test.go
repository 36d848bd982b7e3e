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
