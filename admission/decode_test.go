package admission

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"sluice/internal/payload"
	"sluice/overflow"
)

func TestDecodeOrder(t *testing.T) {
	cases := []struct {
		body    string
		buyer   string
		reason  overflow.Reason
		payload string
	}{
		{`{"buyer_id":"alice"}`, "alice", "", ""},
		{` {"buyer_id":"a.b:c@d-e_f"} ` + "\n", "a.b:c@d-e_f", "", ""},
		{`{"buyer_id":"alice","quantity":1}`, "alice", "", ""},
		{`{"buyer_id":"` + strings.Repeat("x", 128) + `"}`, strings.Repeat("x", 128), "", ""},
		{`{"buyer_id":"` + strings.Repeat("x", 129) + `"}`, "", overflow.BadBuyerID, ""},
		{`{"buyer_id":"al ice"}`, "", overflow.BadBuyerID, ""},
		{`{"buyer_id":"ålice"}`, "", overflow.BadBuyerID, ""},
		{`{"buyer_id":null}`, "", overflow.BadBuyerID, ""},
		{`{}`, "", overflow.BadBuyerID, ""},
		{`{"buyer_id":1}`, "", overflow.BadJSON, ""},
		{``, "", overflow.BadJSON, ""},
		{`null`, "", overflow.BadJSON, ""},
		{`"alice"`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a"}{}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a"}]`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a"`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a","buyer_id":"b"}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a","buyer\u005fid":"b"}`, "", overflow.BadJSON, ""},
		{`{"Buyer_ID":"a"}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a","BUYER_ID":"b"}`, "", overflow.BadJSON, ""},
		{`{"pad":1,"pad":2,"buyer_id":"a"}`, "", overflow.BadJSON, ""},
		{`{"pad":{"buyer_id":"x"},"buyer_id":"a"}`, "a", "", ""},
		{`{"buyer_id":"a","payload":{"sku":"TEE-1", "qty": 2}}`, "a", "", `{"sku":"TEE-1","qty":2}`},
		{`{"payload":{"sku":"TEE-1"},"buyer_id":"a"}`, "a", "", `{"sku":"TEE-1"}`},
		{`{"buyer_id":"a","payload":{}}`, "a", "", `{}`},
		{`{"buyer_id":"a","payload":[1]}`, "", overflow.BadPayload, ""},
		{`{"buyer_id":"a","payload":"x"}`, "", overflow.BadPayload, ""},
		{`{"buyer_id":"a","payload":null}`, "", overflow.BadPayload, ""},
		{`{"buyer_id":"a","payload":{"s":"` + strings.Repeat("x", 2100) + `"}}`, "", overflow.BadPayload, ""},
		{`{"buyer_id":"a","payload":{},"payload":{}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a","Payload":{}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"a","payload":{"a":}}`, "", overflow.BadJSON, ""},
		// One strict decoder (issue 27): the payload too.
		{`{"buyer_id":"q","payload":{"sku":"TEE-1","quantity":100,"quantity":1}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","payload":{"n":"\u0000"}}`, "", overflow.BadJSON, ""},
		{"{\"buyer_id\":\"q\",\"payload\":{\"n\":\"\xff\"}}", "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","payload":{"n":"\ud800"}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","payload":{"n":1e999999}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","payload":{"n":-1e400}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","pad":{"n":[1,{"x":1,"x":2}]}}`, "", overflow.BadJSON, ""},
		{`{"buyer_id":"q","payload":{"n":1.0,"s":"\u00e9\/"}}`, "q", "", `{"n":1,"s":"é/"}`},
	}
	for _, tc := range cases {
		d, reason := decodeOrder([]byte(tc.body), true)
		if d.variant != "" {
			t.Errorf("decodeOrder(%q): variant %q", tc.body, d.variant)
		}
		if reason != tc.reason || (reason == "" && (d.buyer != tc.buyer || string(d.payload) != tc.payload)) {
			t.Errorf("decodeOrder(%q) = %q %s, %q; want %q %s, %q", tc.body, d.buyer, d.payload, reason, tc.buyer, tc.payload, tc.reason)
		}
	}
	// A refusal says what and where.
	if d, reason := decodeOrder([]byte(`{"buyer_id":"q","payload":{"a":[1,{"x":1,"x":2}]}}`), true); reason != overflow.BadJSON ||
		d.badPath != "/payload/a/1/x" || !strings.Contains(d.bad, `the key "x" given twice`) {
		t.Errorf("duplicate key deep down: %q %q %q", reason, d.bad, d.badPath)
	}
	// Behind a buyer header the body needs no buyer_id.
	if d, reason := decodeOrder([]byte(`{"payload":{"sku":"A"}}`), false); reason != "" || string(d.payload) != `{"sku":"A"}` {
		t.Errorf("no buyer needed: %+v %q", d, reason)
	}
}

func TestJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON":                  true,
		"application/merge-patch+json":      false,
		"application/problem+json":          false,
		"text/plain":                        false,
		"":                                  false,
		"application/x-www-form-urlencoded": false,
		"text/json+json":                    false,
	} {
		if got := jsonContentType([]byte(ct)); got != want {
			t.Errorf("jsonContentType(%q) = %v", ct, got)
		}
	}
}

// An order's variant: read by the fast path and the decoder alike, a
// name no variant can have marked unknown, anything but a string or
// another spelling of the key refused.
func TestDecodeOrderVariant(t *testing.T) {
	cases := []struct {
		body, buyer, variant string
		bad                  bool
		reason               overflow.Reason
	}{
		{`{"buyer_id":"a","variant":"us9"}`, "a", "us9", false, ""},
		{`{"buyer_id":"a","variant":"us9"}` + "\n", "a", "us9", false, ""},
		{`{"variant":"us-9_x","buyer_id":"a"}`, "a", "us-9_x", false, ""},
		{`{"buyer_id":"a","variant":"US9"}`, "a", "US9", true, ""},
		{`{"buyer_id":"a","variant":""}`, "a", "", true, ""},
		{`{"buyer_id":"a","variant":"` + strings.Repeat("x", 65) + `"}`, "a", strings.Repeat("x", 65), true, ""},
		{`{"buyer_id":"a","variant":9}`, "", "", false, overflow.BadJSON},
		{`{"buyer_id":"a","variant":null}`, "a", "", false, ""},
		{`{"buyer_id":"a","Variant":"us9"}`, "", "", false, overflow.BadJSON},
		{`{"buyer_id":"a","variant":"us9","variant":"us10"}`, "", "", false, overflow.BadJSON},
		{`{"buyer_id":"a","variant":"us9","payload":{"gift":true}}`, "a", "us9", false, ""},
	}
	for _, tc := range cases {
		d, reason := decodeOrder([]byte(tc.body), true)
		if reason != tc.reason || (reason == "" && (d.buyer != tc.buyer || d.variant != tc.variant || d.badVariant != tc.bad)) {
			t.Errorf("decodeOrder(%q) = %q %q bad %v, %q; want %q %q bad %v, %q", tc.body, d.buyer, d.variant, d.badVariant, reason,
				tc.buyer, tc.variant, tc.bad, tc.reason)
		}
	}
	if b, v, ok := plainOrder([]byte(`{"buyer_id":"a","variant":"us9"}`)); !ok || b != "a" || v != "us9" {
		t.Errorf("the fast path does not read a variant: %q %q %v", b, v, ok)
	}
}

// FuzzDecodeOrder: whatever the body, the decoder either returns a valid
// buyer id and no reason, or no buyer and a 400 reason; it never panics.
// What it takes is strict JSON that encoding/json reads as the same
// buyer and payload, and the payload it returns is the canonical form of
// the tree it returns, which decodes again to both; plainOrder, the fast
// path, says what the decoder says.
func FuzzDecodeOrder(f *testing.F) {
	for _, s := range []string{`{"buyer_id":"alice"}`, `{}`, `null`, `{"buyer_id":"a"}]`, `[`, "{\"buyer_id\":\"\\u0000\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, reason := decodeOrder(body, true)
		buyer := d.buyer
		if reason != "" {
			buyer = ""
		}
		if fast, v, ok := plainOrder(body); ok {
			if slow, r := decodeObject(body, true); slow.buyer != fast || slow.variant != v || slow.badVariant || r != "" {
				t.Fatalf("plainOrder(%q) = %q %q, the decoder says %q %q, %q", body, fast, v, slow.buyer, slow.variant, r)
			}
		}
		switch {
		case reason == "" && !validBuyerID(buyer):
			t.Fatalf("accepted invalid buyer %q from %q", buyer, body)
		case reason != "" && buyer != "":
			t.Fatalf("refused with %s but returned buyer %q", reason, buyer)
		case reason != "" && reason.Status() != 400:
			t.Fatalf("reason %s is not a 400", reason)
		case reason != "":
			return
		}
		// Taken: encoding/json reads the same buyer and payload.
		var std struct {
			BuyerID string          `json:"buyer_id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("took %q, which encoding/json refuses: %v", body, err)
		}
		if std.BuyerID != d.buyer {
			t.Fatalf("%q: buyer %q, encoding/json reads %q", body, d.buyer, std.BuyerID)
		}
		if d.payload == nil {
			if std.Payload != nil {
				t.Fatalf("%q: no payload, encoding/json reads %s", body, std.Payload)
			}
			return
		}
		tree, canonical, err := payload.Parse(d.payload)
		if err != nil || !bytes.Equal(canonical, d.payload) || !reflect.DeepEqual(tree, d.value) {
			t.Fatalf("%q: payload %s, its tree %v; decoded alone: %s %v %v", body, d.payload, d.value, canonical, tree, err)
		}
		again, _, err := payload.Parse(std.Payload)
		if err != nil || !reflect.DeepEqual(again, d.value) {
			t.Fatalf("%q: the payload as sent, %s, decodes to %v (%v), not %v", body, std.Payload, again, err, d.value)
		}
	})
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "1.2.3.4, 10.0.0.2")
	f.Add("[::1]:1", "")
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8", "::1"})
	f.Fuzz(func(t *testing.T, remote, xff string) {
		var peer netip.Addr
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			peer = ap.Addr().Unmap()
		}
		a := clientIP(peer, [][]byte{[]byte(xff)}, trusted)
		if a.IsValid() && a.Is4In6() {
			t.Fatalf("unmapped address expected, got %v", a)
		}
	})
}

// BenchmarkDecodeOrder is an order body with a shop's payload through the
// strict decoder, and the plain body through its fast path.
func BenchmarkDecodeOrder(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"plain", `{"buyer_id":"buyer-12345"}`},
		{"payload", `{"buyer_id":"buyer-12345","payload":{"sku":"TEE-DROP-1","size":"L","quantity":1,"price_shown":"29.00 EUR","gift":false,"note":"caf\u00e9"}}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, reason := decodeOrder(body, true); reason != "" {
					b.Fatal(reason)
				}
			}
		})
	}
}
