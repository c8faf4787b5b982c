package cosign_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
)

// TestMain makes any use of http.DefaultTransport (what a Fulcio, Rekor or
// TUF client would reach the network with) fail the run: every registry
// request of these tests goes through a testRegistry's own transport.
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

// testRegistry is an in-process OCI registry over TLS that records every
// request it serves, and the transport that reaches it. The transport refuses
// any other host: the test fails if a Verify call tries to reach Fulcio, Rekor,
// a TUF mirror or anything else.
type testRegistry struct {
	t    *testing.T
	srv  *httptest.Server
	host string
	rt   http.RoundTripper
	// status, when set, is answered to every request instead of serving it.
	status int

	mu       sync.Mutex
	requests []string // "GET /v2/..."
}

// statusHang makes the registry hold every request until the client gives up.
const statusHang = -1

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{t: t}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		status := r.status
		r.mu.Unlock()
		if status == statusHang {
			<-req.Context().Done()
			return
		}
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	u, err := url.Parse(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.host = u.Host
	r.rt = onlyHost{host: r.host, rt: r.srv.Client().Transport, t: t}
	return r
}

// onlyHost is a transport that reaches one host and fails the test on any other.
type onlyHost struct {
	host string
	rt   http.RoundTripper
	t    *testing.T
}

func (o onlyHost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != o.host {
		o.t.Errorf("request outside the test registry: %s %s", req.Method, req.URL)
		return nil, fmt.Errorf("test transport: %s is not the test registry", req.URL.Host)
	}
	return o.rt.RoundTrip(req)
}

// remoteOptions is what pkg/registry's Client.RemoteOptions provides in
// production: context, transport, keychain, and a (here fast) retry policy.
func (r *testRegistry) remoteOptions(ctx context.Context, kc authn.Keychain) []remote.Option {
	return remoteOptionsWith(r.rt)(ctx, kc)
}

func remoteOptionsWith(rt http.RoundTripper) func(context.Context, authn.Keychain) []remote.Option {
	return func(ctx context.Context, kc authn.Keychain) []remote.Option {
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

// served returns the requests served since the last call.
func (r *testRegistry) served() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.requests
	r.requests = nil
	return got
}

func (r *testRegistry) setStatus(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = code
}

// push writes a random image to repo, by digest, and returns its digest.
func (r *testRegistry) push(repo string) name.Digest {
	r.t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	d, err := name.NewDigest(r.host + "/" + repo + "@" + h.String())
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(d, img, r.remoteOptions(r.t.Context(), nil)...); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// attach signs a cosign payload for digest `claimed` with signer and attaches
// the signature to image `to`, as `cosign sign` does.
func (r *testRegistry) attach(to, claimed name.Digest, signer signature.Signer, opts ...static.Option) {
	r.t.Helper()
	p, err := payload.Cosign{Image: claimed}.MarshalJSON()
	if err != nil {
		r.t.Fatal(err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		r.t.Fatal(err)
	}
	r.attachRaw(to, p, raw, opts...)
}

func (r *testRegistry) attachRaw(to name.Digest, p, raw []byte, opts ...static.Option) {
	r.t.Helper()
	sig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	ro := []ociremote.Option{ociremote.WithRemoteOptions(r.remoteOptions(r.t.Context(), nil)...)}
	se, err := ociremote.SignedEntity(to, ro...)
	if err != nil {
		r.t.Fatal(err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(to.Repository, se, ro...); err != nil {
		r.t.Fatal(err)
	}
}

// testKey is a cosign key pair, generated without scrypt.
type testKey struct {
	signature.SignerVerifier
	pem string // public key
}

func newKey(t *testing.T) testKey {
	t.Helper()
	priv, err := cosign.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{SignerVerifier: sv, pem: string(pub)}
}

// testCA stands in for Fulcio: a self-signed root and an intermediate that
// issues short-lived code-signing certificates carrying the OIDC issuer.
type testCA struct {
	t            *testing.T
	root, inter  *x509.Certificate
	interKey     *ecdsa.PrivateKey
	rootPEM      []byte
	interPEM     []byte
	serialNumber int64
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	rootKey := newECDSA(t)
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn + " root"},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	root := createCert(t, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	interKey := newECDSA(t)
	interTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: cn + " intermediate"},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	inter := createCert(t, interTmpl, root, &interKey.PublicKey, rootKey)
	return &testCA{
		t: t, root: root, inter: inter, interKey: interKey,
		rootPEM:      pemCert(root),
		interPEM:     pemCert(inter),
		serialNumber: 10,
	}
}

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// leaf issues a certificate for subject (an email, or a URI when it has a
// scheme) from OIDC issuer, valid from notBefore for validity, as Fulcio does:
// both the legacy raw-string issuer extension and the DER UTF8String one.
func (ca *testCA) leaf(issuer, subject string, notBefore time.Time, validity time.Duration) (*ecdsa.PrivateKey, []byte) {
	ca.t.Helper()
	key := newECDSA(ca.t)
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.serialNumber++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serialNumber),
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte(issuer)},
			{Id: oidIssuerV2, Value: v2},
		},
	}
	if u, err := url.Parse(subject); err == nil && u.Scheme != "" {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	cert := createCert(ca.t, tmpl, ca.inter, &key.PublicKey, ca.interKey)
	return key, pemCert(cert)
}

// chain is the certificate chain cosign attaches next to the leaf.
func (ca *testCA) chain() []byte {
	return append(append([]byte{}, ca.interPEM...), ca.rootPEM...)
}

// signKeyless signs claimed's payload with a fresh leaf of ca and attaches it
// to `to` with its certificate chain, and a Rekor bundle if log is set.
func (r *testRegistry) signKeyless(to name.Digest, ca *testCA, issuer, subject string, notBefore time.Time, log *testLog) {
	r.t.Helper()
	key, certPEM := ca.leaf(issuer, subject, notBefore, 10*time.Minute)
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := payload.Cosign{Image: to}.MarshalJSON()
	if err != nil {
		r.t.Fatal(err)
	}
	raw, err := sv.SignMessage(bytes.NewReader(p))
	if err != nil {
		r.t.Fatal(err)
	}
	opts := []static.Option{static.WithCertChain(certPEM, ca.chain())}
	if log != nil {
		opts = append(opts, static.WithBundle(log.bundle(p, raw, certPEM, notBefore.Add(time.Minute))))
	}
	r.attachRaw(to, p, raw, opts...)
}

// testLog stands in for Rekor: its key signs the SignedEntryTimestamp of a
// hashedrekord entry, which cosign verifies offline.
type testLog struct {
	t   *testing.T
	key *ecdsa.PrivateKey
}

func newLog(t *testing.T) *testLog { return &testLog{t: t, key: newECDSA(t)} }

func (l *testLog) publicPEM() []byte {
	b, err := cryptoutils.MarshalPublicKeyToPEM(&l.key.PublicKey)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// bundle is what Rekor returns for an upload of (payload, sig, cert), as if
// integrated at `at`.
func (l *testLog) bundle(p, sig, certPEM []byte, at time.Time) *bundle.RekorBundle {
	l.t.Helper()
	sum := sha256.Sum256(p)
	entry := map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{
				"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])},
			},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(sig),
				"publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString(certPEM)},
			},
		},
	}
	body, err := json.Marshal(entry)
	if err != nil {
		l.t.Fatal(err)
	}
	logID, err := cosign.GetTransparencyLogID(&l.key.PublicKey)
	if err != nil {
		l.t.Fatal(err)
	}
	rp := bundle.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: at.Unix(),
		LogIndex:       42,
		LogID:          logID,
	}
	// The SET is the log's signature over the canonical JSON of the payload.
	js, err := json.Marshal(rp)
	if err != nil {
		l.t.Fatal(err)
	}
	canonical, err := jsoncanonicalizer.Transform(js)
	if err != nil {
		l.t.Fatal(err)
	}
	h := sha256.Sum256(canonical)
	set, err := ecdsa.SignASN1(rand.Reader, l.key, h[:])
	if err != nil {
		l.t.Fatal(err)
	}
	return &bundle.RekorBundle{SignedEntryTimestamp: set, Payload: rp}
}

func newECDSA(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
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
