package registry

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// These tests dial only 127.0.0.0/8 and ::1: every registry is an in-process server
// on 127.0.0.1, every name is resolved by a hosts map, and whatever the guard must
// refuse is aimed at a canary listener on 127.0.0.2 or ::1.

// hosts is a Resolver that knows only its own names, so no test asks DNS.
type hosts map[string][]netip.Addr

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if addrs, ok := h[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// testRegistry is ggcr's in-process OCI registry served over TLS on 127.0.0.1. It
// records every manifest request it receives.
type testRegistry struct {
	srv  *httptest.Server
	host string // 127.0.0.1:port

	mu        sync.Mutex
	manifests []string // "METHOD path"
}

// newTestRegistry starts a registry; wrap, if not nil, wraps its handler.
func newTestRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	return startRegistry(t, wrap, httptest.NewTLSServer)
}

// startRegistry starts a registry with start (httptest.NewServer for plain HTTP).
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler, start func(http.Handler) *httptest.Server) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	r.srv = start(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if isManifestPath(req.URL.Path) {
			r.mu.Lock()
			r.manifests = append(r.manifests, req.Method+" "+req.URL.Path)
			r.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = r.srv.Listener.Addr().String()
	return r
}

func isManifestPath(p string) bool { return path.Base(path.Dir(p)) == "manifests" }

// push writes a random image to repoTag, bypassing the guard, and forgets the
// manifest requests that took.
func (r *testRegistry) push(t *testing.T, repoTag string, auth authn.Authenticator) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(t.Context()), remote.WithAuth(auth), remote.WithTransport(r.srv.Client().Transport)); err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.takeManifests()
	return digest
}

// takeManifests returns the manifest requests received since the last call.
func (r *testRegistry) takeManifests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.manifests
	r.manifests = nil
	return m
}

// testRoots trusts the certificate every httptest TLS server uses.
func testRoots(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	if cert := srv.Certificate(); cert != nil {
		pool.AddCert(cert)
	}
	return pool
}

// newTestClient returns a Client trusting srv's certificate, with a Resolver that
// knows no names unless o sets one.
func newTestClient(t *testing.T, srv *httptest.Server, o Options) *Client {
	t.Helper()
	if o.RootCAs == nil {
		o.RootCAs = testRoots(srv)
	}
	if o.Resolver == nil {
		o.Resolver = hosts{}
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestResolve(t *testing.T) {
	reg := newTestRegistry(t, nil)
	want := reg.push(t, "team/app:v1", authn.Anonymous)
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})

	got, err := c.Resolve(t.Context(), mustTag(t, reg.host+"/team/app:v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(reg.host+"/team/app:v1@"+want.String(), got.String()); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"HEAD /v2/team/app/manifests/v1"}, reg.takeManifests()); diff != "" {
		t.Errorf("manifest requests (-want +got):\n%s", diff)
	}
}

func TestResolvePlainHTTP(t *testing.T) {
	reg := startRegistry(t, nil, httptest.NewServer)
	want := reg.push(t, "team/app:v1", authn.Anonymous)
	tag := mustTag(t, reg.host+"/team/app:v1")

	t.Run("insecure registry", func(t *testing.T) {
		c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, Insecure: []string{reg.host}, AllowAddresses: loopback})
		got, err := c.Resolve(t.Context(), tag, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tag.String()+"@"+want.String(), got.String()); diff != "" {
			t.Errorf("Resolve (-want +got):\n%s", diff)
		}
	})
	t.Run("secure registry", func(t *testing.T) {
		c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})
		_, err := c.Resolve(t.Context(), tag, nil)
		want := &NotAllowedError{Host: reg.host, Reason: "plain HTTP not allowed for this registry"}
		got, ok := errors.AsType[*NotAllowedError](err)
		if !ok {
			t.Fatalf("Resolve error = %v, want a *NotAllowedError", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("refusal (-want +got):\n%s", diff)
		}
	})
}

// withoutDigestOnHead drops Docker-Content-Digest from responses to manifest HEADs,
// as some registries do.
func withoutDigestOnHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && isManifestPath(r.URL.Path) {
			w = stripDigest{w}
		}
		next.ServeHTTP(w, r)
	})
}

type stripDigest struct{ http.ResponseWriter }

func (w stripDigest) WriteHeader(code int) {
	w.Header().Del("Docker-Content-Digest")
	w.ResponseWriter.WriteHeader(code)
}

func (w stripDigest) Write(b []byte) (int, error) {
	w.Header().Del("Docker-Content-Digest")
	return w.ResponseWriter.Write(b)
}

func TestResolveFallsBackToOneGetWithoutDigestHeader(t *testing.T) {
	reg := newTestRegistry(t, withoutDigestOnHead)
	want := reg.push(t, "team/app:v1", authn.Anonymous)
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})

	got, err := c.Resolve(t.Context(), mustTag(t, reg.host+"/team/app:v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(reg.host+"/team/app:v1@"+want.String(), got.String()); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	wantRequests := []string{"HEAD /v2/team/app/manifests/v1", "GET /v2/team/app/manifests/v1"}
	if diff := cmp.Diff(wantRequests, reg.takeManifests()); diff != "" {
		t.Errorf("manifest requests (-want +got):\n%s", diff)
	}
}

func TestResolveDoesNotRetry(t *testing.T) {
	unavailable := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isManifestPath(r.URL.Path) {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, unavailable)
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})

	if _, err := c.Resolve(t.Context(), mustTag(t, reg.host+"/team/app:v1"), nil); err == nil {
		t.Fatal("Resolve succeeded against a registry answering 503")
	}
	if diff := cmp.Diff([]string{"HEAD /v2/team/app/manifests/v1"}, reg.takeManifests()); diff != "" {
		t.Errorf("manifest requests (-want +got):\n%s", diff)
	}
}

func TestResolveTimesOut(t *testing.T) {
	// The registry never answers the HEAD; only the client giving up ends it.
	hang := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isManifestPath(r.URL.Path) {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, hang)
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback, Timeout: 100 * time.Millisecond})

	_, err := c.Resolve(t.Context(), mustTag(t, reg.host+"/team/app:v1"), nil)
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout")) {
		t.Errorf("Resolve error = %v, want a timeout", err)
	}
}

// canary is a plain TCP listener that must never see a connection.
type canary struct {
	ln       net.Listener
	accepted chan string // remote address of each accepted connection
}

func newCanary(t *testing.T, addr string) *canary {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	c := &canary{ln: ln, accepted: make(chan string, 64)}
	go func() {
		defer close(c.accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted <- conn.RemoteAddr().String()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

// connections returns how many connections the canary accepted so far. It connects
// once itself and counts the connections accepted before its own, so nothing
// depends on timing.
func (c *canary) connections(t *testing.T) int {
	t.Helper()
	conn, err := net.Dial("tcp", c.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	mine := conn.LocalAddr().String()
	conn.Close()
	n := 0
	for addr := range c.accepted {
		if addr == mine {
			return n
		}
		n++
	}
	t.Fatal("canary stopped accepting")
	return 0
}

// bearerOnly answers every request with a bearer challenge pointing at realm.
func bearerOnly(t *testing.T, realm string) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="registry"`, realm))
		http.Error(w, "token required", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEgressGuardRefusesBeforeDialling(t *testing.T) {
	for _, listen := range []string{"127.0.0.2:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			cn := newCanary(t, listen)
			target := cn.ln.Addr().String() // 127.0.0.2:port or [::1]:port
			ap := netip.MustParseAddrPort(target)
			port := strconv.Itoa(int(ap.Port()))
			canaryOnly := []netip.Prefix{netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen())}
			byName := hosts{"canary.test": {ap.Addr()}}

			redirects := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case strings.HasPrefix(r.URL.Path, "/v2/redirect-address/"):
						http.Redirect(w, r, "https://"+target+r.URL.Path, http.StatusTemporaryRedirect)
					case strings.HasPrefix(r.URL.Path, "/v2/redirect-name/"):
						http.Redirect(w, r, "https://canary.test:"+port+r.URL.Path, http.StatusTemporaryRedirect)
					default:
						next.ServeHTTP(w, r)
					}
				})
			}
			reg := newTestRegistry(t, redirects)
			_, regPort, err := net.SplitHostPort(reg.host)
			if err != nil {
				t.Fatal(err)
			}
			realmAddress := bearerOnly(t, "https://"+target+"/token").Listener.Addr().String()
			realmName := bearerOnly(t, "https://canary.test:"+port+"/token").Listener.Addr().String()

			resolve := func(ref string) func(context.Context, *Client) error {
				return func(ctx context.Context, c *Client) error {
					_, err := c.Resolve(ctx, mustTag(t, ref), nil)
					return err
				}
			}
			get := func(rawURL string) func(context.Context, *Client) error {
				return func(ctx context.Context, c *Client) error {
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
					if err != nil {
						return err
					}
					resp, err := (&http.Client{Transport: c.Transport()}).Do(req)
					if err == nil {
						resp.Body.Close()
					}
					return err
				}
			}
			tests := map[string]struct {
				opts Options
				run  func(context.Context, *Client) error
				want *NotAllowedError
			}{
				"reference": {
					opts: Options{Allow: []string{reg.host}, AllowAddresses: loopback},
					run:  resolve(target + "/app:v1"),
					want: &NotAllowedError{Host: target, Reason: reasonNotListed},
				},
				"reference through RemoteOptions": {
					opts: Options{Allow: []string{reg.host}, AllowAddresses: loopback},
					run: func(ctx context.Context, c *Client) error {
						_, err := remote.Head(mustTag(t, target+"/app:v1"), c.RemoteOptions(ctx, nil)...)
						return err
					},
					want: &NotAllowedError{Host: target, Reason: reasonNotListed},
				},
				"localhost on another port": {
					// The address is allowed, the name resolves to it: only the
					// allow-list stands in the way.
					opts: Options{Allow: []string{"localhost:" + regPort}, AllowAddresses: append(canaryOnly, loopback...), Resolver: hosts{"localhost": {ap.Addr()}}},
					run:  get("https://localhost:" + port + "/v2/"),
					want: &NotAllowedError{Host: "localhost:" + port, Reason: reasonNotListed},
				},
				"redirect to an address": {
					opts: Options{Allow: []string{reg.host}, AllowAddresses: loopback},
					run:  resolve(reg.host + "/redirect-address/app:v1"),
					want: &NotAllowedError{Host: target, Reason: reasonNotListed},
				},
				"redirect to a name": {
					opts: Options{Allow: []string{reg.host}, AllowAddresses: loopback, Resolver: byName},
					run:  resolve(reg.host + "/redirect-name/app:v1"),
					want: &NotAllowedError{Host: "canary.test:" + port, Reason: reasonNotListed},
				},
				"token realm at an address": {
					opts: Options{Allow: []string{realmAddress}, AllowAddresses: loopback},
					run:  resolve(realmAddress + "/app:v1"),
					want: &NotAllowedError{Host: target, Reason: reasonNotListed},
				},
				"token realm at a name": {
					opts: Options{Allow: []string{realmName}, AllowAddresses: loopback, Resolver: byName},
					run:  resolve(realmName + "/app:v1"),
					want: &NotAllowedError{Host: "canary.test:" + port, Reason: reasonNotListed},
				},
				"allowed name resolving to a refused address": {
					opts: Options{Allow: []string{"canary.test:" + port}, AllowAddresses: loopback, Resolver: byName},
					run:  resolve("canary.test:" + port + "/app:v1"),
					want: &NotAllowedError{Host: ap.Addr().String(), Reason: "loopback address"},
				},
				"plain HTTP": {
					opts: Options{Allow: []string{target}, AllowAddresses: canaryOnly},
					run:  get("http://" + target + "/v2/"),
					want: &NotAllowedError{Host: target, Reason: "plain HTTP not allowed for this registry"},
				},
			}
			for name, tc := range tests {
				t.Run(name, func(t *testing.T) {
					c := newTestClient(t, reg.srv, tc.opts)
					err := tc.run(t.Context(), c)
					var got *NotAllowedError
					if !errors.As(err, &got) {
						t.Fatalf("error = %v, want a *NotAllowedError", err)
					}
					if diff := cmp.Diff(tc.want, got); diff != "" {
						t.Errorf("refusal (-want +got):\n%s", diff)
					}
					if !strings.Contains(err.Error(), "registry not allowed") {
						t.Errorf("error %q does not say %q", err, "registry not allowed")
					}
					if n := cn.connections(t); n != 0 {
						t.Errorf("canary accepted %d connections, want 0", n)
					}
				})
			}
		})
	}
}

func TestManifestLimit(t *testing.T) {
	const size = 5 << 20
	tests := map[string]struct {
		limit   int64
		chunked bool // no Content-Length: the limit is found while reading
		want    string
	}{
		"default, Content-Length": {want: "manifest exceeds the limit of 4194304 bytes"},
		"default, chunked":        {chunked: true, want: "manifest exceeds the limit of 4194304 bytes"},
		"configured, chunked":     {limit: 1000, chunked: true, want: "manifest exceeds the limit of 1000 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			huge := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !isManifestPath(r.URL.Path) {
						next.ServeHTTP(w, r)
						return
					}
					// No digest on HEAD, so Resolve has to GET the manifest.
					w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
					if r.Method == http.MethodHead || !tc.chunked {
						w.Header().Set("Content-Length", strconv.Itoa(size))
					}
					if r.Method == http.MethodHead {
						return
					}
					chunk := []byte(strings.Repeat(" ", 64<<10))
					for written := 0; written < size; written += len(chunk) {
						if _, err := w.Write(chunk); err != nil {
							return // the client gave up, as it should
						}
						if tc.chunked {
							w.(http.Flusher).Flush()
						}
					}
				})
			}
			reg := newTestRegistry(t, huge)
			c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback, MaxManifestBytes: tc.limit})

			_, err := c.Resolve(t.Context(), mustTag(t, reg.host+"/team/app:v1"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resolve error = %v, want it to say %q", err, tc.want)
			}
			wantRequests := []string{"HEAD /v2/team/app/manifests/v1", "GET /v2/team/app/manifests/v1"}
			if diff := cmp.Diff(wantRequests, reg.takeManifests()); diff != "" {
				t.Errorf("manifest requests (-want +got):\n%s", diff)
			}
		})
	}
}

// basicAuth lets through only requests carrying user and password.
func basicAuth(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// pullSecret is a kubernetes.io/dockerconfigjson secret for one registry.
func pullSecret(namespace, name, registry, user, password string) *corev1.Secret {
	config := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, registry, user, password)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)},
	}
}

func TestResolveWithPullSecret(t *testing.T) {
	const password = "s3cret-pw"
	reg := newTestRegistry(t, basicAuth("alice", password))
	want := reg.push(t, "team/app:v1", &authn.Basic{Username: "alice", Password: password})
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})
	keychains := NewKeychains(fake.NewClientset(
		pullSecret("team-a", "pull", reg.host, "alice", password),
		pullSecret("team-a", "wrong", reg.host, "alice", "wrong-pw"),
	))
	tag := mustTag(t, reg.host+"/team/app:v1")

	t.Run("pull secret", func(t *testing.T) {
		kc, err := keychains.ForPod(t.Context(), "team-a", "", []string{"pull"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Resolve(t.Context(), tag, kc)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tag.String()+"@"+want.String(), got.String()); diff != "" {
			t.Errorf("Resolve (-want +got):\n%s", diff)
		}
	})

	secrets := []string{password, "wrong-pw",
		base64.StdEncoding.EncodeToString([]byte("alice:" + password)),
		base64.StdEncoding.EncodeToString([]byte("alice:wrong-pw"))}
	for name, pullSecrets := range map[string][]string{"anonymous": nil, "wrong password": {"wrong"}} {
		t.Run(name, func(t *testing.T) {
			kc, err := keychains.ForPod(t.Context(), "team-a", "", pullSecrets)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Resolve(t.Context(), tag, kc)
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("Resolve error = %v, want 401 Unauthorized", err)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Resolve error %q contains the credential %q", err, s)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := newTestRegistry(t, nil)
	want := reg.push(t, "team/app:v1", authn.Anonymous)
	_, port, err := net.SplitHostPort(reg.host)
	if err != nil {
		t.Fatal(err)
	}
	// A name, not 127.0.0.1: for loopback addresses ggcr also races a plain-HTTP
	// ping, which the guard refuses and would count depending on timing.
	host := "registry.example.com:" + port
	metrics := prometheus.NewPedanticRegistry()
	o := Options{
		Allow:          []string{host},
		AllowAddresses: loopback,
		Resolver:       hosts{"registry.example.com": {netip.MustParseAddr("127.0.0.1")}},
		Metrics:        metrics,
	}
	c := newTestClient(t, reg.srv, o)
	newTestClient(t, reg.srv, o) // a second Client shares the counter

	got, err := c.Resolve(t.Context(), mustTag(t, host+"/team/app:v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.DigestStr() != want.String() {
		t.Errorf("Resolve = %s, want digest %s", got, want)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://metadata.example.com/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transport().RoundTrip(req); err == nil {
		t.Fatal("request to a registry not on the allow-list succeeded")
	}

	families, err := metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "bulwark_registry_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["registry"]+" "+labels["code"]] = m.GetCounter().GetValue()
		}
	}
	wantCounts := map[string]float64{
		host + " 200":   2, // ping, HEAD
		"other refused": 1,
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("bulwark_registry_requests_total (-want +got):\n%s", diff)
	}
}
