package serve_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testcert"
)

// tlsClient trusts only ca and keeps one connection to the gate, so that
// a test can tell a reused connection from a new one.
func tlsClient(ca *testcert.CA) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
	}}
}

// served asks the gate at base for a sale over c and says which
// certificate answered and whether the connection was a reused one.
func served(t *testing.T, c *http.Client, base string) (serial *big.Int, reused bool) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/sales/s1", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	// Read to the end, or the client does not keep the connection.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET over TLS: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, reused
}

// The public API with --tls-cert and --tls-key speaks HTTPS, takes an
// order over it, refuses plain HTTP, and says when its certificate ends.
func TestPublicAPIOverTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	leaf := ca.Issue(t, "gate", []string{"127.0.0.1", "localhost"}, "", "")
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
	cfg.TLSCert, cfg.TLSKey = leaf.CertFile, leaf.KeyFile
	g := gatetest.Start(t, cfg)
	c := tlsClient(ca)
	base := "https://" + g.APIAddr()
	if a := gatetest.Order(t, c, base, "s1", "alice", ""); a.Status != http.StatusAccepted {
		t.Fatalf("order over HTTPS: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, base, "s1", "bob", ""); a.Status != http.StatusGone || a.Str("reason") != "sold_out" {
		t.Fatalf("second order over HTTPS: %d %s", a.Status, a.Raw)
	}
	// A plain HTTP request gets no order in: the TLS listener answers it
	// with no HTTP at all.
	if resp, err := gatetest.Client().Post("http://"+g.APIAddr()+"/v1/sales/s1/orders", "application/json", strings.NewReader(`{"buyer_id":"carol"}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP on the TLS listener answered %d", resp.StatusCode)
		}
	}
	if got := gauge(t, g, "sluice_tls_certificate_expiry_timestamp_seconds"); got != float64(leaf.Cert.NotAfter.Unix()) {
		t.Fatalf("expiry gauge %v, want %d", got, leaf.Cert.NotAfter.Unix())
	}
}

// gauge reads one unlabelled gauge of the gate's.
func gauge(t *testing.T, g *serve.Server, name string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A reload swaps the certificate for new connections and leaves open
// ones as they are; a broken pair on disk is refused and the last good
// certificate goes on being served.
func TestTLSReloadKeepsConnections(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	first := ca.Issue(t, "gate", []string{"127.0.0.1"}, certFile, keyFile)
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	g := gatetest.Start(t, cfg)
	base := "https://" + g.APIAddr()
	old := tlsClient(ca)
	if serial, _ := served(t, old, base); serial.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want the first certificate's", serial)
	}

	second := ca.Issue(t, "gate", []string{"127.0.0.1"}, certFile, keyFile)
	if err := g.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// The open connection is the same one, still on the first certificate.
	if serial, reused := served(t, old, base); !reused || serial.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("after reload the open connection: reused %v, serial %v", reused, serial)
	}
	if serial, reused := served(t, tlsClient(ca), base); reused || serial.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after reload a new connection: reused %v, serial %v; want the second certificate", reused, serial)
	}

	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if serial, _ := served(t, tlsClient(ca), base); serial.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: serial %v, want the second certificate still", serial)
	}
	mfs, _ := g.Registry().Gather()
	reloads := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "sluice_tls_reloads_total" {
			for _, m := range mf.GetMetric() {
				reloads[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if reloads["ok"] != 1 || reloads["error"] != 1 {
		t.Fatalf("sluice_tls_reloads_total %v, want ok 1 and error 1", reloads)
	}
}

// Under Run, SIGHUP reloads the certificate and does not end the gate.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	ca.Issue(t, "gate", []string{"127.0.0.1"}, certFile, keyFile)
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.Listen, cfg.OpsListen = freeAddr(t), freeAddr(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	base := "https://" + cfg.Listen
	gatetest.Eventually(t, 20*time.Second, "the gate to serve over TLS", func() bool {
		resp, err := tlsClient(ca).Get(base + "/v1/sales/s1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	second := ca.Issue(t, "gate", []string{"127.0.0.1"}, certFile, keyFile)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 10*time.Second, "new connections to get the second certificate", func() bool {
		serial, _ := served(t, tlsClient(ca), base)
		return serial.Cmp(second.Cert.SerialNumber) == 0
	})
	select {
	case err := <-done:
		t.Fatalf("the gate ended on SIGHUP: %v", err)
	default:
	}
}

// A certificate without its key (or the reverse) is refused at start.
func TestTLSNeedsBothFiles(t *testing.T) {
	ca := testcert.NewCA(t)
	leaf := ca.Issue(t, "gate", []string{"127.0.0.1"}, "", "")
	for _, files := range [][2]string{{leaf.CertFile, ""}, {"", leaf.KeyFile}} {
		cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
		cfg.TLSCert, cfg.TLSKey = files[0], files[1]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g, err := serve.Start(ctx, cfg)
		cancel()
		if !errors.Is(err, serve.ErrTLSConfig) {
			if g != nil {
				_ = g.Shutdown(context.Background())
			}
			t.Fatalf("start with %q: %v, want ErrTLSConfig", files, err)
		}
	}
}
