package registry

import (
	"net/netip"
	"syscall"
)

// nonPublic lists the destinations bulwark refuses to dial unless an operator allows
// them: from a pod's admission request, any of these is a way into the node, the
// cluster network or the cloud metadata service. The first matching prefix gives
// the reason, so a more specific prefix comes before the one containing it.
var nonPublic = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address"},
	{netip.MustParsePrefix("224.0.0.0/24"), "link-local multicast address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},

	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback address"},
	// IPv4-compatible addresses (RFC 4291 §2.5.5.1) are deprecated and never a
	// registry's address; refusing them all avoids guessing where they lead.
	{netip.MustParsePrefix("::/96"), "IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "private address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "site-local address"},
	{netip.MustParsePrefix("ff02::/16"), "link-local multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): 64:ff9b::a.b.c.d reaches a.b.c.d
// through the translator, so it is judged as a.b.c.d.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddress decides whether bulwark may connect to ip. It refuses destinations
// that are not public: unspecified, this-network, loopback, link-local, private and
// unique-local, carrier-grade NAT, multicast, broadcast, reserved, documentation and
// benchmarking addresses, and deprecated IPv4-compatible IPv6 addresses, unless ip
// is inside one of the allowed prefixes.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address the
// kernel connects to, and so is a NAT64 address (64:ff9b::a.b.c.d), which the
// translator forwards to a.b.c.d. The zone of a scoped address is ignored. A refusal
// is a *NotAllowedError whose Host is ip.String().
func CheckAddress(ip netip.Addr, allowed []netip.Prefix) error {
	if !ip.IsValid() {
		return &NotAllowedError{Host: "<invalid>", Reason: "invalid address"}
	}
	if reason := refusal(ip.WithZone(""), allowed); reason != "" {
		return &NotAllowedError{Host: ip.String(), Reason: reason}
	}
	return nil
}

// refusal returns why ip (without zone) may not be dialled, or "" if it may.
func refusal(ip netip.Addr, allowed []netip.Prefix) string {
	ip = ip.Unmap()
	for _, p := range allowed {
		if unmapPrefix(p).Contains(ip) {
			return ""
		}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		if reason := refusal(netip.AddrFrom4([4]byte(b[12:])), allowed); reason != "" {
			return "NAT64 form of " + reason
		}
		return ""
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// unmapPrefix turns an IPv4-mapped prefix (::ffff:127.0.0.1/128) into the IPv4 prefix
// (127.0.0.1/32) it means, so it matches the unmapped addresses CheckAddress compares.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() || p.Bits() < 96 {
		return p
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
}

// checkDialAddress is a net.Dialer Control function: it runs CheckAddress on the
// address the socket is about to connect to, after name resolution and before any
// packet is sent, so a name that resolves differently at dial time (DNS rebinding)
// is still caught.
func checkDialAddress(allowed []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &NotAllowedError{Host: address, Reason: "not an IP address and port"}
		}
		return CheckAddress(ap.Addr(), allowed)
	}
}
