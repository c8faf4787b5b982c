package registry

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Pure decisions: nothing in this file opens a socket.

func TestCheckAddress(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tests := map[string]struct {
		ip      string
		allowed []netip.Prefix
		want    *NotAllowedError // nil: allowed
	}{
		"loopback":                          {ip: "127.0.0.1", want: &NotAllowedError{Host: "127.0.0.1", Reason: "loopback address"}},
		"loopback, other":                   {ip: "127.0.0.2", want: &NotAllowedError{Host: "127.0.0.2", Reason: "loopback address"}},
		"loopback IPv6":                     {ip: "::1", want: &NotAllowedError{Host: "::1", Reason: "loopback address"}},
		"IPv4-mapped loopback":              {ip: "::ffff:127.0.0.2", want: &NotAllowedError{Host: "::ffff:127.0.0.2", Reason: "loopback address"}},
		"IPv4-mapped loopback, hex":         {ip: "::ffff:7f00:2", want: &NotAllowedError{Host: "::ffff:127.0.0.2", Reason: "loopback address"}},
		"IPv4-mapped loopback, long form":   {ip: "0:0:0:0:0:ffff:7f00:0002", want: &NotAllowedError{Host: "::ffff:127.0.0.2", Reason: "loopback address"}},
		"IPv4-compatible loopback":          {ip: "::7f00:2", want: &NotAllowedError{Host: "::7f00:2", Reason: "IPv4-compatible address"}},
		"IPv4-compatible public":            {ip: "::8.8.8.8", want: &NotAllowedError{Host: "::808:808", Reason: "IPv4-compatible address"}},
		"NAT64 loopback":                    {ip: "64:ff9b::7f00:2", want: &NotAllowedError{Host: "64:ff9b::7f00:2", Reason: "NAT64 form of loopback address"}},
		"NAT64 metadata service":            {ip: "64:ff9b::169.254.169.254", want: &NotAllowedError{Host: "64:ff9b::a9fe:a9fe", Reason: "NAT64 form of link-local address"}},
		"NAT64 public":                      {ip: "64:ff9b::8.8.8.8"},
		"NAT64 local-use":                   {ip: "64:ff9b:1::808:808", want: &NotAllowedError{Host: "64:ff9b:1::808:808", Reason: "local-use NAT64 address"}},
		"metadata service":                  {ip: "169.254.169.254", want: &NotAllowedError{Host: "169.254.169.254", Reason: "link-local address"}},
		"IPv4-mapped metadata service":      {ip: "::ffff:169.254.169.254", want: &NotAllowedError{Host: "::ffff:169.254.169.254", Reason: "link-local address"}},
		"link-local IPv6":                   {ip: "fe80::1", want: &NotAllowedError{Host: "fe80::1", Reason: "link-local address"}},
		"link-local IPv6 with zone":         {ip: "fe80::1%eth0", want: &NotAllowedError{Host: "fe80::1%eth0", Reason: "link-local address"}},
		"private 10/8":                      {ip: "10.0.0.1", want: &NotAllowedError{Host: "10.0.0.1", Reason: "private address"}},
		"private 172.16/12":                 {ip: "172.16.0.1", want: &NotAllowedError{Host: "172.16.0.1", Reason: "private address"}},
		"private 192.168/16":                {ip: "192.168.1.1", want: &NotAllowedError{Host: "192.168.1.1", Reason: "private address"}},
		"unique-local":                      {ip: "fc00::1", want: &NotAllowedError{Host: "fc00::1", Reason: "private address"}},
		"unique-local fd":                   {ip: "fd00:ec2::254", want: &NotAllowedError{Host: "fd00:ec2::254", Reason: "private address"}},
		"carrier-grade NAT":                 {ip: "100.64.0.1", want: &NotAllowedError{Host: "100.64.0.1", Reason: "carrier-grade NAT address"}},
		"unspecified":                       {ip: "0.0.0.0", want: &NotAllowedError{Host: "0.0.0.0", Reason: "unspecified address"}},
		"this network":                      {ip: "0.1.2.3", want: &NotAllowedError{Host: "0.1.2.3", Reason: "this-network address"}},
		"unspecified IPv6":                  {ip: "::", want: &NotAllowedError{Host: "::", Reason: "unspecified address"}},
		"link-local multicast":              {ip: "224.0.0.1", want: &NotAllowedError{Host: "224.0.0.1", Reason: "link-local multicast address"}},
		"multicast":                         {ip: "239.1.1.1", want: &NotAllowedError{Host: "239.1.1.1", Reason: "multicast address"}},
		"multicast IPv6":                    {ip: "ff05::1", want: &NotAllowedError{Host: "ff05::1", Reason: "multicast address"}},
		"broadcast":                         {ip: "255.255.255.255", want: &NotAllowedError{Host: "255.255.255.255", Reason: "broadcast address"}},
		"reserved":                          {ip: "240.0.0.1", want: &NotAllowedError{Host: "240.0.0.1", Reason: "reserved address"}},
		"benchmarking":                      {ip: "198.18.0.1", want: &NotAllowedError{Host: "198.18.0.1", Reason: "benchmarking address"}},
		"public IPv4":                       {ip: "8.8.8.8"},
		"public IPv6":                       {ip: "2001:4860::8888"},
		"IPv4-mapped public":                {ip: "::ffff:8.8.8.8"},
		"allowed loopback":                  {ip: "127.0.0.1", allowed: local},
		"allowed loopback, IPv4-mapped":     {ip: "::ffff:127.0.0.1", allowed: local},
		"allowed range does not stretch":    {ip: "127.0.0.2", allowed: local, want: &NotAllowedError{Host: "127.0.0.2", Reason: "loopback address"}},
		"allowed as IPv4-mapped prefix":     {ip: "127.0.0.1", allowed: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.1/128")}},
		"allowed IPv4 does not allow ::1":   {ip: "::1", allowed: local, want: &NotAllowedError{Host: "::1", Reason: "loopback address"}},
		"allowed private range":             {ip: "10.1.2.3", allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		"allowed private range, NAT64 form": {ip: "64:ff9b::a01:203", allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckAddress(netip.MustParseAddr(tc.ip), tc.allowed)
			var got *NotAllowedError
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("CheckAddress(%s) = %v, want a *NotAllowedError or nil", tc.ip, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CheckAddress(%s) (-want +got):\n%s", tc.ip, diff)
			}
		})
	}
}

func TestCheckAddressInvalid(t *testing.T) {
	var na *NotAllowedError
	if err := CheckAddress(netip.Addr{}, nil); !errors.As(err, &na) {
		t.Errorf("CheckAddress(zero Addr) = %v, want a *NotAllowedError", err)
	}
}

func TestCheckDialAddress(t *testing.T) {
	control := checkDialAddress([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	tests := map[string]struct {
		address string
		want    *NotAllowedError
	}{
		"allowed":              {address: "127.0.0.1:5000"},
		"loopback":             {address: "127.0.0.2:5000", want: &NotAllowedError{Host: "127.0.0.2", Reason: "loopback address"}},
		"IPv4-mapped, bracket": {address: "[::ffff:169.254.169.254]:80", want: &NotAllowedError{Host: "::ffff:169.254.169.254", Reason: "link-local address"}},
		"not an address":       {address: "registry.example.com:443", want: &NotAllowedError{Host: "registry.example.com:443", Reason: "not an IP address and port"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := control("tcp4", tc.address, nil)
			var got *NotAllowedError
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("control(%s) = %v, want a *NotAllowedError or nil", tc.address, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("control(%s) (-want +got):\n%s", tc.address, diff)
			}
		})
	}
}
