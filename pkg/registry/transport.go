package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxResponseHeaderBytes bounds the headers of every registry response (net/http
// allows 1 MiB by default; registries send a few hundred bytes).
const maxResponseHeaderBytes = 64 << 10

// guard is the egress guard: the only http.RoundTripper through which bulwark talks
// to registries. Every request, including ggcr's ping, the token request to a
// bearer realm and each redirect hop, passes through RoundTrip, and every
// connection through dial.
type guard struct {
	allowed   map[string]string // canonical host:port → metric label
	mirrors   map[string]string // canonical host:port → mirror's
	insecure  map[string]bool   // canonical host:port that may use plain HTTP
	addresses []netip.Prefix    // non-public destinations that may be dialled
	timeout   time.Duration
	maxBodies int64 // manifests and every other non-blob body
	maxBlobs  int64 // 0: unbounded
	resolver  Resolver
	dialer    *net.Dialer
	inner     *http.Transport
	requests  *prometheus.CounterVec // nil: not counted
}

// otherRegistry is the metric label of every destination not on the allow-list, so
// the label set stays bounded by the configuration.
const otherRegistry = "other"

// newTransport returns the http.Transport under the guard: no proxy, the guard's
// dialer, TLS 1.2 or later, and every wait bounded by timeout.
func (g *guard) newTransport(rootCAs *x509.CertPool) *http.Transport {
	return &http.Transport{
		// Never a proxy from the environment: the proxy, not this guard, would
		// decide where requests go.
		Proxy:                  nil,
		DialContext:            g.dial,
		TLSClientConfig:        &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    g.timeout,
		ResponseHeaderTimeout:  g.timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    8,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// RoundTrip refuses, without any I/O, a request whose destination is not allowed,
// then bounds the request in time and its response body in size, and refuses a
// redirect or bearer challenge that points where the client may not go.
func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if h, err := canonicalHost(req.URL.Host); err == nil {
		if m, ok := g.mirrors[h]; ok {
			// The mirror serves the same paths; it is checked like any host.
			req = req.Clone(req.Context())
			req.URL.Host, req.Host = m, ""
		}
	}
	label, err := g.checkURL(req.URL)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		g.count(label, "refused")
		return nil, err
	}

	limit, what := g.bodyLimit(req)
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if limit > 0 {
		// A bounded body is read within the timeout too. An unbounded blob body is
		// bounded by the caller's context only: it may be large and slow; the
		// dialer, TLS and response header timeouts still bound the rest.
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
	}
	resp, err := g.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		if _, refused := errors.AsType[*NotAllowedError](err); refused {
			g.count(label, "refused")
		} else {
			g.count(label, "error")
		}
		return nil, err
	}
	g.count(label, strconv.Itoa(resp.StatusCode))

	if err := g.checkResponse(req, resp); err != nil {
		resp.Body.Close()
		cancel()
		g.count(otherRegistry, "refused")
		return nil, err
	}
	if limit > 0 && req.Method != http.MethodHead && resp.ContentLength > limit {
		resp.Body.Close()
		cancel()
		return nil, tooLarge(what, limit)
	}
	resp.Body = &guardedBody{rc: resp.Body, cancel: cancel, left: limit, limit: limit, what: what}
	return resp, nil
}

// checkURL decides whether a request to u may be sent, returning the metric label of
// its registry ("other" if it is not allowed).
func (g *guard) checkURL(u *url.URL) (string, error) {
	canonical, err := canonicalHost(urlHostPort(u))
	if err != nil {
		return otherRegistry, &NotAllowedError{Host: u.Host, Reason: "not a host or host:port"}
	}
	label, ok := g.allowed[canonical]
	switch {
	case !ok:
		return otherRegistry, &NotAllowedError{Host: u.Host, Reason: reasonNotListed}
	case u.Scheme == "https":
		return label, nil
	case u.Scheme == "http" && g.insecure[canonical]:
		return label, nil
	case u.Scheme == "http":
		return label, &NotAllowedError{Host: u.Host, Reason: reasonPlainHTTP}
	default:
		return label, &NotAllowedError{Host: u.Host, Reason: fmt.Sprintf("scheme %q not allowed", u.Scheme)}
	}
}

// checkResponse holds where a response sends the client next, a redirect's
// Location or a bearer challenge's token realm, to the same rules as the request,
// before the client acts on it. Each hop is checked again when it is sent; checking
// here too returns the same *NotAllowedError whichever client follows the response,
// where ggcr's own redirect and realm checks (private IP literals only) would
// otherwise answer first with errors of their own.
func (g *guard) checkResponse(req *http.Request, resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			return nil // the client will not follow it
		}
		if _, err := g.checkURL(loc); err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
	case http.StatusUnauthorized:
		for _, realm := range bearerRealms(resp.Header) {
			u, err := url.Parse(realm)
			if err != nil || !u.IsAbs() {
				continue // not a URL ggcr could request: it fails on its own
			}
			if _, err := g.checkURL(u); err != nil {
				return fmt.Errorf("token realm: %w", err)
			}
		}
	}
	return nil
}

// bearerRealms returns the realm parameter of every Bearer challenge in the
// WWW-Authenticate headers. Basic realms are labels, not URLs, and are skipped.
func bearerRealms(h http.Header) []string {
	var realms []string
	for _, v := range h.Values("WWW-Authenticate") {
		lower := strings.ToLower(v)
		for i := 0; ; {
			j := strings.Index(lower[i:], "bearer ")
			if j < 0 {
				break
			}
			start := i + j + len("bearer ")
			if r, ok := realmParam(v[start:]); ok {
				realms = append(realms, r)
			}
			i = start
		}
	}
	return realms
}

// realmParam returns the value of the first realm parameter in a challenge's
// parameter list, quoted or not.
func realmParam(params string) (string, bool) {
	lower := strings.ToLower(params)
	for i := 0; ; {
		j := strings.Index(lower[i:], "realm")
		if j < 0 {
			return "", false
		}
		k := i + j
		i = k + len("realm")
		if k > 0 && !strings.ContainsRune(" ,\t", rune(lower[k-1])) {
			continue // e.g. "xrealm="
		}
		rest := strings.TrimLeft(params[i:], " \t")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if value, ok := strings.CutPrefix(rest, `"`); ok {
			end := strings.IndexByte(value, '"')
			if end < 0 {
				return "", false
			}
			return value[:end], true
		}
		end := strings.IndexAny(rest, " ,\t")
		if end < 0 {
			end = len(rest)
		}
		return rest[:end], true
	}
}

// bodyLimit returns the size bound of the response to req and what the body is.
// A redirect hop (to blob storage, say) is bounded like the request that was
// redirected.
func (g *guard) bodyLimit(req *http.Request) (int64, string) {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	switch path.Base(path.Dir(first.URL.Path)) {
	case "manifests":
		return g.maxBodies, "manifest"
	case "blobs":
		return g.maxBlobs, "blob"
	default:
		// Ping, token, error and listing responses are small too.
		return g.maxBodies, "registry response"
	}
}

// dial connects to addr after resolving it with the configured resolver, trying only
// addresses CheckAddress allows. The dialer's Control function checks the
// connected address once more.
func (g *guard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = g.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	var errs dialErrors
	for _, ip := range ips {
		if err := CheckAddress(ip, g.addresses); err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return nil, errs
}

// count adds one to the request counter, if metrics are enabled.
func (g *guard) count(label, code string) {
	if g.requests != nil {
		g.requests.WithLabelValues(label, code).Inc()
	}
}

// dialErrors are the failures of each address of one host, on one line.
type dialErrors []error

func (e dialErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e dialErrors) Unwrap() []error { return e }

// guardedBody bounds a response body in size (left < 0 after the bound was
// crossed; limit 0 means unbounded) and releases the request's timeout on Close.
type guardedBody struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	left   int64
	limit  int64
	what   string
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.limit == 0 {
		return b.rc.Read(p)
	}
	if b.left < 0 {
		return 0, tooLarge(b.what, b.limit)
	}
	// Read one byte past the bound, to tell "exactly at" from "over".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, tooLarge(b.what, b.limit)
	}
	b.left -= int64(n)
	return n, err
}

func (b *guardedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// tooLarge is the error for a body over its bound.
func tooLarge(what string, limit int64) error {
	return fmt.Errorf("%s exceeds the limit of %d bytes", what, limit)
}
