package admission

import (
	"bytes"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// clientIP returns the address a request is limited by (see clientIP).
func (g *Gate) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := peerAddr(ctx.RemoteAddr())
	if len(g.cfg.TrustedProxies) == 0 || !isTrusted(peer, g.cfg.TrustedProxies) {
		return peer
	}
	return clientIP(peer, ctx.Request.Header.PeekAll(hForwardFor), g.cfg.TrustedProxies)
}

// peerAddr is a socket peer's address, IPv4 unmapped.
func peerAddr(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// clientIP returns the address a request from peer is limited by: the
// peer, unless the peer is a trusted proxy, then the right-most address in
// X-Forwarded-For that is not a trusted proxy. Entries left of an untrusted
// one are the client's own claims and are ignored. An unparsable entry
// stops the walk at the last trusted hop, so garbage cannot choose the key.
func clientIP(peer netip.Addr, xff [][]byte, trusted []netip.Prefix) netip.Addr {
	if !peer.IsValid() || len(trusted) == 0 || len(xff) == 0 || !isTrusted(peer, trusted) {
		return peer
	}
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := xff[i]
		for len(entries) > 0 {
			j := bytes.LastIndexByte(entries, ',')
			entry := bytes.TrimSpace(entries[j+1:])
			if j < 0 {
				entries = nil
			} else {
				entries = entries[:j]
			}
			a, err := netip.ParseAddr(string(entry))
			if err != nil {
				return last
			}
			a = a.Unmap()
			if !isTrusted(a, trusted) {
				return a
			}
			last = a
		}
	}
	return last
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limiterKey groups IPv6 clients by /64, the block one subscriber holds,
// so one client cannot mint keys from its own prefix.
func limiterKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// ParseTrustedProxies parses a list of addresses or CIDR prefixes.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
