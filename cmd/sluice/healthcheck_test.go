package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// sluice healthcheck says ready for a running gate, read from flags or
// from the gate's own config file, and fails for a port where none runs.
func TestHealthcheck(t *testing.T) {
	g := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1}))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck", "--ops-listen", g.OpsAddr()}, &out, io.Discard); err != nil {
		t.Fatalf("healthcheck of a ready gate: %v", err)
	}
	if !strings.Contains(out.String(), "/readyz: ready") {
		t.Fatalf("healthcheck printed %q", out.String())
	}
	_, port, _ := net.SplitHostPort(g.OpsAddr())
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	// A gate's whole file: healthcheck takes ops_listen and leaves the rest.
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:0\nops_listen: 0.0.0.0:"+port+"\nsale: [s1=5]\nreplicas: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"healthcheck", "--config", conf, "--live"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck --config of a gate listening on every interface: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().String()
	l.Close()
	err = run(context.Background(), []string{"healthcheck", "--ops-listen", free}, io.Discard, io.Discard)
	if exitCode(err) != 1 {
		t.Fatalf("healthcheck of no gate: exit %d (%v), want 1", exitCode(err), err)
	}
}
