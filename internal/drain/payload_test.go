package drain_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/pgtest"
)

// Issue 27: PostgreSQL's jsonb refuses \u0000, invalid UTF-8, a lone
// surrogate and 1e999999 (SQLSTATE 22P05, 22021, 22P02, 22003), and the
// gate once answered them 202: the drain then dead-lettered them. Now
// the gate refuses them (400 bad_json) and every payload it takes
// reaches PostgreSQL through a real drain, confirmed, holding the value
// the gate checked.
func TestPayloadsReachPostgres(t *testing.T) {
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	cfg.Backend = pgtest.Start(t).NewDatabase("payloads")
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	post := func(buyer, payload string) gatetest.Answer {
		req, _ := http.NewRequest("POST", base+"/v1/sales/s1/orders", strings.NewReader(`{"buyer_id":"`+buyer+`","payload":`+payload+`}`))
		req.Header.Set("Content-Type", "application/json")
		return gatetest.Do(t, c, req)
	}
	for _, p := range []string{`{"n":"\u0000"}`, "{\"n\":\"\xff\"}", `{"n":"\ud800"}`, `{"n":1e999999}`, `{"n":-1e400}`} {
		if a := post("hostile", p); a.Status != 400 || a.Str("reason") != "bad_json" {
			t.Errorf("payload %q: %d %s; want 400 bad_json", p, a.Status, a.Raw)
		}
	}
	deep := strings.Repeat("[", 31) + "1" + strings.Repeat("]", 31)
	taken := []struct{ sent, canonical string }{
		{`{"e":"\ud83d\ude00","ls":"` + "\u2028" + `","h":"<&>","del":"\u007f","ctl":"\u001f\n","":"an empty key"}`,
			"{\"e\":\"😀\",\"ls\":\"\u2028\",\"h\":\"<&>\",\"del\":\"\x7f\",\"ctl\":\"\\u001f\\n\",\"\":\"an empty key\"}"},
		{`{"big":9007199254740993,"min":-9223372036854775808,"huge":1e21,"tiny":5e-324,"max":1.7976931348623157e308,"f":19.90,"z":-0}`,
			`{"big":9007199254740993,"min":-9223372036854775808,"huge":1e+21,"tiny":5e-324,"max":1.7976931348623157e+308,"f":19.9,"z":0}`},
		{`{"deep":` + deep + `}`, `{"deep":` + deep + `}`},
	}
	ids := make([]string, len(taken))
	for i, p := range taken {
		a := post("b"+string(rune('a'+i)), p.sent)
		if a.Status != 202 {
			t.Fatalf("payload %s: %d %s", p.sent, a.Status, a.Raw)
		}
		ids[i] = a.Str("order_id")
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != uint64(len(taken)) {
		t.Errorf("the ledger holds %d orders, want the %d taken", n, len(taken))
	}
	waitDrained(t, srv.Ledger(), "s1", 30*time.Second)
	checkStatuses(t, base, ids, "confirmed")
	db := backendDB(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, p := range taken {
		var same bool
		var text string
		if err := db.QueryRowContext(ctx, `SELECT payload = $2::jsonb, payload::text FROM orders WHERE order_id = $1`, ids[i], p.canonical).Scan(&same, &text); err != nil {
			t.Fatalf("order %s: %v", ids[i], err)
		}
		if !same {
			t.Errorf("PostgreSQL holds %s, want the value of %s", text, p.canonical)
		}
	}
}
