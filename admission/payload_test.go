package admission_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"sluice/internal/gatetest"
	"sluice/internal/ledger"
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
