package serve_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// line_per_address counts the tickets of a client address, IPv4 by /32
// and IPv6 by /56, across gates: past it 429 address_limit, nothing
// stored; a buyer joining again keeps their one slot. Behind a trusted
// proxy the address is the client's, from X-Forwarded-For.
func TestLinePerAddress(t *testing.T) {
	sale := ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), LinePerAddress: 2}
	cfgA := gatetest.Config(t, sale)
	cfgA.NATSListen = "127.0.0.1:0"
	cfgA.Gate.TrustedProxies, _ = admission.ParseTrustedProxies([]string{"127.0.0.1"})
	a := gatetest.Start(t, cfgA)
	cfgB := gatetest.Config(t)
	cfgB.NATSURL = a.NATSURL()
	cfgB.NoDrain = true
	cfgB.Gate.TrustedProxies = cfgA.Gate.TrustedProxies
	b := gatetest.Start(t, cfgB)
	for _, g := range []*serve.Server{a, b} {
		gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	}
	c := gatetest.Client()
	bases := []string{"http://" + a.APIAddr(), "http://" + b.APIAddr()}
	joinFrom := func(i int, buyer, xff string) gatetest.Answer {
		t.Helper()
		req, _ := http.NewRequest("POST", bases[i%2]+"/v1/sales/drop/line", strings.NewReader(`{"buyer_id":"`+buyer+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", xff)
		return gatetest.Do(t, c, req)
	}
	for i, tc := range []struct {
		buyer, xff string
		status     int
	}{
		{"v4-a", "203.0.113.7", 201},
		{"v4-b", "203.0.113.7", 201},
		{"v4-c", "203.0.113.7", 429},
		{"v4-a", "203.0.113.7", 200}, // joining again: the same slot
		{"v4-d", "203.0.113.8", 201}, // another /32
		{"v6-a", "2001:db8:0:1::1", 201},
		{"v6-b", "2001:db8:0:2::9", 201}, // the same /56
		{"v6-c", "2001:db8:0:3::5", 429},
		{"v6-d", "2001:db8:0:100::1", 201}, // another /56
	} {
		got := joinFrom(i, tc.buyer, tc.xff)
		if got.Status != tc.status {
			t.Fatalf("%s from %s: %d %s, want %d", tc.buyer, tc.xff, got.Status, got.Raw, tc.status)
		}
		if tc.status == 429 {
			wantProblem(t, fmt.Sprintf("%s from %s", tc.buyer, tc.xff), got, 429, "address_limit")
		}
	}
	if n := lineMsgs(t, a.RoomStore(), "drop"); n != 6 {
		t.Fatalf("the line holds %d tickets, want 6", n)
	}
}
