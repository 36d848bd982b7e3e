package admission_test

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"sluice/internal/broker"
	"sluice/internal/gatetest"
	"sluice/internal/ledger"
)

var benchPeer = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}

// orderCtx is a request context holding POST /v1/sales/{sale}/orders,
// as fasthttp hands it to a handler.
func orderCtx(sale, body string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/sales/" + sale + "/orders")
	req.Header.SetContentType("application/json")
	req.SetBodyString(body)
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, benchPeer, nil)
	return ctx
}

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
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := orderCtx("s1", `{"buyer_id":"someone"}`)
		for pb.Next() {
			ctx.Response.Reset()
			h(ctx)
			if ctx.Response.StatusCode() != 410 {
				b.Errorf("status %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}

// BenchmarkBareHandler writes the same bytes as the sold-out answer with
// nothing else: the floor BenchmarkSoldOut is compared with.
func BenchmarkBareHandler(b *testing.B) {
	payload := []byte(`{"type":"https://sluice.dev/problems/sold-out","title":"Sold out","status":410,"detail":"Every item of this sale is taken. A returned one goes on sale.","reason":"sold_out","sale":"s1"}` + "\n")
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentType("application/problem+json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetStatusCode(410)
		ctx.Response.SetBodyRaw(payload)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := orderCtx("s1", `{"buyer_id":"someone"}`)
		for pb.Next() {
			ctx.Response.Reset()
			h(ctx)
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
		for pb.Next() {
			ctx := orderCtx("s1", fmt.Sprintf(`{"buyer_id":"b%d"}`, n.Add(1)))
			h(ctx)
			if ctx.Response.StatusCode() != 202 {
				failed.Add(1)
			}
		}
	})
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d orders not admitted", f)
	}
}
