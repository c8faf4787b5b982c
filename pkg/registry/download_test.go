package registry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestDownloadTransportLetsTheDatabaseThrough: a vulnerability database archive
// is larger than any registry response the guard lets through and comes from a
// host the operator named by its URL, not on the registry allow-list; the
// download transport takes it, unbounded, while every other egress rule holds.
func TestDownloadTransportLetsTheDatabaseThrough(t *testing.T) {
	archive := bytes.Repeat([]byte("db"), 3<<20) // 6 MiB, over DefaultMaxManifestBytes
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(archive)
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	url := "https://" + host + "/databases/v6/vulnerability-db.tar.zst"
	get := func(rt http.RoundTripper, u string) ([]byte, error) {
		resp, err := (&http.Client{Transport: rt}).Get(u)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	// The registry transport: the host is not allowed; allowed, the body is too large.
	c := newTestClient(t, srv, Options{AllowAddresses: loopback})
	if _, err := get(c.Transport(), url); !errors.As(err, new(*NotAllowedError)) {
		t.Errorf("registry transport to a host not on the allow-list: %v, want not allowed", err)
	}
	listed := newTestClient(t, srv, Options{Allow: []string{host}, AllowAddresses: loopback})
	if _, err := get(listed.Transport(), url); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("registry transport, 6 MiB archive: %v, want it over the limit", err)
	}

	// The download transport: the named host, the whole body.
	dl, err := c.DownloadTransport(host)
	if err != nil {
		t.Fatal(err)
	}
	body, err := get(dl, url)
	if err != nil || !bytes.Equal(body, archive) {
		t.Fatalf("download transport: %d bytes, %v; want the %d-byte archive", len(body), err, len(archive))
	}
	// Still guarded: another host, and the named one on an address not allowed.
	if _, err := get(dl, "https://localhost:1/db.tar.zst"); !errors.As(err, new(*NotAllowedError)) {
		t.Errorf("download transport to another host: %v, want not allowed", err)
	}
	unlisted, err := newTestClient(t, srv, Options{}).DownloadTransport(host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(unlisted, url); !errors.As(err, new(*NotAllowedError)) {
		t.Errorf("download transport to 127.0.0.1 without allowAddresses: %v, want not allowed", err)
	}
	if _, err := c.DownloadTransport("https://example.test"); err == nil {
		t.Error("DownloadTransport accepted a URL as a host")
	}
}
