package serve

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/series"
)

// certificate is the public listener's TLS certificate, read from its two
// files and swapped whole by reload. Each handshake asks for the current
// one (tls.Config.GetCertificate), so a reload reaches new connections at
// once and leaves open ones alone: their handshake is done and their
// keys do not depend on the certificate any more. It is safe for
// concurrent use; reload calls are serialized.
type certificate struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
	mu                sync.Mutex // one reload at a time

	expiry  prometheus.Gauge
	reloads *prometheus.CounterVec
}

func newCertificate(certFile, keyFile string, reg prometheus.Registerer, log *slog.Logger) (*certificate, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, ErrTLSConfig
	}
	c := &certificate{certFile: certFile, keyFile: keyFile, log: log,
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_tls_certificate_expiry_timestamp_seconds",
			Help: "When the public listener's TLS certificate expires (its NotAfter), as a Unix time.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_tls_reloads_total",
			Help: "Reloads of the public listener's TLS certificate (SIGHUP), by outcome: ok, or error (the old certificate stays).",
		}, []string{"outcome"}),
	}
	series.AtZero(c.reloads, "ok", "error")
	if err := c.load(); err != nil {
		return nil, err
	}
	reg.MustRegister(c.expiry, c.reloads)
	return c, nil
}

// load reads both files and, only if they make a valid pair, makes them
// the current certificate.
func (c *certificate) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pair, err := loadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cur.Store(pair)
	c.expiry.Set(float64(pair.Leaf.NotAfter.Unix()))
	return nil
}

// loadKeyPair reads a certificate and its key and checks that they
// match. Its errors name both files once: crypto/tls's own begin with
// "tls: " already.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	pair.Leaf = leaf
	return &pair, nil
}

// reload reads the files again (SIGHUP). On failure the current
// certificate stays and keeps being served.
func (c *certificate) reload() error {
	if err := c.load(); err != nil {
		c.reloads.WithLabelValues("error").Inc()
		c.log.Error("TLS certificate not reloaded; the previous one is still served", "err", err)
		return err
	}
	c.reloads.WithLabelValues("ok").Inc()
	leaf := c.cur.Load().Leaf
	c.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// config is the public listener's TLS configuration. HTTP/1.1 only:
// fasthttp speaks no HTTP/2.
func (c *certificate) config() *tls.Config {
	return &tls.Config{
		GetCertificate: c.get,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
	}
}
