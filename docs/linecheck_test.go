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
// its holder back at the end of the line, an order cancelled, the gate
// killed and started again mid-sale. sluice line verify (the binary)
// runs as docs/line-audit.md shows it: from the gate, saving the log and
// the draw, then offline with --log, --draw and the holder's --ticket;
// it and the Python checker refuse each doctored copy (a record removed,
// two swapped, a ticket's key or an offer's position changed, an extra
// pass, a pass forged for a turn that lapsed) with exit 1 and the record
// that breaks a rule.
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

	// The holder who came back checks their own ticket, offline, as the
	// document shows: its records, found by its hash.
	mine := out(0, bin, "line", "verify", "drop", "--log", logFile, "--draw", drawFile, "--ticket", away)
	t.Log(mine)
	for _, want := range []string{"ticket " + away + " (hash ", ": join", ": offer at position 2", ": lapse at position 2", ": rejoin at position 6"} {
		if !strings.Contains(mine, want) {
			t.Errorf("sluice line verify --ticket says no %q", want)
		}
	}

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
	// Doctored copies: each refused by sluice line verify (exit 1, the
	// record that breaks a rule) and by the Python checker (exit 1).
	for _, c := range []struct {
		name   string
		doctor func([]map[string]any) []map[string]any
	}{
		{"a record removed", func(rs []map[string]any) []map[string]any { return slices.Delete(rs, len(rs)/2, len(rs)/2+1) }},
		{"two records swapped", func(rs []map[string]any) []map[string]any {
			i := find(rs, "join")
			rs[i], rs[i+1] = rs[i+1], rs[i]
			return renumber(rs)
		}},
		{"two offers swapped", func(rs []map[string]any) []map[string]any {
			i := find(rs, "offer")
			rs[i]["ticket"], rs[i+1]["ticket"] = rs[i+1]["ticket"], rs[i]["ticket"]
			return rs
		}},
		{"a ticket's key changed before the draw", func(rs []map[string]any) []map[string]any {
			h := sha256.Sum256([]byte("a ticket of the operator's"))
			rs[find(rs, "join")]["ticket"] = hex.EncodeToString(h[:])
			return rs
		}},
		{"an offer's position changed", func(rs []map[string]any) []map[string]any {
			i := find(rs, "offer")
			rs[i]["position"] = rs[i]["position"].(float64) + 1
			return rs
		}},
		{"an extra pass", func(rs []map[string]any) []map[string]any {
			i := find(rs, "grant")
			extra := map[string]any{}
			for k, v := range rs[i] {
				extra[k] = v
			}
			return renumber(slices.Insert(rs, i+1, extra))
		}},
		{"a pass forged for the turn that lapsed", func(rs []map[string]any) []map[string]any {
			l := find(rs, "lapse")
			for i, r := range rs {
				if r["kind"] == "offer" && r["position"] == rs[l]["position"] {
					at, _ := time.Parse(time.RFC3339Nano, r["at"].(string))
					forged := map[string]any{"seq": 0, "at": r["at"], "kind": "grant", "ticket": r["ticket"], "position": r["position"],
						"expires": at.Add(time.Minute).Format(time.RFC3339Nano)}
					return renumber(slices.Insert(rs, i+1, forged))
				}
			}
			t.Fatal("no offer of the turn that lapsed")
			return nil
		}},
	} {
		var fresh struct {
			Records []map[string]any `json:"records"`
		}
		_ = json.Unmarshal(b, &fresh)
		doctored, _ := json.Marshal(map[string]any{"sale": "drop", "from": 1, "records": c.doctor(fresh.Records)})
		f := filepath.Join(dir, "doctored.json")
		if err := os.WriteFile(f, doctored, 0o644); err != nil {
			t.Fatal(err)
		}
		said := out(1, bin, "line", "verify", "drop", "--log", f, "--draw", drawFile)
		if !strings.Contains(said, "does NOT verify") || !strings.Contains(said, "breaks the rule") {
			t.Errorf("%s: sluice line verify refused it without saying why:\n%s", c.name, said)
		}
		t.Logf("%s: sluice line verify: %s", c.name, said)
		t.Logf("%s: line_check.py: %s", c.name, out(1, py, checker, "--log", f, "--draw", drawFile))
	}
}

// gate is a gate run from the binary, on ports of its own, which a
// restart keeps (and its data directory).
type gate struct {
	api, ops string
	bin, dir string
	addrs    []string
	cmd      *exec.Cmd
}

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
	g := &gate{api: "http://" + addrs[0], ops: "http://" + addrs[1], bin: bin, dir: t.TempDir(), addrs: addrs}
	g.start(t)
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		_ = g.cmd.Wait()
	})
	return g
}

// start runs the gate and waits for it to be ready.
func (g *gate) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(g.bin, "serve", "--listen", g.addrs[0], "--ops-listen", g.addrs[1], "--nats-listen", g.addrs[2],
		"--data-dir", g.dir, "--no-demo", "--admin-token", "change-me")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.cmd = cmd
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(g.ops + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gate is not ready")
		}
	}
}

// restart kills the gate (kill -9) and starts it again on its data.
func (g *gate) restart(t *testing.T) {
	t.Helper()
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	g.start(t)
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
// order, once confirmed, is cancelled, and the gate is killed and
// started again. It returns the away holder's ticket.
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
				// The gate killed and started again mid-sale: the
				// line, and its log, are read again from the records.
				g.restart(t)
			}
		}
	}
	time.Sleep(2 * time.Second) // the last records placed in the log
	return away
}
