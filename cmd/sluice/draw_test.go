package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/broker"
	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/loadtest"
)

// The draw outlives kill -9 of the gate that made it and issued the
// passes: a new gate on the same JetStream has the same draw, moves the
// same line on, and sluice draw verify passes against it; a list with
// one ticket changed, or another seed, fails it.
func TestDrawSurvivesKill9AndVerifies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: gatetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	js, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(js, ledger.Options{Lines: waitingroom.NewStore(js, streams.Options{})})
	sale := ledger.Sale{Name: "drop", Stock: 40, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour)}
	if _, err := l.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	// Gate B is the only gate: every pass is its.
	gateB := startServe(t, "--nats-url", b.ClientURL(), "--no-drain", "--data-dir", t.TempDir())
	c := gatetest.Client()
	var mine string
	for i := range 300 {
		req, _ := http.NewRequest("POST", "http://"+gateB.api+"/v1/sales/drop/line", strings.NewReader(fmt.Sprintf(`{"buyer_id":"b%d"}`, i)))
		req.Header.Set("Content-Type", "application/json")
		a := gatetest.Do(t, c, req)
		if a.Status != 201 {
			t.Fatalf("join: %d %s", a.Status, a.Raw)
		}
		mine = a.Str("ticket_id")
	}
	sale.StartsAt = time.Now().Add(300 * time.Millisecond)
	if _, err := l.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	var letIn float64
	gatetest.Eventually(t, 20*time.Second, "gate B to issue passes", func() bool {
		letIn, _ = gatetest.Get(t, c, "http://"+gateB.api+"/v1/sales/drop/line").Body["let_in"].(float64)
		return letIn > 0
	})
	before := drawOf(t, "http://"+gateB.api)
	verify(t, "http://"+gateB.api, 0, "--ticket", mine)

	if err := gateB.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	gateB.done <- <-gateB.done // dead; the cleanup reads it again
	gateC := startServe(t, "--nats-url", b.ClientURL(), "--no-drain", "--data-dir", t.TempDir())
	gatetest.Eventually(t, 20*time.Second, "gate C to open the room", func() bool {
		return gatetest.Get(t, c, "http://"+gateC.api+"/v1/sales/drop/line").Status == 200
	})
	after := drawOf(t, "http://"+gateC.api)
	if after.Seed != before.Seed || after.Commitment != before.Commitment || strings.Join(after.Hashes, ",") != strings.Join(before.Hashes, ",") {
		t.Fatal("the draw changed with the gate that made it")
	}
	if l2, _ := gatetest.Get(t, c, "http://"+gateC.api+"/v1/sales/drop/line").Body["let_in"].(float64); l2 < letIn {
		t.Fatalf("the line went back from %v to %v", letIn, l2)
	}
	verify(t, "http://"+gateC.api, 0)

	// A tampered copy of the public data does not verify.
	// The changed ticket must break the order, not merely take the same
	// place: one whose key sorts before position 1's, put at position 8.
	seed, err := line.ParseSeed(before.Seed)
	if err != nil {
		t.Fatal(err)
	}
	other := ""
	for other == "" || seed.Key(other) > seed.Key(before.Hashes[0]) {
		id, _ := line.NewTicketID()
		other = line.TicketHash(id)
	}
	for name, tamper := range map[string]func(path string, body []byte) []byte{
		"one ticket changed": func(path string, body []byte) []byte {
			if !strings.HasSuffix(path, "/draw/tickets") {
				return body
			}
			return bytes.Replace(body, []byte(before.Hashes[7]), []byte(other), 1)
		},
		"two tickets swapped": func(path string, body []byte) []byte {
			if !strings.HasSuffix(path, "/draw/tickets") {
				return body
			}
			x, y := []byte(before.Hashes[3]), []byte(before.Hashes[4])
			body = bytes.Replace(body, x, []byte("@@"), 1)
			body = bytes.Replace(body, y, x, 1)
			return bytes.Replace(body, []byte("@@"), y, 1)
		},
		"another seed": func(path string, body []byte) []byte {
			if !strings.HasSuffix(path, "/draw") {
				return body
			}
			s, _ := line.NewSeed()
			return bytes.Replace(body, []byte(before.Seed), []byte(s.Hex()), 1)
		},
	} {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := http.Get("http://" + gateC.api + r.URL.RequestURI())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(tamper(r.URL.Path, body))
		}))
		verify(t, proxy.URL, 1)
		proxy.Close()
		t.Logf("%s: refused", name)
	}
}

func drawOf(t *testing.T, base string) loadtest.Draw {
	t.Helper()
	d, err := loadtest.FetchDraw(context.Background(), http.DefaultClient, base, "drop")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// verify runs sluice draw verify against base and wants exit code want.
func verify(t *testing.T, base string, want int, extra ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"draw", "verify", "--gate", base, "--sale", "drop"}, extra...), &out, &errOut)
	if code := exitCode(err); code != want {
		t.Fatalf("sluice draw verify against %s: exit %d (%v), want %d\n%s%s", base, code, err, want, out.String(), errOut.String())
	}
	if want == 0 && !strings.Contains(out.String(), "verifies") {
		t.Fatalf("sluice draw verify said %q", out.String())
	}
}
