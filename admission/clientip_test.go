package admission

import (
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct peer", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"untrusted peer ignores XFF", "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted peer, one hop", "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"right-most untrusted wins", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several headers", "192.168.1.1:80", []string{"6.6.6.6", "198.51.100.9, 10.0.0.1"}, "198.51.100.9"},
		{"all trusted takes left-most", "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage stops at last trusted hop", "10.1.2.3:80", []string{"198.51.100.9, not-an-ip"}, "10.1.2.3"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"mapped ipv4", "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
		{"bad remote", "nonsense", nil, "invalid IP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var peer netip.Addr
			if ap, err := netip.ParseAddrPort(tc.remote); err == nil {
				peer = ap.Addr().Unmap()
			}
			var xff [][]byte
			for _, h := range tc.xff {
				xff = append(xff, []byte(h))
			}
			if got := clientIP(peer, xff, trusted).String(); got != tc.want {
				t.Fatalf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLimiterKeyGroupsIPv6By64(t *testing.T) {
	a := limiterKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := limiterKey(netip.MustParseAddr("2001:db8:1:2:bbbb::9"))
	c := limiterKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("keys %v %v %v: want one per /64", a, b, c)
	}
	if v4 := limiterKey(netip.MustParseAddr("203.0.113.7")); v4.String() != "203.0.113.7" {
		t.Fatalf("ipv4 key %v", v4)
	}
}

func TestParseTrustedProxiesRejectsGarbage(t *testing.T) {
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad prefix accepted")
	}
	if _, err := ParseTrustedProxies([]string{"proxy.local"}); err == nil {
		t.Fatal("host name accepted")
	}
}

func TestOrderPath(t *testing.T) {
	for _, tc := range []struct {
		method, path, sale string
		ok                 bool
	}{
		{"POST", "/v1/sales/s1/orders", "s1", true},
		{"POST", "/v1/sales/spring-drop_2/orders", "spring-drop_2", true},
		{"GET", "/v1/sales/s1/orders", "", false},
		{"POST", "/v1/sales//orders", "", false},
		{"POST", "/v1/sales/a/b/orders", "", false},
		{"POST", "/v1/sales/orders", "", false},
		{"POST", "/v1/sales/s1/orders/", "", false},
		{"POST", "/v1/sales/s1/orders?x=1", "s1", true},
		{"POST", "/v1/sales/a%2Fb/orders", "", false},
		{"POST", "/v1/sales/x/../s1/orders", "s1", true},
	} {
		var u fasthttp.URI // the path as the server hands it to the router
		if err := u.Parse(nil, []byte(tc.path)); err != nil {
			t.Fatal(err)
		}
		r := route(u.Path())
		ok, sale := tc.method == "POST" && r.kind == routeOrders, ""
		if ok {
			sale = string(r.arg)
		}
		// The fast match of the flood's request line agrees with the router
		// wherever it matches at all.
		if fast, fok := plainOrderPath([]byte(tc.path)); fok && (r.kind != routeOrders || string(fast) != string(r.arg)) {
			t.Errorf("plainOrderPath(%s) = %q, router: %q", tc.path, fast, r.arg)
		}
		if sale != tc.sale || ok != tc.ok {
			t.Errorf("%s %s = %q, %v", tc.method, tc.path, sale, ok)
		}
	}
}
