package registry

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckHost(t *testing.T) {
	tests := map[string]struct {
		host  string
		allow []string
		want  *NotAllowedError // nil: allowed
	}{
		"exact":                         {host: "ghcr.io", allow: []string{"ghcr.io"}},
		"default port on the host":      {host: "ghcr.io:443", allow: []string{"ghcr.io"}},
		"default port on the entry":     {host: "ghcr.io", allow: []string{"ghcr.io:443"}},
		"other port":                    {host: "ghcr.io:8443", allow: []string{"ghcr.io"}, want: &NotAllowedError{Host: "ghcr.io:8443", Reason: reasonNotListed}},
		"case":                          {host: "GHCR.io", allow: []string{"ghcr.IO"}},
		"docker.io is index.docker.io":  {host: "index.docker.io", allow: []string{"docker.io"}},
		"index.docker.io is docker.io":  {host: "docker.io", allow: []string{"index.docker.io"}},
		"docker.io on another port":     {host: "docker.io:5000", allow: []string{"docker.io"}, want: &NotAllowedError{Host: "docker.io:5000", Reason: reasonNotListed}},
		"registry-1 is another host":    {host: "registry-1.docker.io", allow: []string{"docker.io"}, want: &NotAllowedError{Host: "registry-1.docker.io", Reason: reasonNotListed}},
		"subdomain is another host":     {host: "evil.ghcr.io", allow: []string{"ghcr.io"}, want: &NotAllowedError{Host: "evil.ghcr.io", Reason: reasonNotListed}},
		"suffix is another host":        {host: "ghcr.io.evil.example", allow: []string{"ghcr.io"}, want: &NotAllowedError{Host: "ghcr.io.evil.example", Reason: reasonNotListed}},
		"localhost, listed port":        {host: "localhost:5001", allow: []string{"localhost:5001"}},
		"localhost, other port":         {host: "localhost:5000", allow: []string{"localhost:5001"}, want: &NotAllowedError{Host: "localhost:5000", Reason: reasonNotListed}},
		"IP and port":                   {host: "127.0.0.1:5000", allow: []string{"127.0.0.1:5000"}},
		"IPv6 written differently":      {host: "[0:0::1]:5000", allow: []string{"[::1]:5000"}},
		"port with leading zero":        {host: "127.0.0.1:05000", allow: []string{"127.0.0.1:5000"}},
		"empty allow-list":              {host: "ghcr.io", want: &NotAllowedError{Host: "ghcr.io", Reason: reasonNotListed}},
		"invalid entries never match":   {host: "ghcr.io", allow: []string{"https://ghcr.io", "*.io"}, want: &NotAllowedError{Host: "ghcr.io", Reason: reasonNotListed}},
		"not a host":                    {host: "ghcr.io/team", allow: []string{"ghcr.io"}, want: &NotAllowedError{Host: "ghcr.io/team", Reason: "not a host or host:port"}},
		"userinfo is redacted":          {host: "alice:pw@ghcr.io", allow: []string{"ghcr.io"}, want: &NotAllowedError{Host: "<redacted>@ghcr.io", Reason: "not a host or host:port"}},
		"unbracketed IPv6 is not valid": {host: "::1", allow: []string{"[::1]"}, want: &NotAllowedError{Host: "::1", Reason: "not a host or host:port"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckHost(tc.host, tc.allow)
			var got *NotAllowedError
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("CheckHost(%q) = %v, want a *NotAllowedError or nil", tc.host, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CheckHost(%q, %q) (-want +got):\n%s", tc.host, tc.allow, diff)
			}
		})
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := map[string]struct {
		opts Options
		want string
	}{
		"URL in allow-list":       {Options{Allow: []string{"https://ghcr.io"}}, `registry allow-list entry "https://ghcr.io": want host or host:port, not a URL`},
		"path in allow-list":      {Options{Allow: []string{"ghcr.io/team"}}, `registry allow-list entry "ghcr.io/team": want host or host:port`},
		"wildcard":                {Options{Allow: []string{"*.gcr.io"}}, `registry allow-list entry "*.gcr.io": wildcards are not supported`},
		"empty entry":             {Options{Allow: []string{""}}, `registry allow-list entry "": empty host`},
		"bad port":                {Options{Allow: []string{"ghcr.io:0"}}, `registry allow-list entry "ghcr.io:0": port must be 1-65535`},
		"empty port":              {Options{Allow: []string{"ghcr.io:"}}, `registry allow-list entry "ghcr.io:": empty port`},
		"bad host name":           {Options{Allow: []string{"gh cr.io"}}, `registry allow-list entry "gh cr.io": want host or host:port`},
		"credentials redacted":    {Options{Allow: []string{"alice:s3cret@ghcr.io"}}, `registry allow-list entry "<redacted>@ghcr.io": want host or host:port`},
		"insecure, not allowed":   {Options{Allow: []string{"ghcr.io"}, Insecure: []string{"registry.local:5000"}}, `insecure registry "registry.local:5000": not on the registry allow-list`},
		"invalid address range":   {Options{AllowAddresses: []netip.Prefix{{}}}, `allowed address range "invalid Prefix": not a valid prefix`},
		"negative timeout":        {Options{Timeout: -time.Second}, "registry timeout -1s: must not be negative"},
		"negative manifest bound": {Options{MaxManifestBytes: -1}, "manifest size limit -1: must not be negative"},
		"negative blob bound":     {Options{MaxBlobBytes: -1}, "blob size limit -1: must not be negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil {
				t.Fatalf("New(%+v) succeeded, want error %q", tc.opts, tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("New error (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("New error %q contains a credential", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Options{Allow: []string{"ghcr.io", "Docker.io", "127.0.0.1:5000"}})
	if err != nil {
		t.Fatal(err)
	}
	type defaults struct {
		Allowed          map[string]string
		Timeout          time.Duration
		MaxManifestBytes int64
		MaxBlobBytes     int64
		Proxy            bool
		MinTLSVersion    uint16
	}
	got := defaults{
		Allowed:          c.allowed,
		Timeout:          c.timeout,
		MaxManifestBytes: c.guard.maxBodies,
		MaxBlobBytes:     c.guard.maxBlobs,
		Proxy:            c.guard.inner.Proxy != nil,
		MinTLSVersion:    c.guard.inner.TLSClientConfig.MinVersion,
	}
	want := defaults{
		Allowed: map[string]string{
			"ghcr.io:443":         "ghcr.io",
			"index.docker.io:443": "index.docker.io",
			"127.0.0.1:5000":      "127.0.0.1:5000",
		},
		Timeout:          5 * time.Second,
		MaxManifestBytes: 4 << 20,
		MaxBlobBytes:     0,
		Proxy:            false,
		MinTLSVersion:    0x0303, // TLS 1.2
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}
