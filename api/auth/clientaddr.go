package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddress returns the function that names the source address of a
// request, for the login throttle and audit lines: the address of the
// peer, unless that is a trusted proxy (a load balancer that appends the
// address it saw to X-Forwarded-For), in which case the right-most address
// of X-Forwarded-For that is not itself a trusted proxy. Without trusted
// proxies X-Forwarded-For is ignored: any client can write it.
func ClientAddress(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer := remoteHost(r)
		addr, err := netip.ParseAddr(peer)
		if err != nil || !isTrusted(addr) {
			return peer
		}
		hops := forwardedFor(r.Header)
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(hops[i])
			if err != nil {
				return peer // a malformed hop: trust nothing before it
			}
			if !isTrusted(hop) {
				return hop.Unmap().String()
			}
		}
		return peer
	}
}

// forwardedFor returns the addresses of every X-Forwarded-For header, in
// order.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// ParseTrustedProxies parses addresses and CIDR prefixes, such as
// "10.0.0.0/8" or "192.0.2.7".
func ParseTrustedProxies(specs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range specs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
