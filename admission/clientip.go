package admission

import (
	"net/netip"
	"strings"
)

// clientIP returns the address a request is limited by: the socket peer,
// unless the peer is a trusted proxy, then the right-most address in
// X-Forwarded-For that is not a trusted proxy. Entries left of an untrusted
// one are the client's own claims and are ignored. An unparsable entry
// stops the walk at the last trusted hop, so garbage cannot choose the key.
func clientIP(remoteAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var peer netip.Addr
	if err == nil {
		peer = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(remoteAddr); err == nil {
		peer = a.Unmap()
	} else {
		return netip.Addr{}
	}
	if len(trusted) == 0 || len(xff) == 0 || !isTrusted(peer, trusted) {
		return peer
	}
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := xff[i]
		for entries != "" {
			j := strings.LastIndexByte(entries, ',')
			entry := strings.TrimSpace(entries[j+1:])
			if j < 0 {
				entries = ""
			} else {
				entries = entries[:j]
			}
			a, err := netip.ParseAddr(entry)
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
