package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestDashboardsExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"dashboards", "export", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"overview.json", "admission.json", "drain.json", "loadtest.json",
		"prometheus.yml", "alerts.yml", "provisioning/dashboards/sluice.yaml", "provisioning/datasources/prometheus.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", f, err)
		}
		if !bytes.Contains(out.Bytes(), []byte(filepath.Join(dir, f))) {
			t.Errorf("the written files listed lack %s", f)
		}
	}
	for _, args := range [][]string{{"dashboards"}, {"dashboards", "export"}, {"dashboards", "import", dir}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}
