package dashboards_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testcert"
	"sluice/loadtest"
)

// e2eSale is the sale the gate under test sells: a rate limit below the
// spike's peak and a queue bound, so that the panels about throttling
// show it happening; a backend rate and a max wait too high to bind, so
// that the panels about the pace have their series.
var e2eSale = ledger.Sale{Name: "s1", Stock: 300, Rate: 200, QueueBound: 100000,
	BackendRate: 1e6, MaxWait: ledger.Duration(time.Hour)}

// startGate starts a real gate with its drain into SQLite, and waits until
// the drain follows the sale (its per-sale series exist).
func startGate(t *testing.T) *serve.Server {
	t.Helper()
	// A waiting room that opens in an hour: its series exist from the start.
	// A sale with variants: the per-variant panels' series.
	cfg := gatetest.Config(t, e2eSale, ledger.Sale{Name: "queue", Stock: 10, WaitingRoom: true,
		StartsAt: time.Now().Add(time.Hour), LineOpens: ledger.Duration(2 * time.Hour)},
		ledger.Sale{Name: "sizes", Variants: map[string]int64{"us9": 5, "us10": 8}})
	// Every client is 127.0.0.1: a generous per-address limit, and a
	// per-buyer one that greedy buyers run into.
	cfg.Gate.IPRate, cfg.Gate.IPBurst = 1e6, 1e5
	cfg.Gate.BuyerRate, cfg.Gate.BuyerBurst = 1, 1
	cfg.Drain.BackendRate = 1e6
	srv := gatetest.Start(t, cfg)
	gatetest.Eventually(t, 10*time.Second, "drain follows s1", func() bool {
		fams, err := srv.Registry().Gather()
		if err != nil {
			return false
		}
		for _, f := range fams {
			if f.GetName() == "sluice_drain_consumer_pending" && len(f.GetMetric()) > 0 {
				for _, f := range fams {
					if f.GetName() == "sluice_line_tickets" && len(f.GetMetric()) > 0 {
						return true
					}
				}
			}
		}
		return false
	})
	return srv
}

// metricTypes are the series names a registry exposes, with their type:
// a histogram "h" gives h_bucket, h_count and h_sum (counters) besides h.
type metricTypes map[string]dto.MetricType

func (m metricTypes) add(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		n, typ := f.GetName(), f.GetType()
		m[n] = typ
		switch typ {
		case dto.MetricType_HISTOGRAM:
			m[n+"_bucket"] = dto.MetricType_COUNTER
			m[n+"_count"] = dto.MetricType_COUNTER
			m[n+"_sum"] = dto.MetricType_COUNTER
		case dto.MetricType_SUMMARY:
			m[n+"_count"] = dto.MetricType_COUNTER
			m[n+"_sum"] = dto.MetricType_COUNTER
		}
	}
}

func (m metricTypes) counter(name string) bool {
	return m[name] == dto.MetricType_COUNTER ||
		(strings.HasSuffix(name, "_total") && m[name] == dto.MetricType_UNTYPED)
}

// startTLSGate starts a second, small gate serving its public API over
// TLS with a real certificate, and taking buyers from a shop's JWKS
// served on loopback: only such a gate registers the TLS and buyer-token
// metrics. The main test gate stays plain HTTP, with buyers in the body,
// for the tests that load it.
func startTLSGate(t *testing.T) *serve.Server {
	t.Helper()
	ca := testcert.NewCA(t)
	leaf := ca.Issue(t, "gate", []string{"127.0.0.1", "localhost"}, "", "")
	cfg := gatetest.Config(t, ledger.Sale{Name: "tls", Stock: 1})
	cfg.TLSCert, cfg.TLSKey = leaf.CertFile, leaf.KeyFile
	cfg.BuyerToken.JWKSURL = shopJWKS(t)
	return gatetest.Start(t, cfg)
}

// shopJWKS serves a JWKS of one Ed25519 key on loopback and returns its URL.
func shopJWKS(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
		"alg": "EdDSA", "use": "sig", "x": base64.RawURLEncoding.EncodeToString(pub)}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// realMetrics gathers the metric names of a running gate (with its drain
// and SQLite backend), of a gate serving TLS and of the load generator,
// from their own code; and those registries, by what they belong to.
func realMetrics(t *testing.T, gate *serve.Server) (metricTypes, map[string]prometheus.Gatherer) {
	t.Helper()
	lt := prometheus.NewRegistry()
	loadtest.NewMetrics(lt)
	gs := map[string]prometheus.Gatherer{"gate": gate.Registry(), "tls gate": startTLSGate(t).Registry(), "loadtest": lt}
	m := metricTypes{}
	for _, g := range gs {
		m.add(t, g)
	}
	return m, gs
}
