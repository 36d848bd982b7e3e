package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testbin"
)

// binary is the sluice binary, built once for every package of the run.
func binary(t *testing.T) string {
	t.Helper()
	return testbin.Path(t)
}

// proc is a sluice serve subprocess.
type proc struct {
	cmd  *exec.Cmd
	api  string
	ops  string // the ops listener, as its "up" log line names it
	done chan error
}

// startServe runs `sluice serve` with args and waits for its "gate up" log.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	return startWith(t, "sluice gate up", append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
}

// startWith runs sluice with args (the ops listener on a free port, JSON
// logs) and waits for the log line ready.
func startWith(t *testing.T, ready string, args ...string) *proc {
	t.Helper()
	p, err := launch(t, ready, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch is startWith for any goroutine: it returns the error instead of
// failing the test (several gates of a cluster must start at once).
func launch(t *testing.T, ready string, args ...string) (*proc, error) {
	args = append(args[:1:1], append([]string{"--ops-listen", "127.0.0.1:0", "--log-format", "json"}, args[1:]...)...)
	cmd := exec.Command(binary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	up := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == ready {
				api, _ := rec["api"].(string)
				ops, _ := rec["ops"].(string)
				up <- [2]string{api, ops}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case addrs := <-up:
		p.api, p.ops = addrs[0], addrs[1]
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("sluice %s exited before it was up: %v", args[0], err)
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("sluice %s did not come up", args[0])
	}
	return p, nil
}

// SIGTERM in the middle of a burst: every order answered 202 is in the
// ledger after a restart.
func TestSIGTERMDuringBurstLosesNoAdmittedOrder(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, "--data-dir", dir, "--sale", "s1=100000", "--no-demo")
	base := "http://" + p.api
	b := startBurst(t, base, 5000)
	b.waitFor(t, 500)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("sluice serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sluice serve did not exit after SIGTERM")
	}
	admitted := b.stop()
	p.done <- nil // for the cleanup's receive

	q := startServe(t, "--data-dir", dir, "--no-demo")
	c := gatetest.Client()
	sale := gatetest.Get(t, c, "http://"+q.api+"/v1/sales/s1")
	if got := int(sale.Body["admitted"].(float64)); got != len(admitted) {
		t.Errorf("ledger holds %d orders after restart, %d were answered 202", got, len(admitted))
	}
	for _, id := range admitted {
		if a := gatetest.Get(t, c, "http://"+q.api+"/v1/orders/"+id); a.Status != 200 {
			t.Fatalf("order %s answered 202 before SIGTERM is missing after restart: %d", id, a.Status)
		}
	}
	t.Logf("%d orders admitted before SIGTERM, all present after restart", len(admitted))
}

// burst is 32 clients ordering as distinct buyers until the gate goes
// away or each has sent perClient orders; it keeps the ids answered 202.
type burst struct {
	mu       sync.Mutex
	admitted []string
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

func startBurst(t *testing.T, base string, perClient int) *burst {
	t.Helper()
	b := &burst{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b.cancel = cancel
	c := gatetest.Client()
	for w := range 32 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for i := 0; ctx.Err() == nil && i < perClient; i++ {
				req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/sales/s1/orders",
					strings.NewReader(fmt.Sprintf(`{"buyer_id":"w%d-%d"}`, w, i)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					return // the gate is gone
				}
				var body struct {
					OrderID string `json:"order_id"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode == 202 {
					b.mu.Lock()
					b.admitted = append(b.admitted, body.OrderID)
					b.mu.Unlock()
				}
			}
		}()
	}
	return b
}

// waitFor waits until at least n orders were admitted.
func (b *burst) waitFor(t *testing.T, n int) {
	t.Helper()
	gatetest.Eventually(t, 20*time.Second, fmt.Sprintf("%d orders admitted", n), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.admitted) >= n
	})
}

// stop waits for the clients and returns the admitted ids.
func (b *burst) stop() []string {
	b.wg.Wait()
	b.cancel()
	return b.admitted
}

func TestReadmeQuickstartDefaults(t *testing.T) {
	// `sluice serve` with no arguments: demo sale, API on :8080 is the
	// default; here only the parse is checked, the listeners are the
	// integration tests' business.
	cfg, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || cfg.OpsListen != "127.0.0.1:9464" || cfg.DataDir != "./sluice-data" || cfg.NoDemo || len(cfg.Sales) != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigLayering(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sluice.yaml")
	err := os.WriteFile(file, []byte(`
listen: "127.0.0.1:7000"
ops_listen: "127.0.0.1:7001"
ip_rate: 5
trusted_proxies: ["10.0.0.0/8", "127.0.0.1"]
sales:
  - name: spring
    stock: 500
    per_buyer: 2
    rate: 200
    queue_bound: 1000
    backend_rate: 50
    max_wait: 1m30s
    starts_at: 2026-12-01T10:00:00Z
backend_rate: 120
buyer_token_issuer: "https://shop.example"
buyer-token-cookie: shop_session
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_OPS_LISTEN", "127.0.0.1:7101")
	t.Setenv("SLUICE_BUYER_RATE", "2")
	t.Setenv("SLUICE_BUYER_TOKEN_JWKS", "https://shop.example/.well-known/jwks.json")
	t.Setenv("SLUICE_LISTEN", "") // empty: unset, the file's stands
	cfg, err := parseServe([]string{"--config", file, "--ip-rate", "9", "--sale", "spring=600", "--sale", "other=5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" {
		t.Errorf("listen from file, beside an empty SLUICE_LISTEN: %q", cfg.Listen)
	}
	if cfg.OpsListen != "127.0.0.1:7101" {
		t.Errorf("env beats file: %q", cfg.OpsListen)
	}
	if cfg.Gate.IPRate != 9 || cfg.Gate.BuyerRate != 2 {
		t.Errorf("flag beats file (ip %v), env sets buyer rate (%v)", cfg.Gate.IPRate, cfg.Gate.BuyerRate)
	}
	if bt := cfg.BuyerToken; bt.JWKSURL != "https://shop.example/.well-known/jwks.json" || bt.Issuer != "https://shop.example" || bt.Cookie != "shop_session" {
		t.Errorf("buyer token from env and file: %+v", bt)
	}
	if len(cfg.Gate.TrustedProxies) != 2 {
		t.Errorf("trusted proxies %v", cfg.Gate.TrustedProxies)
	}
	if len(cfg.Sales) != 2 || cfg.Sales[0].Stock != 600 || cfg.Sales[0].PerBuyer != 2 || cfg.Sales[0].QueueBound != 1000 ||
		cfg.Sales[0].StartsAt.IsZero() || cfg.Sales[0].StockOnly || !cfg.Sales[1].StockOnly {
		t.Errorf("sales %+v", cfg.Sales)
	}
	if cfg.Sales[0].BackendRate != 50 || cfg.Sales[0].MaxWait.Seconds() != 90 || cfg.Drain.BackendRate != 120 {
		t.Errorf("pace from file: sale %v/s within %v s, process %v/s", cfg.Sales[0].BackendRate, cfg.Sales[0].MaxWait.Seconds(), cfg.Drain.BackendRate)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("listne: x\n"), 0o600)
	for name, args := range map[string][]string{
		"bad sale":       {"--sale", "s1"},
		"zero stock":     {"--sale", "s1=0"},
		"bad sale name":  {"--sale", "S 1=5"},
		"bad sync":       {"--sync", "sometimes"},
		"bad proxy":      {"--trusted-proxies", "nope"},
		"unknown key":    {"--config", bad},
		"missing config": {"--config", filepath.Join(dir, "none.yaml")},
		"stray argument": {"extra"},
		"bad size":       {"--memory-limit", "lots"},
	} {
		if _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("%s: accepted %v", name, args)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("unknown command: %v", err)
	}
}

// TestEveryCommandHasHelp: --help prints the command's usage and exits 0,
// writing nothing (dashboards export --help once made a folder "--help").
func TestEveryCommandHasHelp(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"--help"}, {"serve", "--help"}, {"drain", "--help"}, {"loadtest", "--help"},
		{"dashboards", "--help"}, {"dashboards", "export", "--help"}, {"serve", "-h"}, {"status", "--help"}, {"healthcheck", "--help"},
		{"draw", "--help"}, {"draw", "verify", "--help"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if code := exitCode(err); code != 0 {
			t.Errorf("%v: exit %d (%v)", args, code, err)
		}
		if out.Len()+errOut.Len() == 0 {
			t.Errorf("%v printed no usage", args)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Fatalf("--help wrote %v", entries)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "sluice ") {
			t.Errorf("%v: %v %q", args, err, out.String())
		}
	}
}

// TestDrainHasItsOwnFlags: sluice drain takes the drain's flags only,
// says its own ops port, and accepts a config file shared with the gates.
func TestDrainHasItsOwnFlags(t *testing.T) {
	var usage bytes.Buffer
	_ = run(context.Background(), []string{"drain", "--help"}, &usage, io.Discard) // help goes to stdout
	for _, gateOnly := range []string{"-listen", "-sale", "-sold-out-page", "-no-drain", "-admin-token"} {
		if strings.Contains(usage.String(), "\n  "+gateOnly+" ") || strings.Contains(usage.String(), "\n  "+gateOnly+"\n") {
			t.Errorf("drain --help lists %s", gateOnly)
		}
	}
	if !strings.Contains(usage.String(), `"127.0.0.1:9465"`) {
		t.Errorf("drain --help does not say its ops default is 9465:\n%s", usage.String())
	}
	if _, err := parseConfig("drain", []string{"--nats-url", "nats://127.0.0.1:4222", "--sale", "s1=5"}, io.Discard, io.Discard); err == nil {
		t.Error("drain accepted --sale")
	}
	shared := filepath.Join(t.TempDir(), "sluice.yaml")
	_ = os.WriteFile(shared, []byte("listen: \":8081\"\nadmin_token: x\nworkers: 7\nsales:\n  - name: s1\n    stock: 5\n"), 0o600)
	cfg, err := parseConfig("drain", []string{"--nats-url", "nats://127.0.0.1:4222", "--config", shared}, io.Discard, io.Discard)
	if err != nil || cfg.Drain.Workers != 7 || len(cfg.Sales) != 0 || cfg.OpsListen != "127.0.0.1:9465" {
		t.Fatalf("drain with a shared config: %v, workers %d, sales %v, ops %s", err, cfg.Drain.Workers, cfg.Sales, cfg.OpsListen)
	}
}

func TestMemoryLimitSizes(t *testing.T) {
	for in, want := range map[string]int64{"2GiB": 2 << 30, "1500MB": 1500e6, "512": 512, "64 MiB": 64 << 20} {
		cfg, err := parseServe([]string{"--memory-limit", in}, io.Discard)
		if err != nil || cfg.MemoryLimit != want {
			t.Errorf("--memory-limit %s = %d, %v; want %d", in, cfg.MemoryLimit, err, want)
		}
	}
}
