// Package oci gives tests real OCI parts: an in-process registry over TLS
// (go-containerregistry's pkg/registry) that counts requests and can be made to
// fail, demand credentials or flip a tag; images and signatures made with the
// go-containerregistry and cosign libraries (multi-platform indexes,
// signatures, in-toto attestations); and stand-ins for Fulcio and Rekor
// whose certificates and bundles cosign verifies offline. Nothing here is a
// mock: the registry speaks the distribution API to whatever client calls it.
package oci

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	bwregistry "github.com/bulwark-dev/bulwark/pkg/registry"
)

// T is the part of testing.TB the helpers use; the demo passes its own.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Registry is an in-process OCI registry on 127.0.0.1 over TLS.
type Registry struct {
	// Host is host:port, the registry part of image references.
	Host string
	// CAPEM is the PEM of the certificate the registry serves; trust it to talk
	// to the registry.
	CAPEM []byte

	server    *httptest.Server
	transport *http.Transport
	mu        sync.Mutex
	counts    map[string]int
	served    []string
	status    int
	hooks     []func(w http.ResponseWriter, r *http.Request) bool
	auth      *authn.Basic
	holds     map[string]<-chan struct{} // path → release of held bodies
}

// NewRegistry starts a registry that stops when the test ends (t.Cleanup).
func NewRegistry(t T) *Registry {
	t.Helper()
	r := &Registry{counts: map[string]int{}}
	backend := registry.New(registry.Logger(nopLogger()))
	r.server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.counts[req.Method+" "+req.URL.Path]++
		r.served = append(r.served, req.Method+" "+req.URL.Path)
		status, hooks, auth := r.status, append([]func(http.ResponseWriter, *http.Request) bool(nil), r.hooks...), r.auth
		r.mu.Unlock()
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
		for _, h := range hooks {
			if h(w, req) {
				return
			}
		}
		if auth != nil {
			if u, p, ok := req.BasicAuth(); !ok || u != auth.Username || p != auth.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		r.mu.Lock()
		hold := r.holds[req.URL.Path]
		r.mu.Unlock()
		if hold != nil {
			// Headers go out at once; the body waits: a slow registry, not a
			// dead one.
			w = &heldWriter{ResponseWriter: w, release: hold, done: req.Context().Done()}
		}
		backend.ServeHTTP(w, req)
	}))
	r.server.StartTLS()
	t.Cleanup(r.server.Close)
	r.Host = strings.TrimPrefix(r.server.URL, "https://")
	r.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.server.Certificate().Raw})
	pool := x509.NewCertPool()
	pool.AddCert(r.server.Certificate())
	r.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(r.transport.CloseIdleConnections)
	return r
}

// Transport trusts the registry's certificate. It is not built on
// http.DefaultTransport, so a test that forbids that one can still use it.
func (r *Registry) Transport() http.RoundTripper { return r.transport }

// Close stops r before the test ends: requests then fail to connect.
func (r *Registry) Close() { r.server.Close() }

// Client is a client under bulwark's registry egress guard that may reach this
// registry only (its host, on loopback) and trusts its CA; o's other fields are
// kept.
func (r *Registry) Client(t T, o bwregistry.Options) *bwregistry.Client {
	t.Helper()
	o.Allow = []string{r.Host}
	o.AllowAddresses = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	o.RootCAs = x509.NewCertPool()
	o.RootCAs.AppendCertsFromPEM(r.CAPEM)
	c, err := bwregistry.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RemoteOptions are the options a test uses to push to and read from r, with
// its credentials when it requires them.
func (r *Registry) RemoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.Transport())}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auth != nil {
		opts = append(opts, remote.WithAuth(r.auth))
	}
	return opts
}

// RequireAuth makes every request need HTTP basic credentials.
func (r *Registry) RequireAuth(user, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth = &authn.Basic{Username: user, Password: password}
}

// SetStatus makes r answer every request with the HTTP status code, before
// any hook or credential check; a 401 carries a Basic challenge, as a
// registry's does. 0 serves requests again.
func (r *Registry) SetStatus(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = code
}

// HoldBody makes responses for path send their headers and then wait with the
// body until release is closed (or the client goes away).
func (r *Registry) HoldBody(path string, release <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holds == nil {
		r.holds = map[string]<-chan struct{}{}
	}
	r.holds[path] = release
}

// heldWriter sends headers at once and holds the body until release.
type heldWriter struct {
	http.ResponseWriter
	release, done <-chan struct{}
	headers       bool
}

func (h *heldWriter) WriteHeader(code int) {
	h.ResponseWriter.WriteHeader(code)
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	h.headers = true
}

func (h *heldWriter) Write(b []byte) (int, error) {
	if !h.headers {
		h.WriteHeader(http.StatusOK)
	}
	select {
	case <-h.release:
	case <-h.done:
	}
	return h.ResponseWriter.Write(b)
}

// Hook adds fn in front of the registry: when it returns true it has answered.
func (r *Registry) Hook(fn func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, fn)
}

// Count returns how many requests with method and path were served (including
// those a hook answered).
func (r *Registry) Count(method, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[method+" "+path]
}

// Total returns how many requests were served whose path starts with prefix.
func (r *Registry) Total(prefix string) int {
	n := 0
	for _, c := range r.Paths(prefix) {
		n += c
	}
	return n
}

// Served returns every request ("METHOD path") served so far, in the order
// they arrived, including those a hook or SetStatus answered.
func (r *Registry) Served() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.served)
}

// Repo returns the repository repo on r, e.g. 127.0.0.1:4321/team/app.
func (r *Registry) Repo(t T, repo string) name.Repository {
	t.Helper()
	rp, err := name.NewRepository(r.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// Push writes img to repo:tag (tag may be "") and returns its digest reference
// repo@sha256:….
func (r *Registry) Push(t T, repo, tag string, img v1.Image) name.Digest {
	t.Helper()
	rp := r.Repo(t, repo)
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := rp.Digest(h.String())
	if err := remote.Write(d, img, r.RemoteOptions()...); err != nil {
		t.Fatalf("push %s: %v", d, err)
	}
	if tag != "" {
		if err := remote.Tag(rp.Tag(tag), img, r.RemoteOptions()...); err != nil {
			t.Fatalf("tag %s: %v", rp.Tag(tag), err)
		}
	}
	return d
}

// RandomImage returns a small image with random content (a new digest each call).
func RandomImage(t T) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Paths returns the request counts by "METHOD path" for paths starting with prefix.
func (r *Registry) Paths(prefix string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, c := range r.counts {
		if _, path, _ := strings.Cut(k, " "); strings.HasPrefix(path, prefix) {
			out[k] = c
		}
	}
	return out
}

// PushIndex writes to repo, by digest, an image index with a random image for
// each platform (as a multi-platform build pushes), and returns the digests of
// the index and of its images, in the order of platforms.
func (r *Registry) PushIndex(t T, repo string, platforms ...v1.Platform) (index name.Digest, images []name.Digest) {
	t.Helper()
	rp := r.Repo(t, repo)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img := RandomImage(t)
		h, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		images = append(images, rp.Digest(h.String()))
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	index = rp.Digest(h.String())
	if err := remote.WriteIndex(index, idx, r.RemoteOptions()...); err != nil {
		t.Fatalf("push %s: %v", index, err)
	}
	return index, images
}
