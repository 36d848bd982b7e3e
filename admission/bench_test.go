package admission_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"sluice/internal/broker"
	"sluice/internal/gatetest"
	"sluice/internal/ledger"
)

// nopWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handler and not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkSoldOut is the diverted path of a sold-out sale through the
// gate's real handler, instrumentation included.
func BenchmarkSoldOut(b *testing.B) {
	srv := gatetest.Start(b, gatetest.Config(b, ledger.Sale{Name: "s1", Stock: 1}))
	c := gatetest.Client()
	gatetest.Order(b, c, "http://"+srv.APIAddr(), "s1", "first", "")
	if a := gatetest.Order(b, c, "http://"+srv.APIAddr(), "s1", "second", ""); a.Status != 410 {
		b.Fatalf("not sold out: %d", a.Status)
	}
	h := srv.APIHandler()
	body := `{"buyer_id":"someone"}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest("POST", "/v1/sales/s1/orders", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.RemoteAddr = "127.0.0.1:5000"
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkBareHandler writes the same bytes as the sold-out answer with
// nothing else: the floor BenchmarkSoldOut is compared with.
func BenchmarkBareHandler(b *testing.B) {
	payload := []byte(`{"type":"https://sluice.dev/problems/sold-out","title":"Sold out","status":410,"detail":"Every item of this sale has been taken. It will not come back.","reason":"sold_out","sale":"s1"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(410)
		_, _ = w.Write(payload)
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest("POST", "/v1/sales/s1/orders", strings.NewReader(`{"buyer_id":"someone"}`))
			req.Header.Set("Content-Type", "application/json")
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkAdmit is the admit path: decode, publish to the embedded
// JetStream, wait for the PubAck, answer 202. Every order is a new buyer.
// The sub-benchmarks are the two --sync modes.
func BenchmarkAdmit(b *testing.B) {
	for _, mode := range []broker.Sync{broker.SyncInterval, broker.SyncAlways} {
		b.Run("sync="+string(mode), func(b *testing.B) { benchAdmit(b, mode) })
	}
}

func benchAdmit(b *testing.B, mode broker.Sync) {
	cfg := gatetest.Config(b, ledger.Sale{Name: "s1", Stock: 50_000_000})
	cfg.Sync = mode
	srv := gatetest.Start(b, cfg)
	h := srv.APIHandler()
	var n atomic.Int64
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64) // publishers wait on PubAcks; keep many in flight
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &statusWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest("POST", "/v1/sales/s1/orders",
				strings.NewReader(fmt.Sprintf(`{"buyer_id":"b%d"}`, n.Add(1))))
			req.Header.Set("Content-Type", "application/json")
			req.RemoteAddr = "127.0.0.1:5000"
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.code != 202 {
				failed.Add(1)
			}
		}
	})
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d orders not admitted", f)
	}
}

type statusWriter struct {
	nopWriter
	h    http.Header
	code int
}

func (w *statusWriter) Header() http.Header { return w.h }
func (w *statusWriter) WriteHeader(c int)   { w.code = c }
