package nginx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
)

// purchases is a stub shop on loopback: its home page, and the purchase
// endpoint the gate drains to, idempotent by Idempotency-Key.
type purchases struct {
	mu     sync.Mutex
	orders map[string]json.RawMessage // order id -> payload
}

func (p *purchases) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == "/purchase":
		var o struct {
			ID      string          `json:"order_id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID != r.Header.Get("Idempotency-Key") {
			http.Error(w, "bad order", 400)
			return
		}
		p.mu.Lock()
		p.orders[o.ID] = o.Payload
		p.mu.Unlock()
		w.WriteHeader(201)
	case r.URL.Path == "/":
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<h1>The shop</h1>")
	default:
		http.NotFound(w, r)
	}
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs the recipe (sluice.conf, upstreams and listen port
// filled in) in a real nginx in the foreground, stopped when the test ends.
func startNginx(t *testing.T, gate, shop string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			testenv.Missing(t, "nginx is not installed (apt-get install nginx)", "SLUICE_REQUIRE_NGINX")
		}
		bin = "/usr/sbin/nginx"
	}
	recipe, err := os.ReadFile("sluice.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := string(recipe)
	for old, repl := range map[string]string{
		"server 127.0.0.1:8080;": "server " + gate + ";",
		"server 127.0.0.1:3000;": "server " + shop + ";",
		"listen 80;":             fmt.Sprintf("listen 127.0.0.1:%d;", port),
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("sluice.conf no longer holds %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sluice.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/sluice.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if log, _ := os.ReadFile(filepath.Join(dir, "error.log")); len(log) > 0 {
			t.Logf("nginx error.log:\n%s", log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	gatetest.Eventually(t, 10*time.Second, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// from is a client whose connections come from a loopback address of its
// own, so that the gate behind nginx can tell clients apart.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func call(t *testing.T, c *http.Client, method, url, body string, hdr ...string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return gatetest.Do(t, c, req)
}

// The recipe serves the shop and sluice on one origin: the shop's page at
// /, orders bought and drained to the shop's endpoint, a line joined and
// its waiting page shown, the sold-out 410, all through nginx, every
// sluice answer uncached, and the client's address passed for
// --trusted-proxies (a client's own X-Forwarded-For ignored).
func TestNginxFrontDoor(t *testing.T) {
	shop := &purchases{orders: map[string]json.RawMessage{}}
	shopLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shopSrv := &http.Server{Handler: shop, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = shopSrv.Serve(shopLn) }()
	t.Cleanup(func() { _ = shopSrv.Shutdown(context.Background()) })

	cfg := gatetest.Config(t,
		ledger.Sale{Name: "drop", Stock: 3},
		ledger.Sale{Name: "room", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.Backend = "http://" + shopLn.Addr().String() + "/purchase"
	if cfg.Gate.TrustedProxies, err = admission.ParseTrustedProxies([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	// One order per client address: shows which address the gate saw.
	cfg.Gate.IPRate, cfg.Gate.IPBurst = 0.001, 1
	g := gatetest.Start(t, cfg)
	door := startNginx(t, g.APIAddr(), shopLn.Addr().String())

	if a := call(t, from("127.0.0.2"), "GET", door+"/", ""); a.Status != 200 || !strings.Contains(a.Raw, "The shop") {
		t.Fatalf("the shop's page through the door: %d %s", a.Status, a.Raw)
	}
	const payload = `{"sku":"TEE-1","size":"M"}`
	a := call(t, from("127.0.0.2"), "POST", door+"/v1/sales/drop/orders", `{"buyer_id":"alice","payload":`+payload+`}`, "Prefer", "wait=10")
	if a.Status != 201 || a.Str("status") != "confirmed" {
		t.Fatalf("buy through the door: %d %s", a.Status, a.Raw)
	}
	if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("order answer through the door: Cache-Control %q", cc)
	}
	shop.mu.Lock()
	got := string(shop.orders[a.Str("order_id")])
	shop.mu.Unlock()
	if got != payload {
		t.Errorf("the shop got payload %q for %s, want %s", got, a.Str("order_id"), payload)
	}
	if o := call(t, from("127.0.0.2"), "GET", door+"/v1/orders/"+a.Str("order_id"), ""); o.Status != 200 || o.Str("status") != "confirmed" {
		t.Errorf("order status through the door: %d %s", o.Status, o.Raw)
	}

	// The gate limits by the client's address, which nginx passes: a
	// second order from 127.0.0.2 is limited, even claiming another
	// address; one from 127.0.0.3 is not.
	if a := call(t, from("127.0.0.2"), "POST", door+"/v1/sales/drop/orders", `{"buyer_id":"carol"}`); a.Status != 429 || a.Str("reason") != "ip_rate_limited" {
		t.Errorf("a second order from the same address: %d %s", a.Status, a.Raw)
	}
	if a := call(t, from("127.0.0.2"), "POST", door+"/v1/sales/drop/orders", `{"buyer_id":"carol"}`, "X-Forwarded-For", "10.9.9.9"); a.Status != 429 {
		t.Errorf("a forged X-Forwarded-For chose the limit's key: %d %s", a.Status, a.Raw)
	}
	for i, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		if a := call(t, from(ip), "POST", door+"/v1/sales/drop/orders", fmt.Sprintf(`{"buyer_id":"b%d"}`, i)); a.Status != 202 {
			t.Errorf("an order from %s: %d %s", ip, a.Status, a.Raw)
		}
	}
	// Sold out: the 410, through the door, uncached.
	for range 2 {
		a := call(t, from("127.0.0.5"), "POST", door+"/v1/sales/drop/orders", `{"buyer_id":"late"}`)
		if a.Status != 410 || a.Str("reason") != "sold_out" || a.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("sold out through the door: %d %s %v", a.Status, a.Raw, a.Header)
		}
	}

	// The line: join, read the ticket, and the waiting page a browser gets.
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("room") != nil })
	j := call(t, from("127.0.0.6"), "POST", door+"/v1/sales/room/line", `{"buyer_id":"dora"}`)
	if j.Status != 201 || j.Str("ticket_id") == "" {
		t.Fatalf("join the line through the door: %d %s", j.Status, j.Raw)
	}
	loc := j.Header.Get("Location")
	if tk := call(t, from("127.0.0.6"), "GET", door+loc, ""); tk.Status != 200 || tk.Str("state") != "waiting" {
		t.Errorf("the ticket through the door: %d %s", tk.Status, tk.Raw)
	}
	page := call(t, from("127.0.0.6"), "GET", door+loc, "", "Accept", "text/html")
	if page.Status != 200 || !strings.Contains(page.Raw, "You are in the line") || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the waiting page through the door: %d %v %.200s", page.Status, page.Header, page.Raw)
	}
	if spec := call(t, from("127.0.0.6"), "GET", door+"/openapi.yaml", ""); spec.Status != 200 || !strings.HasPrefix(spec.Raw, "openapi:") {
		t.Errorf("openapi.yaml through the door: %d", spec.Status)
	}
}
