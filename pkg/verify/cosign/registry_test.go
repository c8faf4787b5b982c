package cosign_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
)

// TestVerifyRegistryFailures: what the registry (or the egress guard) does to
// the signature fetch decides the outcome, and the detail names the registry,
// never the credentials.
func TestVerifyRegistryFailures(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	k := newKey(t)
	auth := []verify.Authority{{Name: "release", Key: &verify.Key{PEM: k.pem}}}
	creds := keychain{authn.FromConfig(authn.AuthConfig{Username: "robot", Password: "hunter2"})}

	tests := map[string]struct {
		status   int                                                                         // answered by the registry to every request
		remote   func(r *testRegistry) func(context.Context, authn.Keychain) []remote.Option // nil: the registry's transport
		timeout  time.Duration
		want     func(host string) verify.Result
		wantSent bool // whether any request reaches the registry
	}{
		"503": {
			status:   http.StatusServiceUnavailable,
			wantSent: true,
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.Unavailable, Detail: "registry " + host + " answered HTTP 503 for the signatures of " + digest}
			},
		},
		"429": {
			status:   http.StatusTooManyRequests,
			wantSent: true,
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.Unavailable, Detail: "registry " + host + " answered HTTP 429 for the signatures of " + digest}
			},
		},
		"401": {
			status:   http.StatusUnauthorized,
			wantSent: true,
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.Unauthorized, Detail: "registry " + host + " refused the credentials (HTTP 401) for the signatures of " + digest}
			},
		},
		"403": {
			status:   http.StatusForbidden,
			wantSent: true,
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.Unauthorized, Detail: "registry " + host + " refused the credentials (HTTP 403) for the signatures of " + digest}
			},
		},
		"registry not allowed": {
			remote: func(r *testRegistry) func(context.Context, authn.Keychain) []remote.Option {
				return remoteOptionsWith(refuse{host: r.host})
			},
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.NotAllowed, Detail: "registry not allowed: " + host + ": not on the registry allow-list"}
			},
		},
		"time budget runs out": {
			status:   statusHang,
			timeout:  300 * time.Millisecond,
			wantSent: true,
			want: func(host string) verify.Result {
				return verify.Result{Outcome: verify.Unavailable, Detail: "registry " + host + ": time ran out reading the signatures of " + digest}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := newTestRegistry(t)
			reg.setStatus(tc.status)
			ro := reg.remoteOptions
			if tc.remote != nil {
				ro = tc.remote(reg)
			}
			v := newVerifier(t, bwcosign.Options{RemoteOptions: ro})
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			img := mustDigest(t, reg.host+"/app@"+digest)
			got := v.Verify(ctx, verify.Request{Image: img, Authorities: auth, Keychain: creds})
			if diff := cmp.Diff(tc.want(reg.host), got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
			if strings.Contains(got.Detail, "hunter2") || strings.Contains(got.Detail, "robot") {
				t.Errorf("detail carries the credentials: %s", got.Detail)
			}
			if sent := len(reg.served()) > 0; sent != tc.wantSent {
				t.Errorf("requests reached the registry: %t, want %t", sent, tc.wantSent)
			}
		})
	}

	t.Run("registry unreachable", func(t *testing.T) {
		t.Parallel()
		reg := newTestRegistry(t)
		reg.srv.Close() // nothing listens on its address any more
		v := newVerifier(t, bwcosign.Options{RemoteOptions: reg.remoteOptions})
		got := v.Verify(t.Context(), verify.Request{Image: mustDigest(t, reg.host+"/app@"+digest), Authorities: auth})
		// The rest of the detail is the dial error, as the OS words it.
		if prefix := "registry " + reg.host + " unavailable: "; got.Outcome != verify.Unavailable || !strings.HasPrefix(got.Detail, prefix) {
			t.Errorf("Verify = %+v, want Outcome %s and a detail starting %q", got, verify.Unavailable, prefix)
		}
	})
}

// keychain resolves every registry to one authenticator.
type keychain struct{ authn.Authenticator }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.Authenticator, nil }

// refuse is what pkg/registry's egress guard does with a registry that is not
// allowed: it sends nothing and says why.
type refuse struct{ host string }

func (r refuse) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, &registry.NotAllowedError{Host: req.URL.Host, Reason: "not on the registry allow-list"}
}

// TestVerifyRequests pins the registry requests of one cold verification: a
// ping, the manifest of the signature tag, and one GET per signature blob,
// however many authorities are checked.
func TestVerifyRequests(t *testing.T) {
	reg := newTestRegistry(t)
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	unsigned := reg.push("app")
	one := reg.push("app")
	reg.attach(one, one, k1)
	two := reg.push("app")
	reg.attach(two, two, k1)
	reg.attach(two, two, k2)
	keys := func(ks ...testKey) []verify.Authority {
		var as []verify.Authority
		for i, k := range ks {
			as = append(as, verify.Authority{Name: fmt.Sprintf("k%d", i+1), Key: &verify.Key{PEM: k.pem}})
		}
		return as
	}

	tests := map[string]struct {
		image       name.Digest
		authorities []verify.Authority
		threshold   int
		outcome     verify.Outcome
	}{
		"unsigned":                             {image: unsigned, authorities: keys(k1), outcome: verify.Unsigned},
		"one signature, one key":               {image: one, authorities: keys(k1), outcome: verify.Verified},
		"two signatures, three keys, 2 needed": {image: two, authorities: keys(k1, k2, k3), threshold: 2, outcome: verify.Verified},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Sequential: the registry's request log is shared.
			want := []string{"GET /v2/", "GET /v2/app/manifests/sha256-" + hexOf(tc.image) + ".sig"}
			want = append(want, signatureBlobs(t, reg, tc.image)...)
			reg.served()

			v := newVerifier(t, bwcosign.Options{RemoteOptions: reg.remoteOptions}) // cold
			got := v.Verify(t.Context(), verify.Request{Image: tc.image, Authorities: tc.authorities, Threshold: tc.threshold})
			if got.Outcome != tc.outcome {
				t.Fatalf("Outcome = %s (%s), want %s", got.Outcome, got.Detail, tc.outcome)
			}
			served := reg.served()
			sort.Strings(served[min(2, len(served)):]) // blobs are fetched in parallel
			if diff := cmp.Diff(want, served); diff != "" {
				t.Errorf("registry requests (-want +got):\n%s", diff)
			}
		})
	}
}

// signatureBlobs lists the GETs of the signature layers of img, sorted.
func signatureBlobs(t *testing.T, reg *testRegistry, img name.Digest) []string {
	t.Helper()
	ro := []ociremote.Option{ociremote.WithRemoteOptions(reg.remoteOptions(t.Context(), nil)...)}
	tag, err := ociremote.SignatureTag(img, ro...)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := ociremote.Signatures(tag, ro...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sigs.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, "GET /v2/"+img.RepositoryStr()+"/blobs/"+l.Digest.String())
	}
	sort.Strings(out)
	return out
}
