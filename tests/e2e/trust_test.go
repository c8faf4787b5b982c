package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// trustLabel puts a namespace under the second webhook, which runs a trust
// policy: signatures required, tags resolved.
var trustLabel = map[string]string{"bulwark.dev/e2e-trust": "true"}

const (
	keylessIssuer  = "https://issuer.e2e.test"
	keylessSubject = "ci@bulwark.e2e.test"
)

// trustEnv is what the trust tests share: registries, keys, and the webhook.
type trustEnv struct {
	reg, private, evil *oci.Registry
	release, other     *oci.Key
	fulcio             *oci.Fulcio
	canaries           []*canary
}

// TestTrust runs bulwark with a trust policy (signature check on, pinning
// resolve) as a second webhook next to the default one, against registries
// served in this process over TLS, with signatures made by the cosign libraries.
func TestTrust(t *testing.T) {
	te := &trustEnv{
		reg: oci.NewRegistry(t), private: oci.NewRegistry(t), evil: oci.NewRegistry(t),
		release: oci.NewKey(t), other: oci.NewKey(t), fulcio: oci.NewFulcio(t),
	}
	te.private.RequireAuth("puller", "s3cret-pull-password")
	dir := t.TempDir()
	root := filepath.Join(dir, "fulcio-root.pem")
	if err := os.WriteFile(root, te.fulcio.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	release := verify.Authority{Name: "release", Key: &verify.Key{PEM: te.release.PublicPEM}}
	p := policy.Defaults()
	p.Checks.Digest.Pinning = policy.PinningResolve
	p.Checks.Signature.Enabled = true
	p.Checks.Signature.Rules = []policy.TrustRule{
		{Name: "team", Images: []string{te.reg.Host + "/team/**"}, Authorities: []verify.Authority{release}},
		{Name: "keyless", Images: []string{te.reg.Host + "/keyless/**"}, Authorities: []verify.Authority{{Name: "ci",
			Keyless: &verify.Keyless{Issuer: keylessIssuer, Subject: keylessSubject, TrustedRoot: root}}}},
		{Name: "attested", Images: []string{te.reg.Host + "/attested/**"}, Authorities: []verify.Authority{release}, Attestations: []string{oci.SLSAProvenanceV1}},
		{Name: "everything", Images: []string{"**"}, Authorities: []verify.Authority{release}},
	}
	p.Checks.BaseImage.Enabled = true
	p.Checks.BaseImage.Approved = []string{"gcr.io/distroless/**", ownBase}
	p.Registry.Allow = []string{te.reg.Host, te.private.Host, te.evil.Host}
	p.Registry.AllowAddresses = []string{"127.0.0.1"}
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	cas := x509.NewCertPool()
	for _, r := range []*oci.Registry{te.reg, te.private, te.evil} {
		cas.AppendCertsFromPEM(r.CAPEM)
	}
	w, err := startWebhook(t.Context(), filepath.Join(dir, "webhook"), env.cluster, &p, func(c *app.Config) {
		c.RegistryCAs = cas
		// The API server's client may dial connections it then never uses;
		// net/http's Shutdown waits 5 s before it treats those as idle.
		c.ShutdownTimeout = 10 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		if err := w.Stop(); err != nil {
			t.Errorf("trust webhook: %v (after %v)", err, time.Since(start))
		}
	})
	if err := env.cluster.InstallWebhookAs(t.Context(), webhookManifest, w.URL, env.cluster.CA.CertPEM, "bulwark-trust", trustLabel); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.cluster.UninstallWebhook(context.Background(), "bulwark-trust") })

	t.Run("key", te.testKey)
	t.Run("keyless", te.testKeyless)
	t.Run("attestations", te.testAttestations)
	t.Run("base image", te.testBaseImage)
	t.Run("resolve", te.testResolve)
	t.Run("later webhook changes the digest", te.testLaterMutation)
	t.Run("private registry", te.testPrivateRegistry)
	t.Run("registry down", te.testRegistryDown)
	t.Run("ssrf", te.testSSRF)
	t.Run("coalesced", te.testCoalesced)
	t.Run("own image", te.testOwnImage)
}

// trustNamespace creates a namespace under the trust webhook.
func trustNamespace(t *testing.T) string {
	t.Helper()
	return labeledNamespace(t, trustLabel)
}

// labeledNamespace creates a fresh namespace (as namespace does) carrying
// labels, which put it under a second webhook's configuration.
func labeledNamespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ns := namespace(t)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if _, err := env.admin.CoreV1().Namespaces().Patch(t.Context(), ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// admitConcurrently creates n pods running image in ns at once, as dry runs,
// and fails the test unless every one is admitted.
func admitConcurrently(t *testing.T, ns, image string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Go(func() {
			pod := podOf(fmt.Sprintf("burst-%d", i), ctr("app", image))
			_, errs[i] = env.admin.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("admission %d: %v", i, err)
		}
	}
}

func createPod(t *testing.T, ns, name string, image string, mutate ...func(*corev1.Pod)) (*corev1.Pod, error) {
	t.Helper()
	pod := podOf(name, ctr("app", image))
	for _, m := range mutate {
		m(pod)
	}
	return env.admin.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
}

func (te *trustEnv) testKey(t *testing.T) {
	ns := trustNamespace(t)
	signed := te.reg.Push(t, "team/app", "", oci.RandomImage(t))
	te.reg.Sign(t, signed, te.release)
	if _, err := createPod(t, ns, "signed", signed.String()); err != nil {
		t.Fatalf("signed by the trusted key: %v", err)
	}

	unsigned := te.reg.Push(t, "team/app", "", oci.RandomImage(t))
	_, err := createPod(t, ns, "unsigned", unsigned.String())
	wantDenied(t, err, "spec.containers[0].image: image is not signed (check signature)", unsigned.String(), `authorities "release"`)

	byOther := te.reg.Push(t, "team/app", "", oci.RandomImage(t))
	te.reg.Sign(t, byOther, te.other)
	_, err = createPod(t, ns, "other-key", byOther.String())
	wantDenied(t, err, "no valid signature from a trusted authority (check signature)", byOther.String())

	// The signature of `signed`, valid in itself, attached to another digest.
	copied := te.reg.Push(t, "team/app", "", oci.RandomImage(t))
	for _, s := range te.reg.Signatures(t, signed) {
		te.reg.Attach(t, copied, s)
	}
	_, err = createPod(t, ns, "copied", copied.String())
	wantDenied(t, err, "no valid signature from a trusted authority (check signature)", copied.String(), "another digest")
}

func (te *trustEnv) testKeyless(t *testing.T) {
	ns := trustNamespace(t)
	for name, tc := range map[string]struct {
		issuer, subject string
		fulcio          *oci.Fulcio
		admitted        bool
	}{
		"matching identity": {keylessIssuer, keylessSubject, te.fulcio, true},
		"other subject":     {keylessIssuer, "mallory@bulwark.e2e.test", te.fulcio, false},
		"other issuer":      {"https://other-issuer.e2e.test", keylessSubject, te.fulcio, false},
		"other CA":          {keylessIssuer, keylessSubject, oci.NewFulcio(t), false},
	} {
		t.Run(name, func(t *testing.T) {
			d := te.reg.Push(t, "keyless/app", "", oci.RandomImage(t))
			te.reg.SignKeyless(t, d, tc.fulcio, tc.issuer, tc.subject)
			_, err := createPod(t, ns, podName(name), d.String())
			if tc.admitted {
				if err != nil {
					t.Fatalf("want admitted: %v", err)
				}
				return
			}
			wantDenied(t, err, "no valid signature from a trusted authority (check signature)", `authorities "ci"`)
		})
	}
}

func (te *trustEnv) testAttestations(t *testing.T) {
	ns := trustNamespace(t)
	provenance := []byte(`{"buildDefinition":{"buildType":"https://bulwark.dev/e2e"},"runDetails":{"builder":{"id":"https://bulwark.dev/e2e-builder"}}}`)
	attested := te.reg.Push(t, "attested/app", "", oci.RandomImage(t))
	te.reg.Sign(t, attested, te.release)
	te.reg.Attest(t, attested, te.release, oci.SLSAProvenanceV1, provenance)
	if _, err := createPod(t, ns, "attested", attested.String()); err != nil {
		t.Fatalf("signed, with SLSA provenance by the trusted key: %v", err)
	}
	signedOnly := te.reg.Push(t, "attested/app", "", oci.RandomImage(t))
	te.reg.Sign(t, signedOnly, te.release)
	_, err := createPod(t, ns, "signed-only", signedOnly.String())
	wantDenied(t, err, "required attestation missing (check signature)", oci.SLSAProvenanceV1)

	byOther := te.reg.Push(t, "attested/app", "", oci.RandomImage(t))
	te.reg.Sign(t, byOther, te.release)
	te.reg.Attest(t, byOther, te.other, oci.SLSAProvenanceV1, provenance)
	_, err = createPod(t, ns, "attested-by-other", byOther.String())
	wantDenied(t, err, "required attestation missing (check signature)")
}

func (te *trustEnv) testBaseImage(t *testing.T) {
	ns := trustNamespace(t)
	digest := "sha256:" + strings.Repeat("0b", 32)
	for name, tc := range map[string]struct {
		base, baseDigest string
		denial           string
	}{
		"approved and pinned": {base: "gcr.io/distroless/static:nonroot", baseDigest: digest},
		"not pinned":          {base: "gcr.io/distroless/static:nonroot", denial: "base image not pinned by digest (check base-image)"},
		"not approved":        {base: "docker.io/library/ubuntu:24.04", baseDigest: digest, denial: "base image not approved (check base-image)"},
	} {
		t.Run(name, func(t *testing.T) {
			ann := map[string]string{verify.AnnotationBaseName: tc.base}
			if tc.baseDigest != "" {
				ann[verify.AnnotationBaseDigest] = tc.baseDigest
			}
			d := te.reg.Push(t, "team/based", "", mutate.Annotations(oci.RandomImage(t), ann).(v1.Image))
			te.reg.Sign(t, d, te.release)
			_, err := createPod(t, ns, podName(name), d.String())
			if tc.denial == "" {
				if err != nil {
					t.Fatalf("want admitted: %v", err)
				}
				return
			}
			wantDenied(t, err, tc.denial, tc.base)
		})
	}
}

func (te *trustEnv) testResolve(t *testing.T) {
	ns := trustNamespace(t)
	img := oci.RandomImage(t)
	d := te.reg.Push(t, "team/web", "1.0", img)
	te.reg.Sign(t, d, te.release)
	tag := te.reg.Host + "/team/web:1.0"
	pod, err := createPod(t, ns, "resolved", tag)
	if err != nil {
		t.Fatalf("create with a signed tag: %v", err)
	}
	if want := tag + "@" + d.DigestStr(); pod.Spec.Containers[0].Image != want {
		t.Errorf("stored image %q, want %q", pod.Spec.Containers[0].Image, want)
	}

	// A registry that flips the tag to an unsigned digest after answering the
	// first manifest request for it.
	signed := te.reg.Push(t, "team/flip", "1.0", oci.RandomImage(t))
	te.reg.Sign(t, signed, te.release)
	unsignedImg := oci.RandomImage(t)
	unsigned := te.reg.Push(t, "team/flip", "", unsignedImg)
	tagPath := "/v2/team/flip/manifests/1.0"
	var tagRequests atomic.Int32
	te.reg.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != tagPath {
			return false
		}
		if tagRequests.Add(1) == 1 {
			return false // the registry answers with the signed digest
		}
		serveManifest(t, w, r, unsignedImg)
		return true
	})
	pod, err = createPod(t, ns, "flip", te.reg.Host+"/team/flip:1.0")
	if err != nil {
		t.Fatalf("the tag resolved once to its signed digest, yet: %v", err)
	}
	if got, want := pod.Spec.Containers[0].Image, te.reg.Host+"/team/flip:1.0@"+signed.DigestStr(); got != want {
		t.Errorf("stored image %q, want %q", got, want)
	}
	if n := tagRequests.Load(); n != 1 {
		t.Errorf("%d requests for the tag in one admission, want exactly 1", n)
	}
	// The next request resolves the flipped tag: its unsigned digest is denied.
	_, err = createPod(t, ns, "flipped", te.reg.Host+"/team/flip:1.0")
	wantDenied(t, err, "image is not signed (check signature)", unsigned.DigestStr())
	if n := tagRequests.Load(); n != 2 {
		t.Errorf("%d requests for the tag after two admissions, want 2", n)
	}
}

// serveManifest answers a manifest request with img's manifest.
func serveManifest(t *testing.T, w http.ResponseWriter, r *http.Request, img v1.Image) {
	raw, err := img.RawManifest()
	if err != nil {
		t.Error(err)
	}
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	w.Header().Set("Content-Type", string(mt))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(raw)
	}
}

func (te *trustEnv) testLaterMutation(t *testing.T) {
	ns := trustNamespace(t)
	signed := te.reg.Push(t, "team/swap", "", oci.RandomImage(t))
	te.reg.Sign(t, signed, te.release)
	unsigned := te.reg.Push(t, "team/swap", "", oci.RandomImage(t))
	stopSwapper := startDigestSwapper(t, ns, unsigned.String())
	defer stopSwapper()
	_, err := createPod(t, ns, "swapped", signed.String())
	wantDenied(t, err, "image is not signed (check signature)", unsigned.String())
}

func (te *trustEnv) testPrivateRegistry(t *testing.T) {
	ns := trustNamespace(t)
	elsewhere := trustNamespace(t)
	d := te.private.Push(t, "team/private", "", oci.RandomImage(t))
	te.private.Sign(t, d, te.release)
	withPullSecret := func(p *corev1.Pod) { p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}} }

	// The right secret exists, but in another namespace: never read.
	createPullSecret(t, elsewhere, "pull", te.private.Host, "puller", "s3cret-pull-password")
	_, err := createPod(t, ns, "no-secret", d.String(), withPullSecret)
	wantDenied(t, err, "registry refused access (check signature)", te.private.Host)
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("denial shows the password: %v", err)
	}

	createPullSecret(t, ns, "pull", te.private.Host, "puller", "s3cret-pull-password")
	if _, err := createPod(t, ns, "with-secret", d.String(), withPullSecret); err != nil {
		t.Fatalf("with the pod's pull secret: %v", err)
	}
}

func createPullSecret(t *testing.T, ns, name, host, user, password string) {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"username": user, "password": password}}})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}}
	if _, err := env.admin.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (te *trustEnv) testRegistryDown(t *testing.T) {
	ns := trustNamespace(t)
	known := te.evil.Push(t, "team/known", "", oci.RandomImage(t))
	te.evil.Sign(t, known, te.release)
	fresh := te.evil.Push(t, "team/fresh", "", oci.RandomImage(t))
	te.evil.Sign(t, fresh, te.release)
	if _, err := createPod(t, ns, "first", known.String()); err != nil {
		t.Fatalf("verified while the registry is up: %v", err)
	}
	var down atomic.Bool
	down.Store(true)
	te.evil.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	defer down.Store(false)
	before := te.evil.Total("/")
	if _, err := createPod(t, ns, "again", known.String()); err != nil {
		t.Fatalf("a digest verified before, registry down: %v", err)
	}
	if n := te.evil.Total("/") - before; n != 0 {
		t.Errorf("admitting a verified digest made %d registry requests, want 0", n)
	}
	start := time.Now()
	_, err := createPod(t, ns, "new", fresh.String())
	t.Logf("new digest, registry answering 503: denied in %v", time.Since(start))
	wantDenied(t, err, "registry unavailable (check signature)", te.evil.Host)

	// A registry that accepts connections but never answers.
	down.Store(false)
	silent := te.evil.Push(t, "team/silent", "", oci.RandomImage(t))
	te.evil.Sign(t, silent, te.release)
	release := make(chan struct{})
	var hanging atomic.Bool
	hanging.Store(true)
	te.evil.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if hanging.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "too late", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	defer func() { hanging.Store(false); close(release) }()
	start = time.Now()
	_, err = createPod(t, ns, "silent", silent.String())
	t.Logf("new digest, registry not answering: denied in %v (registry.timeout %v)", time.Since(start), policy.DefaultRegistryTimeout)
	wantDenied(t, err, "registry unavailable (check signature)", te.evil.Host)
}

func (te *trustEnv) testSSRF(t *testing.T) {
	ns := trustNamespace(t)
	c2 := newCanary(t, "127.0.0.2:0")
	c1 := newCanary(t, "127.0.0.1:0")
	_, c2port, _ := net.SplitHostPort(c2.addr)
	_, c1port, _ := net.SplitHostPort(c1.addr)
	digest := "@sha256:" + strings.Repeat("ab", 32)

	// Redirects from an allowed registry, and a token realm, aimed at the canaries.
	te.evil.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/redirect/"):
			http.Redirect(w, r, "https://"+c2.addr+r.URL.Path, http.StatusTemporaryRedirect)
			return true
		case strings.HasPrefix(r.URL.Path, "/v2/realm/"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://localhost:`+c1port+`/token",service="evil",scope="repository:realm/app:pull"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return true
		}
		return false
	})
	for name, image := range map[string]string{
		"other loopback address":   "127.0.0.2:" + c2port + "/x/app" + digest,
		"IPv4-mapped IPv6":         "[::ffff:127.0.0.2]:" + c2port + "/x/app" + digest,
		"localhost, other port":    "localhost:" + c1port + "/x/app" + digest,
		"allowed host, other port": "127.0.0.1:" + c1port + "/x/app" + digest,
		"redirect":                 te.evil.Host + "/redirect/app" + digest,
		"token realm":              te.evil.Host + "/realm/app" + digest,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := createPod(t, ns, podName(name), image)
			wantDenied(t, err, "registry not allowed (check signature)")
		})
	}
	for _, c := range []*canary{c1, c2} {
		if n := c.accepted.Load(); n != 0 {
			t.Errorf("canary %s accepted %d connections, want 0", c.addr, n)
		}
	}
}

func (te *trustEnv) testCoalesced(t *testing.T) {
	ns := trustNamespace(t)
	d := te.reg.Push(t, "team/burst", "", oci.RandomImage(t))
	te.reg.Sign(t, d, te.release)
	sigTag := "/v2/team/burst/manifests/" + strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"
	before, sigBefore := te.reg.Paths("/v2/team/burst/"), te.reg.Count(http.MethodGet, sigTag)
	admitConcurrently(t, ns, d.String(), 100)
	if n := te.reg.Count(http.MethodGet, sigTag) - sigBefore; n != 1 {
		t.Errorf("100 concurrent admissions fetched the signature manifest %d times, want 1", n)
	}
	after := te.reg.Paths("/v2/team/burst/")
	for k := range after {
		after[k] -= before[k]
		if after[k] == 0 {
			delete(after, k)
		}
	}
	t.Logf("100 concurrent admissions of one new digest made these registry requests: %v", after)
}

// podName turns a subtest name into a pod name.
func podName(s string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, s), "-")
}

// canary is a TCP listener that only counts connections.
type canary struct {
	addr     string
	accepted atomic.Int32
}

func newCanary(t *testing.T, addr string) *canary {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("canary on %s: %v", addr, err)
	}
	c := &canary{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			conn.Close()
		}
	}()
	return c
}

// startDigestSwapper registers a mutating webhook, called after bulwark's,
// that replaces the first container's image of every pod created in ns with
// image, and returns a function that removes it.
func startDigestSwapper(t *testing.T, ns, image string) func() {
	t.Helper()
	kp, err := env.cluster.CA.IssueServing("digest-swapper", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		patch, _ := json.Marshal([]map[string]string{{"op": "replace", "path": "/spec/containers/0/image", "value": image}})
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: patch, PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-e2e-digest-swapper"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "swap.e2e.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL + "/"), CABundle: env.cluster.CA.CertPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
	if _, err := env.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	return func() {
		_ = env.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
		srv.Close()
	}
}
