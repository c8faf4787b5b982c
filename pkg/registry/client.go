package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultTimeout bounds each registry request, and each Resolve, when
	// Options.Timeout is zero.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxManifestBytes bounds every manifest body when
	// Options.MaxManifestBytes is zero.
	DefaultMaxManifestBytes = 4 << 20
)

// Options configure a Client. The zero value allows no registry at all.
type Options struct {
	// Allow lists the registries bulwark may contact, as "host" or "host:port"
	// (exact, case-insensitive; "host" without port matches only the default port
	// 443). "index.docker.io" and "docker.io" are the same registry. Token realms
	// and redirect targets (blob storage) are held to the same list, so they must be
	// listed too, e.g. auth.docker.io for Docker Hub. Empty means no registry at all.
	Allow []string
	// AllowAddresses are the non-public destinations (loopback, link-local,
	// private, unique-local, CGNAT, unspecified…, see CheckAddress) that may
	// nevertheless be dialled, e.g. 127.0.0.1/32 for a registry on the node.
	// Default none.
	AllowAddresses []netip.Prefix
	// Insecure lists registries ("host:port", each also on Allow) that may be
	// spoken to over plain HTTP. ggcr tries plain HTTP only for references parsed
	// with name.Insecure (Resolve does that itself for these registries). Default
	// none: HTTPS only.
	Insecure []string
	// RootCAs verifies registries' TLS certificates; nil uses the system pool.
	RootCAs *x509.CertPool
	// Timeout bounds each registry request: connecting, the TLS handshake, waiting
	// for the response headers and reading a bounded body (not an unbounded blob
	// body, which the caller's context bounds). It also bounds each Resolve as a
	// whole. DefaultTimeout when zero. The caller's context bounds everything
	// further.
	Timeout time.Duration
	// MaxManifestBytes bounds every manifest body read, and every other response
	// that is not a blob (ping, token, error, listing): DefaultMaxManifestBytes when
	// zero. MaxBlobBytes bounds blob bodies read through the client, including
	// after a redirect: 0 is unbounded (the signature verifier sets 4 MiB).
	MaxManifestBytes, MaxBlobBytes int64
	// Metrics, if set, counts requests: bulwark_registry_requests_total{registry,
	// code}, where code is the HTTP status, or "refused" (by this guard, before
	// sending) or "error" (no response), and registry is the allow-listed host
	// ("host" for port 443, else "host:port"). Refused hosts are counted under
	// registry="other", so the label set is bounded. Nil: not counted.
	Metrics prometheus.Registerer
	// Resolver, if set, resolves host names; nil uses net.DefaultResolver. Tests
	// use it to map a name to 127.0.0.1.
	Resolver Resolver
	// Mirrors maps a registry ("host" or "host:port", as in Allow) to a mirror
	// that serves the same repositories under the same paths, signatures
	// included. Every request for the registry goes to the mirror instead; the
	// mirror must be on Allow, the registry itself need not be. Default none.
	Mirrors map[string]string
}

// Resolver resolves a host name to IP addresses; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Client is bulwark's only path to OCI registries. Every request it makes, and every
// request made with its RemoteOptions or Transport, is checked by the egress guard:
// the registry must be on the allow-list before any I/O, and the address connected
// to must be public or explicitly allowed. A Client is safe for concurrent use.
type Client struct {
	allowed  map[string]string // canonical host:port → metric label
	mirrors  map[string]string // canonical host:port → mirror's canonical host:port
	insecure map[string]bool
	timeout  time.Duration
	guard    *guard
	pullers  pullers
}

// New validates o and returns a Client.
func New(o Options) (*Client, error) {
	c := &Client{
		allowed:  make(map[string]string, len(o.Allow)),
		insecure: make(map[string]bool, len(o.Insecure)),
		timeout:  o.Timeout,
	}
	for _, a := range o.Allow {
		h, err := canonicalHost(a)
		if err != nil {
			return nil, fmt.Errorf("registry allow-list entry %q: %w", redactUserinfo(a), err)
		}
		c.allowed[h] = hostLabel(h)
	}
	c.mirrors = make(map[string]string, len(o.Mirrors))
	for from, to := range o.Mirrors {
		f, err := canonicalHost(from)
		if err != nil {
			return nil, fmt.Errorf("mirrored registry %q: %w", redactUserinfo(from), err)
		}
		t, err := canonicalHost(to)
		if err != nil {
			return nil, fmt.Errorf("mirror %q: %w", redactUserinfo(to), err)
		}
		if _, ok := c.allowed[t]; !ok {
			return nil, fmt.Errorf("mirror %q of %q: not on the registry allow-list", to, from)
		}
		c.mirrors[f] = t
	}
	for _, s := range o.Insecure {
		h, err := canonicalHost(s)
		if err != nil {
			return nil, fmt.Errorf("insecure registry %q: %w", redactUserinfo(s), err)
		}
		if _, ok := c.allowed[h]; !ok {
			return nil, fmt.Errorf("insecure registry %q: not on the registry allow-list", s)
		}
		c.insecure[h] = true
	}
	addresses := make([]netip.Prefix, 0, len(o.AllowAddresses))
	for _, p := range o.AllowAddresses {
		if !p.IsValid() {
			return nil, fmt.Errorf("allowed address range %q: not a valid prefix", p)
		}
		addresses = append(addresses, unmapPrefix(p.Masked()))
	}
	switch {
	case o.Timeout < 0:
		return nil, fmt.Errorf("registry timeout %s: must not be negative", o.Timeout)
	case o.Timeout == 0:
		c.timeout = DefaultTimeout
	}
	switch {
	case o.MaxManifestBytes < 0:
		return nil, fmt.Errorf("manifest size limit %d: must not be negative", o.MaxManifestBytes)
	case o.MaxManifestBytes == 0:
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if o.MaxBlobBytes < 0 {
		return nil, fmt.Errorf("blob size limit %d: must not be negative", o.MaxBlobBytes)
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	var requests *prometheus.CounterVec
	if o.Metrics != nil {
		var err error
		if requests, err = registerRequests(o.Metrics); err != nil {
			return nil, err
		}
	}

	g := &guard{
		allowed:   c.allowed,
		mirrors:   c.mirrors,
		insecure:  c.insecure,
		addresses: addresses,
		timeout:   c.timeout,
		maxBodies: o.MaxManifestBytes,
		maxBlobs:  o.MaxBlobBytes,
		resolver:  o.Resolver,
		requests:  requests,
	}
	g.dialer = &net.Dialer{Timeout: c.timeout, Control: checkDialAddress(addresses)}
	g.inner = g.newTransport(o.RootCAs)
	c.guard = g
	return c, nil
}

// registerRequests registers bulwark_registry_requests_total, or returns the one
// another Client registered already.
func registerRequests(r prometheus.Registerer) (*prometheus.CounterVec, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulwark_registry_requests_total",
		Help: "Requests to OCI registries by allow-listed registry and HTTP status code, or refused / error.",
	}, []string{"registry", "code"})
	if err := r.Register(requests); err != nil {
		if already, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("register registry metrics: %w", err)
	}
	return requests, nil
}

// CheckReference decides, before any I/O, whether ref's registry is on the
// allow-list: a *NotAllowedError if it is not.
func (c *Client) CheckReference(ref name.Reference) error {
	_, err := c.registry(ref)
	return err
}

// registry returns the canonical host:port of ref's registry, if it is allowed.
func (c *Client) registry(ref name.Reference) (string, error) {
	host := ref.Context().RegistryStr()
	h, err := canonicalHost(host)
	if err != nil {
		return "", &NotAllowedError{Host: host, Reason: "not a host or host:port"}
	}
	if m, ok := c.mirrors[h]; ok {
		h = m
	}
	if _, ok := c.allowed[h]; !ok {
		return "", &NotAllowedError{Host: host, Reason: reasonNotListed}
	}
	return h, nil
}

// RemoteOptions returns the options for ggcr's remote package that send every
// request through the guarded transport, authenticate with kc (anonymously when kc
// is nil) and never retry: the admission budget has no room for retries. ctx
// bounds the whole operation, including bodies read later (layers of a
// remote.Image); each request is further bounded as Options.Timeout says. Callers
// should check references with CheckReference first, for a clear error; the
// transport refuses them anyway.
func (c *Client) RemoteOptions(ctx context.Context, kc authn.Keychain) []remote.Option {
	return remoteOptions(ctx, kc, c.guard)
}

func remoteOptions(ctx context.Context, kc authn.Keychain, rt http.RoundTripper) []remote.Option {
	if kc == nil {
		kc = authn.NewMultiKeychain() // no keychain resolves anything: anonymous
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(kc),
		// One attempt. Steps must be 1, not 0: with 0 steps ggcr's retry loop never
		// sends the request at all.
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
}

// Transport returns the guarded transport that RemoteOptions uses, for callers that
// speak to registries through another client (the scanner). It refuses, with a
// *NotAllowedError and without I/O, requests to registries not on the allow-list
// and plain-HTTP requests to registries not listed as insecure.
func (c *Client) Transport() http.RoundTripper {
	return c.guard
}

// DownloadTransport is Transport for a large download the operator configured
// (the vulnerability database): the same egress rules — allow-list, address
// checks, redirects checked hop by hop — with hosts added to the allow-list, and
// no size or time bound on the body of its own: the caller bounds the download
// (grype.DBOptions.MaxArchiveBytes, its http.Client's timeout).
func (c *Client) DownloadTransport(hosts ...string) (http.RoundTripper, error) {
	g := *c.guard
	g.allowed = maps.Clone(c.guard.allowed)
	for _, h := range hosts {
		canonical, err := canonicalHost(h)
		if err != nil {
			return nil, fmt.Errorf("download host %q: %w", redactUserinfo(h), err)
		}
		if _, ok := g.allowed[canonical]; !ok {
			g.allowed[canonical] = hostLabel(canonical)
		}
	}
	g.maxBodies, g.maxBlobs = 0, 0
	return &g, nil
}

// Resolve returns the digest tag points to, as "repo:tag@sha256:…" so the tag stays
// readable. It sends one manifest request, a HEAD, and reads the digest from the
// Docker-Content-Digest header; only if the registry answers the HEAD without a
// usable digest does it fall back to one bounded GET and hash the manifest. The
// registry is checked with CheckReference first, and the whole call is bounded by
// Options.Timeout. Only sha256 digests are returned. kc nil means anonymous.
func (c *Client) Resolve(ctx context.Context, tag name.Tag, kc authn.Keychain) (name.Digest, error) {
	host, err := c.registry(tag)
	if err != nil {
		return name.Digest{}, err
	}
	var opts []name.Option
	if c.insecure[host] {
		// ggcr tries plain HTTP only for registries it was told are insecure.
		opts = append(opts, name.Insecure)
		insecure, err := name.NewTag(tag.String(), opts...)
		if err != nil {
			return name.Digest{}, fmt.Errorf("resolve %s: %w", tag, err)
		}
		tag = insecure
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	head := &headWatcher{inner: c.guard}
	puller, err := remote.NewPuller(remoteOptions(ctx, kc, head)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolve %s: %w", tag, err)
	}
	var digest v1.Hash
	desc, err := puller.Head(ctx, tag)
	switch {
	case err == nil:
		digest = desc.Digest
	case head.answered.Load():
		// The registry answered 200 but ggcr found no usable digest (or
		// Content-Type, Content-Length) in the headers: hash the manifest instead.
		got, err := puller.Get(ctx, tag)
		if err != nil {
			return name.Digest{}, fmt.Errorf("resolve %s: %w", tag, err)
		}
		digest = got.Digest
	default:
		return name.Digest{}, fmt.Errorf("resolve %s: %w", tag, err)
	}
	if digest.Algorithm != "sha256" {
		return name.Digest{}, fmt.Errorf("resolve %s: registry returned a %s digest, want sha256", tag, digest.Algorithm)
	}
	d, err := name.NewDigest(tag.String()+"@"+digest.String(), opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolve %s: %w", tag, err)
	}
	return d, nil
}

// headWatcher records whether a registry answered a manifest HEAD with 200, which
// tells a HEAD response without usable headers from a failed request.
type headWatcher struct {
	inner    http.RoundTripper
	answered atomic.Bool
}

func (h *headWatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.inner.RoundTrip(req)
	if err == nil && req.Method == http.MethodHead && resp.StatusCode == http.StatusOK &&
		path.Base(path.Dir(req.URL.Path)) == "manifests" {
		h.answered.Store(true)
	}
	return resp, err
}
