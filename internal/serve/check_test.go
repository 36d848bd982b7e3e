package serve_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"sluice/admission"
	"sluice/internal/broker"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// Config.Check refuses what Start would, each error a SettingError naming
// its setting and matching the package's sentinel; Start refuses the same
// before it binds a port or writes its store.
func TestCheckIsWhatStartRefusesFirst(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, c := range []struct {
		name     string
		change   func(*serve.Config)
		setting  string
		sentinel error
	}{
		{"buyer header without proxies", func(c *serve.Config) { c.Gate.BuyerHeader = "X-User-Id" }, "buyer-header", admission.ErrBuyerHeaderUntrusted},
		{"certificate without its key", func(c *serve.Config) { c.TLSCert = "cert.pem" }, "tls-cert", serve.ErrTLSConfig},
		{"cluster user without password", func(c *serve.Config) {
			c.ClusterListen, c.ServerName, c.ClusterUser = "127.0.0.1:0", "g1", "route"
		}, "cluster-user", broker.ErrClusterAuth},
		{"route TLS in part", func(c *serve.Config) {
			c.ClusterListen, c.ServerName, c.ClusterTLSCert = "127.0.0.1:0", "g1", "route.pem"
		}, "cluster-tls-cert", broker.ErrClusterTLS},
		{"drain without NATS", func(c *serve.Config) { c.DrainOnly = true }, "nats-url", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := gatetest.Config(t)
			cfg.DataDir = filepath.Join(t.TempDir(), "store")
			cfg.Listen = held.Addr().String() // busy: Start must fail on the setting first
			c.change(&cfg)
			for what, err := range map[string]error{"Check": cfg.Check(), "Start": start(cfg)} {
				var se *serve.SettingError
				if !errors.As(err, &se) || se.Setting != c.setting || (c.sentinel != nil && !errors.Is(err, c.sentinel)) {
					t.Errorf("%s: %v, want a SettingError for %s (%v)", what, err, c.setting, c.sentinel)
				}
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				t.Errorf("the store was made: %v", err)
			}
		})
	}
	cfg := gatetest.Config(t)
	if err := cfg.Check(); err != nil {
		t.Errorf("a test gate's config: %v", err)
	}
}

func start(cfg serve.Config) error {
	s, err := serve.Start(context.Background(), cfg)
	if err == nil {
		s.Shutdown(context.Background())
	}
	return err
}
