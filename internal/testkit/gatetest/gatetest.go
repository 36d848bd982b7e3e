// Package gatetest starts real gates for tests: an in-process JetStream
// server with its store in a temporary directory, the public API and ops
// listener on loopback port 0.
package gatetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/internal/ledger"
	"sluice/internal/serve"
)

// Config returns a gate config for tests: loopback listeners on free
// ports, a temporary data dir, no demo sale, a fast refresh, quiet logs.
func Config(t testing.TB, sales ...ledger.Sale) serve.Config {
	t.Helper()
	cfg := serve.Config{
		Listen:          "127.0.0.1:0",
		OpsListen:       "127.0.0.1:0",
		DataDir:         t.TempDir(),
		NoDemo:          true,
		Refresh:         50 * time.Millisecond,
		ShutdownTimeout: 10 * time.Second,
		Logger:          Logger(t),
	}
	for _, s := range sales {
		cfg.Sales = append(cfg.Sales, serve.SaleSpec{Sale: s})
	}
	return cfg
}

// Logger logs warnings and errors through t.Log.
// SLUICE_TEST_LOG=debug logs everything, the embedded NATS server's
// debug lines included: for chasing a failing test.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Start starts a gate and shuts it down when the test ends.
func Start(t testing.TB, cfg serve.Config) *serve.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := serve.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start gate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// StartTogether starts the gates of a cluster at once (JetStream waits
// for a quorum: started one by one, the first never comes up) and shuts
// them down when the test ends.
func StartTogether(t testing.TB, cfgs ...serve.Config) []*serve.Server {
	t.Helper()
	gates := make([]*serve.Server, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			gates[i], errs[i] = serve.Start(ctx, cfgs[i])
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, g := range gates {
			if g == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = g.Shutdown(ctx)
			cancel()
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gate %d: %v", i+1, err)
		}
	}
	return gates
}

// Client is an HTTP client for many concurrent requests to one gate.
func Client() *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		MaxConnsPerHost:     256,
		IdleConnTimeout:     10 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Answer is a decoded API answer.
type Answer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// Str returns a string field of the body.
func (a Answer) Str(k string) string { s, _ := a.Body[k].(string); return s }

// Do sends a request and decodes the answer, and fails the test when an
// answer of the public API does not match its OpenAPI document.
func Do(t testing.TB, c *http.Client, req *http.Request) Answer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return Answer{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := Answer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Body)
	if err := CheckAnswer(req, resp.StatusCode, resp.Header, raw); err != nil {
		t.Error(err)
	}
	return a
}

// Order posts an order for buyer to sale; key, if not empty, is the
// Idempotency-Key.
func Order(t testing.TB, c *http.Client, base, sale, buyer, key string) Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/orders", strings.NewReader(`{"buyer_id":"`+buyer+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return Do(t, c, req)
}

// OrderVariant posts an order for buyer of a variant of sale; key, if
// not empty, is the Idempotency-Key.
func OrderVariant(t testing.TB, c *http.Client, base, sale, buyer, variant, key string) Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/orders",
		strings.NewReader(`{"buyer_id":"`+buyer+`","variant":"`+variant+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return Do(t, c, req)
}

// Admin calls the admin API on a gate's ops listener (ops is its
// host:port) with the bearer token, none when empty.
func Admin(t testing.TB, c *http.Client, ops, method, path, token, body string) Answer {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+ops+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return Do(t, c, req)
}

// Get fetches a path.
func Get(t testing.TB, c *http.Client, url string) Answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	return Do(t, c, req)
}

// StreamMsgs returns how many orders a sale's stream holds.
func StreamMsgs(t testing.TB, l *ledger.Ledger, sale string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.State(ctx, sale)
	if err != nil {
		t.Fatalf("state of %s: %v", sale, err)
	}
	return st.Admitted
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FillLedger admits n orders straight into a sale's ledger, 64 at a time,
// for buyers b1…bn: a backlog for the drain, without the HTTP API. It
// returns the orders' ids, in buyer order.
func FillLedger(t testing.TB, l *ledger.Ledger, sale string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				buyer := fmt.Sprint("b", i)
				o := ledger.Order{Sale: sale, BuyerID: buyer, Token: ledger.NewToken(), AdmittedAt: time.Now()}
				id, _, err := l.Place(context.Background(), o, "b|"+buyer)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i-1] = id.String()
			}
		}()
	}
	wg.Wait()
	return ids
}

// IgnoreServerClock is the goleak option for the one goroutine fasthttp
// keeps per process for the Date header of its answers: the first gate
// started in a test binary starts it, and nothing stops it.
var IgnoreServerClock = goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1")

// Lines keeps the lines of a logger, for tests that check what a gate
// logs. It is safe for concurrent use.
type Lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Count is how many kept lines contain s.
func (l *Lines) Count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// CaptureLog returns a logger that keeps its lines (info and up) in the
// returned Lines and also logs warnings and errors through t.Log.
func CaptureLog(t testing.TB) (*slog.Logger, *Lines) {
	lines := &Lines{}
	keep := slog.NewTextHandler(lines, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(teeHandler{keep, Logger(t).Handler()}), lines
}

// teeHandler hands every record to both handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	for _, x := range []slog.Handler{h.a, h.b} {
		if x.Enabled(ctx, r.Level) {
			err = errors.Join(err, x.Handle(ctx, r.Clone()))
		}
	}
	return err
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h.a.WithGroup(g), h.b.WithGroup(g)}
}

// IgnoreWorkerPoolCleaner is the goleak option for a stopped fasthttp
// server's worker-pool cleaner, which notices the stop when it next wakes,
// within a second (the gate's MaxIdleWorkerDuration). For checks made
// right after a test; internal/serve's TestShutdownLeavesNoGoroutines
// waits for it to end instead.
var IgnoreWorkerPoolCleaner = goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2")
