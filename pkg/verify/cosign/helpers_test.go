package cosign_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// TestMain makes any use of http.DefaultTransport (what a Fulcio, Rekor or
// TUF client would reach the network with) fail the run: every registry
// request of these tests goes through the transport of remoteOptions.
func TestMain(m *testing.M) {
	guard := &defaultTransportGuard{}
	http.DefaultTransport = guard
	code := m.Run()
	if len(guard.requests) > 0 {
		fmt.Fprintf(os.Stderr, "requests through http.DefaultTransport: %v\n", guard.requests)
		code = 1
	}
	os.Exit(code)
}

type defaultTransportGuard struct {
	mu       sync.Mutex
	requests []string
}

func (g *defaultTransportGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, req.Method+" "+req.URL.String())
	return nil, fmt.Errorf("test: no request may use http.DefaultTransport: %s", req.URL)
}

// remoteOptions is what pkg/registry's Client.RemoteOptions provides in
// production, over a transport that reaches reg and fails the test on any
// other host: a Verify call must not reach Fulcio, Rekor, a TUF mirror or
// anything else.
func remoteOptions(t *testing.T, reg *oci.Registry) func(context.Context, name.Reference, authn.Keychain) []remote.Option {
	return remoteOptionsWith(onlyHost{host: reg.Host, rt: reg.Transport(), t: t})
}

// remoteOptionsWith gives the context, the transport rt, the keychain
// (anonymous when nil) and a (here fast) retry policy.
func remoteOptionsWith(rt http.RoundTripper) func(context.Context, name.Reference, authn.Keychain) []remote.Option {
	return func(ctx context.Context, _ name.Reference, kc authn.Keychain) []remote.Option {
		if kc == nil {
			kc = authn.NewMultiKeychain() // anonymous
		}
		return []remote.Option{
			remote.WithContext(ctx),
			remote.WithTransport(rt),
			remote.WithAuthFromKeychain(kc),
			remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}),
		}
	}
}

// onlyHost is a transport that reaches one host and fails the test on any other.
type onlyHost struct {
	host string
	rt   http.RoundTripper
	t    *testing.T
}

func (o onlyHost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		// As bulwark's egress guard does: go-containerregistry's plain-HTTP
		// fallback for loopback registries would otherwise get a 400 from the
		// TLS port, racing the HTTPS attempt.
		return nil, fmt.Errorf("test transport: plain HTTP refused")
	}
	if req.URL.Host != o.host {
		o.t.Errorf("request outside the test registry: %s %s", req.Method, req.URL)
		return nil, fmt.Errorf("test transport: %s is not the test registry", req.URL.Host)
	}
	return o.rt.RoundTrip(req)
}

// push writes a random image to repo on reg, by digest, and returns its digest.
func push(t *testing.T, reg *oci.Registry, repo string) name.Digest {
	t.Helper()
	return reg.Push(t, repo, "", oci.RandomImage(t))
}

// writeFile writes a trusted-root file made of blocks and returns its path.
func writeFile(t *testing.T, dir, name string, blocks ...[]byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, bytes.Join(blocks, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newVerifier(t *testing.T, o bwcosign.Options) *bwcosign.Verifier {
	t.Helper()
	v, err := bwcosign.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hexOf is the hex of a digest, for tag names.
func hexOf(d name.Digest) string { return strings.TrimPrefix(d.DigestStr(), "sha256:") }
