package admission_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// orderWith posts an order with a raw body and optional headers
// (name, value pairs).
func orderWith(t *testing.T, base, sale, body string, hdr ...string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return gatetest.Do(t, gatetest.Client(), req)
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, ok := v.(string)
		if !ok {
			r, _ := json.Marshal(v)
			raw = string(r)
		}
		var out any
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

var teeSchema = map[string]any{
	"type":     "object",
	"required": []any{"sku", "quantity"},
	"properties": map[string]any{
		"sku":      map[string]any{"type": "string"},
		"size":     map[string]any{"enum": []any{"S", "M", "L"}},
		"quantity": map[string]any{"type": "integer", "minimum": 1, "maximum": 2},
	},
}

// An order's payload is kept with it in the ledger and stored by the
// SQLite backend; GET /v1/orders/{id} shows it to its proven buyer only
// (internal/serve's TestKnownBuyersSeeTheirOwnOrders), so here, where the
// buyer is the body's, to nobody; a retry with its key and another
// payload is 422 and changes nothing; a payload that misses the sale's
// schema is 400 bad_payload with the path at fault.
func TestOrderPayload(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "tee", Stock: 10, PayloadSchema: teeSchema}, ledger.Sale{Name: "free", Stock: 10})
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	const p = `{"sku":"TEE-1","size":"M","quantity":2,"price_shown":"19.90 EUR"}`

	a := orderWith(t, base, "tee", `{"buyer_id":"alice","payload":`+p+`}`, "Idempotency-Key", "k1", "Prefer", "wait=10")
	if a.Status != 201 {
		t.Fatalf("order: %d %s", a.Status, a.Raw)
	}
	id := a.Str("order_id")
	oid, err := ledger.ParseOrderID(id)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := srv.Ledger().Lookup(context.Background(), oid)
	if err != nil || !jsonEqual(t, string(kept.Payload), p) {
		t.Errorf("the ledger keeps %s (%v); want payload %s", kept.Payload, err, p)
	}
	got := gatetest.Get(t, gatetest.Client(), base+"/v1/orders/"+id)
	if _, shown := got.Body["payload"]; got.Status != 200 || shown {
		t.Errorf("GET order, by a caller the gate cannot know: %d %s; want its status without the payload", got.Status, got.Raw)
	}

	// The same request again, spaced otherwise: a replay, of an order
	// now confirmed.
	again := orderWith(t, base, "tee", `{"payload": {"sku": "TEE-1", "size": "M", "quantity": 2, "price_shown": "19.90 EUR"}, "buyer_id": "alice"}`, "Idempotency-Key", "k1")
	if again.Status != 201 || again.Str("status") != "confirmed" || again.Str("order_id") != id || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %s", again.Status, again.Raw)
	}
	msgs := gatetest.StreamMsgs(t, srv.Ledger(), "tee")
	r := orderWith(t, base, "tee", `{"buyer_id":"alice","payload":{"sku":"TEE-1","size":"L","quantity":2}}`, "Idempotency-Key", "k1")
	if r.Status != 422 || r.Str("reason") != "idempotency_key_reused" || r.Str("order_id") != "" {
		t.Errorf("another payload with the same key: %d %s; want 422 idempotency_key_reused, naming no order", r.Status, r.Raw)
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "tee"); n != msgs {
		t.Errorf("a refused retry changed the ledger: %d orders, was %d", n, msgs)
	}
	// Without a schema: a payload dropped on retry is another request too.
	first := orderWith(t, base, "free", `{"buyer_id":"erin","payload":{"sku":"A"}}`, "Idempotency-Key", "k2")
	if r := orderWith(t, base, "free", `{"buyer_id":"erin"}`, "Idempotency-Key", "k2"); first.Status != 202 || r.Status != 422 {
		t.Errorf("payload dropped on retry: first %d, retry %d %s; want 202 then 422", first.Status, r.Status, r.Raw)
	}

	for _, c := range []struct{ name, body, path string }{
		{"over the maximum", `{"buyer_id":"bob","payload":{"sku":"TEE-1","quantity":3}}`, "/payload/quantity"},
		{"not in the enum", `{"buyer_id":"bob","payload":{"sku":"TEE-1","quantity":1,"size":"XXL"}}`, "/payload/size"},
		{"required missing", `{"buyer_id":"bob","payload":{"quantity":1}}`, "/payload"},
		{"no payload", `{"buyer_id":"bob"}`, "/payload"},
		{"not an object", `{"buyer_id":"bob","payload":["TEE-1"]}`, "/payload"},
		{"too large", `{"buyer_id":"bob","payload":{"sku":"` + strings.Repeat("x", 2100) + `","quantity":1}}`, "/payload"},
	} {
		r := orderWith(t, base, "tee", c.body)
		if r.Status != 400 || r.Str("reason") != "bad_payload" || r.Str("path") != c.path || r.Str("detail") == "" {
			t.Errorf("%s: %d %s; want 400 bad_payload at %s", c.name, r.Status, r.Raw, c.path)
		}
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "tee"); n != msgs {
		t.Errorf("refused payloads changed the ledger: %d orders, was %d", n, msgs)
	}

	// A sale without a schema takes any object, and no payload at all.
	if r := orderWith(t, base, "free", `{"buyer_id":"carol","payload":{"anything":[1,2,{"x":null}]}}`); r.Status != 202 {
		t.Errorf("free-form payload: %d %s", r.Status, r.Raw)
	}
	if r := orderWith(t, base, "free", `{"buyer_id":"dave"}`); r.Status != 202 {
		t.Errorf("no payload: %d %s", r.Status, r.Raw)
	}

	// The schema is served with the sale, for a front end to check first.
	sale := gatetest.Get(t, gatetest.Client(), base+"/v1/sales/tee")
	if !jsonEqual(t, sale.Body["payload_schema"], teeSchema) {
		t.Errorf("sale view's payload_schema: %s", sale.Raw)
	}

	// The drain stored it in SQLite as the shop sent it.
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stored string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, `SELECT payload FROM orders WHERE order_id = ?`, id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, stored, p) {
		t.Errorf("SQLite payload %s, want %s", stored, p)
	}
}

// The admin API sets, checks and removes a sale's payload_schema.
func TestPayloadSchemaByAdmin(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.AdminToken = "T"
	srv := gatetest.Start(t, cfg)
	c := gatetest.Client()
	base, ops := "http://"+srv.APIAddr(), srv.OpsAddr()
	bad := gatetest.Admin(t, c, ops, "PATCH", "/admin/sales/s1", "T", `{"payload_schema":{"type":"nonsense"}}`)
	if bad.Status != 400 || !strings.Contains(bad.Raw, "payload_schema") {
		t.Errorf("a bad schema: %d %s", bad.Status, bad.Raw)
	}
	remote := gatetest.Admin(t, c, ops, "PATCH", "/admin/sales/s1", "T", `{"payload_schema":{"$ref":"https://example.com/x.json"}}`)
	if remote.Status != 400 {
		t.Errorf("a schema naming a URL: %d %s", remote.Status, remote.Raw)
	}
	schema, _ := json.Marshal(map[string]any{"payload_schema": teeSchema})
	if ok := gatetest.Admin(t, c, ops, "PATCH", "/admin/sales/s1", "T", string(schema)); ok.Status != 200 {
		t.Fatalf("set schema: %d %s", ok.Status, ok.Raw)
	}
	if r := orderWith(t, base, "s1", `{"buyer_id":"a","payload":{"sku":"X"}}`); r.Status != 400 || r.Str("reason") != "bad_payload" {
		t.Errorf("with a schema: %d %s", r.Status, r.Raw)
	}
	if ok := gatetest.Admin(t, c, ops, "PATCH", "/admin/sales/s1", "T", `{"payload_schema":null}`); ok.Status != 200 {
		t.Fatalf("remove schema: %d %s", ok.Status, ok.Raw)
	}
	if r := orderWith(t, base, "s1", `{"buyer_id":"a","payload":{"sku":"X"}}`); r.Status != 202 {
		t.Errorf("schema removed: %d %s", r.Status, r.Raw)
	}
}

// hostileBodies are issue 27's order bodies that a gate once answered
// 202 and then could not store, or stored other than it checked: each
// must be 400 bad_json, naming where, and change nothing.
var hostileBodies = []struct{ name, body, path string }{
	{"a key twice in the payload", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":100,"quantity":1}}`, "/payload/quantity"},
	{"a key twice deep down", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"o":[{"a":1,"a":2}]}}`, "/payload/o/0/a"},
	{"a key twice outside the payload", `{"buyer_id":"q","x":{"a":1,"a":2},"payload":{"sku":"TEE-1","quantity":1}}`, "/x/a"},
	{"escaped NUL", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"note":"\u0000"}}`, "/payload/note"},
	{"a raw 0xff byte", "{\"buyer_id\":\"q\",\"payload\":{\"sku\":\"TEE-1\",\"quantity\":1,\"note\":\"\xff\"}}", "/payload/note"},
	{"a lone surrogate", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"note":"\ud800"}}`, "/payload/note"},
	{"a raw surrogate", "{\"buyer_id\":\"q\",\"payload\":{\"sku\":\"TEE-1\",\"quantity\":1,\"note\":\"\xed\xa0\x80\"}}", "/payload/note"},
	{"1e999999", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"n":1e999999}}`, "/payload/n"},
	{"-1e400", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"n":-1e400}}`, "/payload/n"},
	{"1e-400", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"n":1e-400}}`, "/payload/n"},
	{"nested 33 levels", `{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":1,"n":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}}`, "/payload/n" + strings.Repeat("/0", 31)},
}

// One strict decoder, one truth (issue 27): every hostile body is 400
// bad_json with where it is, with a schema or without, and changes
// nothing; what is stored is the canonical form of what the schema
// checked, byte for byte, and a retry of a payload holding < is a
// replay, not "another payload".
func TestStrictOrderBodies(t *testing.T) {
	schema := map[string]any{
		"type":       "object",
		"required":   []any{"sku", "quantity"},
		"properties": map[string]any{"sku": map[string]any{"type": "string"}, "quantity": map[string]any{"type": "integer", "maximum": 1}},
	}
	cfg := gatetest.Config(t, ledger.Sale{Name: "tee", Stock: 100, PayloadSchema: schema}, ledger.Sale{Name: "free", Stock: 100})
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	for _, sale := range []string{"tee", "free"} {
		for _, c := range hostileBodies {
			r := orderWith(t, base, sale, c.body)
			if r.Status != 400 || r.Str("reason") != "bad_json" || r.Str("path") != c.path || !strings.Contains(r.Str("detail"), "strict JSON") {
				t.Errorf("%s, %s: %d %s; want 400 bad_json at %s", sale, c.name, r.Status, r.Raw, c.path)
			}
		}
		if n := gatetest.StreamMsgs(t, srv.Ledger(), sale); n != 0 {
			t.Errorf("%s: refused bodies left %d orders in the ledger", sale, n)
		}
	}

	// Sent loosely, stored canonical: the bytes the drain wrote to SQLite
	// are exactly the canonical form, and the schema checked that value.
	sent := `{ "sku" : "TEE\u002d1", "quantity" : 1.0, "note" : "a<b>&c \u00e9\/", "n": 1E2, "f": 0.10000000000000001 }`
	const stored = `{"sku":"TEE-1","quantity":1,"note":"a<b>&c é/","n":100,"f":0.1}`
	a := orderWith(t, base, "tee", `{"buyer_id":"alice","payload":`+sent+`}`, "Idempotency-Key", "k1", "Prefer", "wait=10")
	if a.Status != 201 {
		t.Fatalf("order: %d %s", a.Status, a.Raw)
	}
	id := a.Str("order_id")
	// The same request again is a replay: the ledger kept the payload's
	// bytes (it once wrote < as \u003c, and the retry read as another
	// payload: 422).
	if r := orderWith(t, base, "tee", `{"buyer_id":"alice","payload":`+sent+`}`, "Idempotency-Key", "k1"); r.Status != 201 || r.Str("order_id") != id {
		t.Errorf("retry: %d %s; want 201, the same order", r.Status, r.Raw)
	}
	if r := orderWith(t, base, "tee", `{"buyer_id":"alice","payload":`+stored+`}`, "Idempotency-Key", "k1"); r.Status != 201 || r.Str("order_id") != id {
		t.Errorf("retry in canonical form: %d %s; want 201, the same order", r.Status, r.Raw)
	}
	oid, err := ledger.ParseOrderID(id)
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	if o, err := srv.Ledger().Lookup(lctx, oid); err != nil || string(o.Payload) != stored {
		t.Errorf("the ledger holds %s (%v), want exactly %s", o.Payload, err, stored)
	}
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var inDB string
	if err := db.QueryRowContext(ctx, `SELECT payload FROM orders WHERE order_id = ?`, id).Scan(&inDB); err != nil {
		t.Fatal(err)
	}
	if inDB != stored {
		t.Errorf("SQLite holds %s, want exactly %s", inDB, stored)
	}
	// The schema sees the canonical value: 1.0 is the integer 1, and
	// 1.00000000000000001 is the double 1, not over the maximum (kept
	// exact it was over it at the gate, and 1 in SQLite).
	if r := orderWith(t, base, "tee", `{"buyer_id":"bob","payload":{"sku":"A","quantity":1.00000000000000001}}`); r.Status != 202 {
		t.Errorf("a quantity reading as 1: %d %s", r.Status, r.Raw)
	}
}

// An order a gate stored before it decoded bodies strictly may hold
// invalid UTF-8 in its payload: GET /v1/orders/{id} still answers valid
// JSON (it once answered the raw byte).
func TestOrderWithLegacyPayloadAnswersValidJSON(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.NoDrain = true
	// The payload is shown to its proven buyer only: here the one an
	// authenticating proxy on loopback names.
	cfg.Gate.BuyerHeader = "X-Buyer"
	cfg.Gate.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	srv := gatetest.Start(t, cfg)
	o := ledger.Order{Sale: "s1", BuyerID: "old", Token: ledger.NewToken(), AdmittedAt: time.Now().UTC(), Payload: json.RawMessage("{\"note\":\"a\xffb\"}")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, _, err := srv.Ledger().Place(ctx, o, "b|old")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+srv.APIAddr()+"/v1/orders/"+id.String(), nil)
	req.Header.Set("X-Buyer", "old")
	resp, err := gatetest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v struct{ Payload map[string]string }
	if resp.StatusCode != 200 || !utf8.Valid(raw) || json.Unmarshal(raw, &v) != nil || v.Payload["note"] != "a\uFFFDb" {
		t.Errorf("GET order: %d %q; want valid JSON with the note as a\uFFFDb", resp.StatusCode, raw)
	}
}

// A payload_schema whose check can blow up is refused when it is set
// (issue 27): 1.5 KB of anyOf over $refs made one order {"x":1} cost
// seconds of CPU and gigabytes; a $ref cycle made every order refused.
// Refused, they change nothing.
func TestAdminRefusesCostlySchemas(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.AdminToken = "T"
	srv := gatetest.Start(t, cfg)
	c := gatetest.Client()
	base, ops := "http://"+srv.APIAddr(), srv.OpsAddr()
	defs := make([]string, 24)
	for i := range defs {
		defs[i] = fmt.Sprintf(`"a%d":{"anyOf":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]}`, i, i+1, i+1)
	}
	fanout := fmt.Sprintf(`{"$defs":{%s,"a24":{"type":"string"}},"$ref":"#/$defs/a0"}`, strings.Join(defs, ","))
	cycle := `{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"anyOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}`
	for _, c2 := range []struct{ name, schema, want string }{
		{"anyOf over $refs", fanout, "too costly to check"},
		{"a $ref cycle", cycle, "a $ref cycle that does not descend into the payload"},
	} {
		for _, req := range []struct{ method, path string }{{"PATCH", "/admin/sales/s1"}, {"PUT", "/admin/sales/s2"}} {
			body := `{"stock":10,"payload_schema":` + c2.schema + `}`
			if req.method == "PATCH" {
				body = `{"payload_schema":` + c2.schema + `}`
			}
			a := gatetest.Admin(t, c, ops, req.method, req.path, "T", body)
			if a.Status != 400 || a.Str("reason") != "bad_request" || !strings.Contains(a.Str("detail"), c2.want) {
				t.Errorf("%s, %s %s: %d %s; want 400 saying %q", c2.name, req.method, req.path, a.Status, a.Raw, c2.want)
			}
		}
	}
	if a := gatetest.Admin(t, c, ops, "GET", "/admin/sales/s2", "T", ""); a.Status != 404 {
		t.Errorf("a refused PUT made the sale: %d %s", a.Status, a.Raw)
	}
	if sale := gatetest.Get(t, c, base+"/v1/sales/s1"); sale.Body["payload_schema"] != nil {
		t.Errorf("a refused PATCH set the schema: %s", sale.Raw)
	}
	if r := orderWith(t, base, "s1", `{"buyer_id":"a","payload":{"x":1}}`); r.Status != 202 {
		t.Errorf("order after refused schemas: %d %s", r.Status, r.Raw)
	}
}
