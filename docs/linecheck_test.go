package docs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/testbin"
	"sluice/internal/testkit/testenv"
)

// The Python checker of docs/line-audit.md (examples/line_check.py,
// standard library only) checks a real sale's log, read from a running
// gate and from the files sluice line verify saves, and refuses doctored
// copies: so the log's format cannot drift from what the document says
// and a third party can write their own. The sale: a turn that lapses and
// its holder back at the end of the line, an order cancelled.
func TestLineCheckPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a gate and a sale: not in -short")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "the line's Python checker needs python3 (apt-get install python3)", "SLUICE_REQUIRE_PYTHON")
	}
	bin := testbin.Path(t)
	g := startGate(t, bin)
	sale := `{"stock":4,"waiting_room":true,"line_opens":"1h","claim_window":"3s","starts_at":"` +
		time.Now().Add(3*time.Second).UTC().Format(time.RFC3339Nano) + `"}`
	if st, body := g.call(t, "PUT", g.ops+"/admin/sales/drop", sale, nil); st != 201 && st != 200 {
		t.Fatalf("make the sale: %d %s", st, body)
	}
	var ids []string
	for i := range 5 {
		_, body := g.call(t, "POST", g.api+"/v1/sales/drop/line", fmt.Sprintf(`{"buyer_id":"buyer-%d"}`, i), nil)
		ids = append(ids, field(body, "ticket_id"))
	}
	away := g.followSale(t, ids)
	t.Logf("the holder at position 2 (%s…) came back after their turn lapsed", away[:6])

	out := func(code int, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		got := 0
		if ee, ok := err.(*exec.ExitError); ok {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != code {
			t.Fatalf("%s: exit %d, want %d\n%s%s", strings.Join(args, " "), got, code, o.String(), e.String())
		}
		return strings.TrimSpace(o.String() + e.String())
	}
	checker := filepath.Join("examples", "line_check.py")
	t.Log(out(0, py, checker, g.api, "drop"))
	dir := t.TempDir()
	logFile, drawFile := filepath.Join(dir, "log.json"), filepath.Join(dir, "draw.json")
	t.Log(out(0, bin, "line", "verify", "drop", "--target", g.api, "--save-log", logFile, "--save-draw", drawFile))
	t.Log(out(0, py, checker, "--log", logFile, "--draw", drawFile))

	var page struct {
		Records []map[string]any `json:"records"`
	}
	b, _ := os.ReadFile(logFile)
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range page.Records {
		kinds[r["kind"].(string)]++
	}
	if kinds["lapse"] < 1 || kinds["rejoin"] != 1 || kinds["decision"] < 1 || kinds["order"] != 3 || kinds["grant"] < 3 {
		t.Fatalf("the sale's log has %v; want a lapse, a return to the back, decisions, three orders and their passes", kinds)
	}
	find := func(rs []map[string]any, kind string) int {
		for i, r := range rs {
			if r["kind"] == kind && (kind != "offer" || (i+1 < len(rs) && rs[i+1]["kind"] == kind)) {
				return i
			}
		}
		t.Fatalf("no %s", kind)
		return 0
	}
	renumber := func(rs []map[string]any) []map[string]any {
		for i := range rs {
			rs[i]["seq"] = i + 1
		}
		return rs
	}
	for name, doctor := range map[string]func([]map[string]any) []map[string]any{
		"a record removed": func(rs []map[string]any) []map[string]any { return slices.Delete(rs, len(rs)/2, len(rs)/2+1) },
		"two offers swapped": func(rs []map[string]any) []map[string]any {
			i := find(rs, "offer")
			rs[i]["ticket"], rs[i+1]["ticket"] = rs[i+1]["ticket"], rs[i]["ticket"]
			return rs
		},
		"an extra pass": func(rs []map[string]any) []map[string]any {
			i := find(rs, "grant")
			extra := map[string]any{}
			for k, v := range rs[i] {
				extra[k] = v
			}
			return renumber(slices.Insert(rs, i+1, extra))
		},
	} {
		var fresh struct {
			Records []map[string]any `json:"records"`
		}
		_ = json.Unmarshal(b, &fresh)
		doctored, _ := json.Marshal(map[string]any{"records": doctor(fresh.Records)})
		f := filepath.Join(dir, "doctored.json")
		if err := os.WriteFile(f, doctored, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", name, out(1, py, checker, "--log", f, "--draw", drawFile))
	}
}

// gate is a gate run from the binary, on ports of its own.
type gate struct{ api, ops string }

func startGate(t *testing.T, bin string) *gate {
	t.Helper()
	var addrs []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	cmd := exec.Command(bin, "serve", "--listen", addrs[0], "--ops-listen", addrs[1], "--nats-listen", addrs[2],
		"--data-dir", t.TempDir(), "--no-demo", "--admin-token", "change-me")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	g := &gate{api: "http://" + addrs[0], ops: "http://" + addrs[1]}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(g.ops + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gate is not ready")
		}
	}
}

func (g *gate) call(t *testing.T, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer change-me")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func field(body, key string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	s, _ := m[key].(string)
	return s
}

// followSale plays the sale: the holder at position 2 is away until its
// turn lapsed, then asks (back at the end of the line); everyone else
// polls, claims and orders at their turn, three of them; the first
// order, once confirmed, is cancelled. It returns the away holder's
// ticket.
func (g *gate) followSale(t *testing.T, ids []string) string {
	t.Helper()
	var drawn []string
	for deadline := time.Now().Add(30 * time.Second); len(drawn) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no draw")
		}
		_, body := g.call(t, "GET", g.api+"/v1/sales/drop/draw/tickets", "", nil)
		var p struct {
			Hashes []string `json:"ticket_hashes"`
		}
		_ = json.Unmarshal([]byte(body), &p)
		drawn = p.Hashes
	}
	hash := func(id string) string { h := sha256.Sum256([]byte(id)); return hex.EncodeToString(h[:]) }
	var away string
	for _, id := range ids {
		if hash(id) == drawn[1] {
			away = id
		}
	}
	var orders []string
	cancelled, back := false, false
	bought := map[string]bool{}
	start := time.Now()
	for deadline := start.Add(60 * time.Second); !(cancelled && back && len(orders) == 3); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sale did not play out: orders %v, cancelled %v, back %v", orders, cancelled, back)
		}
		for i, id := range ids {
			if id == away && time.Since(start) < 10*time.Second || bought[id] {
				continue
			}
			_, body := g.call(t, "GET", g.api+"/v1/tickets/"+id, "", nil)
			back = back || (id == away && strings.Contains(body, `"rejoined":true`))
			if field(body, "state") == "your_turn" && len(orders) < 3 {
				st, o := g.call(t, "POST", g.api+"/v1/sales/drop/orders", fmt.Sprintf(`{"buyer_id":"buyer-%d"}`, i),
					map[string]string{"Sluice-Pass": field(body, "pass"), "Prefer": "wait=5"})
				if st == 201 || st == 202 {
					orders, bought[id] = append(orders, field(o, "order_id")), true
				}
			}
		}
		if !cancelled && len(orders) > 0 {
			if st, _ := g.call(t, "POST", g.ops+"/admin/orders/"+orders[0]+"/cancel", "", nil); st == 200 {
				cancelled = true
			}
		}
	}
	time.Sleep(2 * time.Second) // the last records placed in the log
	return away
}
