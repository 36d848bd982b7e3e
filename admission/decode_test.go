package admission

import (
	"net/netip"
	"strings"
	"testing"

	"sluice/overflow"
)

func TestDecodeOrder(t *testing.T) {
	cases := []struct {
		body   string
		buyer  string
		reason overflow.Reason
	}{
		{`{"buyer_id":"alice"}`, "alice", ""},
		{` {"buyer_id":"a.b:c@d-e_f"} ` + "\n", "a.b:c@d-e_f", ""},
		{`{"buyer_id":"alice","quantity":1}`, "alice", ""},
		{`{"buyer_id":"` + strings.Repeat("x", 128) + `"}`, strings.Repeat("x", 128), ""},
		{`{"buyer_id":"` + strings.Repeat("x", 129) + `"}`, "", overflow.BadBuyerID},
		{`{"buyer_id":"al ice"}`, "", overflow.BadBuyerID},
		{`{"buyer_id":"ålice"}`, "", overflow.BadBuyerID},
		{`{"buyer_id":null}`, "", overflow.BadBuyerID},
		{`{}`, "", overflow.BadBuyerID},
		{`{"buyer_id":1}`, "", overflow.BadJSON},
		{``, "", overflow.BadJSON},
		{`null`, "", overflow.BadJSON},
		{`"alice"`, "", overflow.BadJSON},
		{`{"buyer_id":"a"}{}`, "", overflow.BadJSON},
		{`{"buyer_id":"a"}]`, "", overflow.BadJSON},
		{`{"buyer_id":"a"`, "", overflow.BadJSON},
		{`{"buyer_id":"a","buyer_id":"b"}`, "", overflow.BadJSON},
		{`{"buyer_id":"a","buyer\u005fid":"b"}`, "", overflow.BadJSON},
		{`{"Buyer_ID":"a"}`, "", overflow.BadJSON},
		{`{"buyer_id":"a","BUYER_ID":"b"}`, "", overflow.BadJSON},
		{`{"pad":1,"pad":2,"buyer_id":"a"}`, "", overflow.BadJSON},
		{`{"pad":{"buyer_id":"x"},"buyer_id":"a"}`, "a", ""},
	}
	for _, tc := range cases {
		buyer, reason := decodeOrder([]byte(tc.body))
		if buyer != tc.buyer || reason != tc.reason {
			t.Errorf("decodeOrder(%q) = %q, %q; want %q, %q", tc.body, buyer, reason, tc.buyer, tc.reason)
		}
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

// FuzzDecodeOrder: whatever the body, the decoder either returns a valid
// buyer id and no reason, or no buyer and a 400 reason; it never panics.
func FuzzDecodeOrder(f *testing.F) {
	for _, s := range []string{`{"buyer_id":"alice"}`, `{}`, `null`, `{"buyer_id":"a"}]`, `[`, "{\"buyer_id\":\"\\u0000\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		buyer, reason := decodeOrder(body)
		if fast, ok := plainOrder(body); ok {
			if slow, r := decodeObject(body); slow != fast || r != "" {
				t.Fatalf("plainOrder(%q) = %q, the decoder says %q, %q", body, fast, slow, r)
			}
		}
		switch {
		case reason == "" && !validBuyerID(buyer):
			t.Fatalf("accepted invalid buyer %q from %q", buyer, body)
		case reason != "" && buyer != "":
			t.Fatalf("refused with %s but returned buyer %q", reason, buyer)
		case reason != "" && reason.Status() != 400:
			t.Fatalf("reason %s is not a 400", reason)
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
