package cosign_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	cosignoci "github.com/sigstore/cosign/v3/pkg/oci"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// TestVerifyRegistryFailures: what the registry (or the egress guard) does to
// the signature fetch decides the outcome, and the detail names the registry,
// never the credentials.
func TestVerifyRegistryFailures(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	k := oci.NewKey(t)
	auth := []verify.Authority{{Name: "release", Key: &verify.Key{PEM: k.PublicPEM}}}
	creds := keychain{authn.FromConfig(authn.AuthConfig{Username: "robot", Password: "hunter2"})}

	tests := map[string]struct {
		status  int  // answered by the registry to every request
		hang    bool // the registry holds every request until the client gives up
		timeout time.Duration
		refuse  bool // the egress guard refuses the registry: nothing is sent
		outcome verify.Outcome
		detail  string // {host} is the registry's host:port
	}{
		"503":                  {status: http.StatusServiceUnavailable, outcome: verify.Unavailable, detail: "registry {host} answered HTTP 503 for the signatures of " + digest},
		"429":                  {status: http.StatusTooManyRequests, outcome: verify.Unavailable, detail: "registry {host} answered HTTP 429 for the signatures of " + digest},
		"401":                  {status: http.StatusUnauthorized, outcome: verify.Unauthorized, detail: "registry {host} refused the credentials (HTTP 401) for the signatures of " + digest},
		"403":                  {status: http.StatusForbidden, outcome: verify.Unauthorized, detail: "registry {host} refused the credentials (HTTP 403) for the signatures of " + digest},
		"registry not allowed": {refuse: true, outcome: verify.NotAllowed, detail: "registry not allowed: {host}: not on the registry allow-list"},
		"time budget runs out": {hang: true, timeout: 300 * time.Millisecond, outcome: verify.Unavailable, detail: "registry {host}: time ran out reading the signatures of " + digest},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := oci.NewRegistry(t)
			reg.SetStatus(tc.status)
			if tc.hang {
				reg.Hook(func(_ http.ResponseWriter, req *http.Request) bool {
					<-req.Context().Done()
					return true
				})
			}
			ro := remoteOptions(t, reg)
			if tc.refuse {
				ro = remoteOptionsWith(refuse{})
			}
			v := newVerifier(t, bwcosign.Options{RemoteOptions: ro})
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			got := v.Verify(ctx, verify.Request{Image: reg.Repo(t, "app").Digest(digest), Authorities: auth, Keychain: creds})
			want := result(tc.outcome, strings.ReplaceAll(tc.detail, "{host}", reg.Host))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
			if strings.Contains(got.Detail, "hunter2") || strings.Contains(got.Detail, "robot") {
				t.Errorf("detail carries the credentials: %s", got.Detail)
			}
			if sent := len(reg.Served()) > 0; sent == tc.refuse {
				t.Errorf("requests reached the registry: %t, want %t", sent, !tc.refuse)
			}
		})
	}

	t.Run("registry unreachable", func(t *testing.T) {
		t.Parallel()
		reg := oci.NewRegistry(t)
		reg.Close() // nothing listens on its address any more
		v := newVerifier(t, bwcosign.Options{RemoteOptions: remoteOptions(t, reg)})
		got := v.Verify(t.Context(), verify.Request{Image: reg.Repo(t, "app").Digest(digest), Authorities: auth})
		// The rest of the detail is the dial error, as the OS words it.
		if prefix := "registry " + reg.Host + " unavailable: "; got.Outcome != verify.Unavailable || !strings.HasPrefix(got.Detail, prefix) {
			t.Errorf("Verify = %+v, want Outcome %s and a detail starting %q", got, verify.Unavailable, prefix)
		}
	})
}

// keychain resolves every registry to one authenticator.
type keychain struct{ authn.Authenticator }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.Authenticator, nil }

// refuse is what pkg/registry's egress guard does with a registry that is not
// allowed: it sends nothing and says why.
type refuse struct{}

func (refuse) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, &registry.NotAllowedError{Host: req.URL.Host, Reason: "not on the registry allow-list"}
}

// TestVerifyRequests pins the registry requests of one cold verification: a
// ping, the manifest of the signature tag, and one GET per signature blob,
// however many authorities are checked; when attestations are required, then
// the manifest of the attestation tag and one GET per attestation blob,
// however many predicate types; when every platform must verify, one GET of
// the image's manifest and, for an index, the same again for each platform.
func TestVerifyRequests(t *testing.T) {
	reg := oci.NewRegistry(t)
	k1, k2, k3 := oci.NewKey(t), oci.NewKey(t), oci.NewKey(t)
	unsigned := push(t, reg, "app")
	one := push(t, reg, "app")
	reg.Sign(t, one, k1)
	two := push(t, reg, "app")
	reg.Sign(t, two, k1)
	reg.Sign(t, two, k2)
	attested := push(t, reg, "app")
	reg.Sign(t, attested, k1)
	reg.Attest(t, attested, k1, oci.SLSAProvenanceV1, slsaPredicate)
	index, platforms := reg.PushIndex(t, "app", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	for _, d := range append([]name.Digest{index}, platforms...) {
		reg.Sign(t, d, k1)
	}
	keys := func(ks ...*oci.Key) []verify.Authority {
		var as []verify.Authority
		for i, k := range ks {
			as = append(as, keyAuth(fmt.Sprintf("k%d", i+1), k))
		}
		return as
	}

	// digestRequests is what verifying d costs after the ping; blobs are
	// fetched in parallel, so each run of them is sorted.
	digestRequests := func(d name.Digest, attestations bool) []string {
		tag := "GET /v2/app/manifests/sha256-" + hexOf(d)
		out := append([]string{tag + ".sig"}, blobRequests(t, reg.Signatures(t, d))...)
		if attestations {
			out = append(append(out, tag+".att"), blobRequests(t, reg.Attestations(t, d))...)
		}
		return out
	}
	tests := map[string]struct {
		image        name.Digest
		authorities  []verify.Authority
		threshold    int
		attestations []string
		allPlatforms bool
		outcome      verify.Outcome
	}{
		"unsigned":                                   {image: unsigned, authorities: keys(k1), outcome: verify.Unsigned},
		"one signature, one key":                     {image: one, authorities: keys(k1), outcome: verify.Verified},
		"two signatures, three keys, 2 needed":       {image: two, authorities: keys(k1, k2, k3), threshold: 2, outcome: verify.Verified},
		"one signature, one attestation required":    {image: attested, authorities: keys(k1), attestations: []string{oci.SLSAProvenanceV1}, outcome: verify.Verified},
		"one signature, all platforms, not an index": {image: one, authorities: keys(k1), allPlatforms: true, outcome: verify.Verified},
		"index of two platforms, all platforms":      {image: index, authorities: keys(k1), allPlatforms: true, outcome: verify.Verified},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Sequential: the registry's request log is shared.
			want := append([]string{"GET /v2/"}, digestRequests(tc.image, len(tc.attestations) > 0)...)
			if tc.allPlatforms {
				want = append(want, "GET /v2/app/manifests/"+tc.image.DigestStr())
			}
			parallel := len(want) // platforms are verified in parallel: from here, in any order
			if tc.image == index && tc.allPlatforms {
				for _, p := range platforms {
					want = append(want, digestRequests(p, len(tc.attestations) > 0)...)
				}
			}
			before := len(reg.Served())

			v := newVerifier(t, bwcosign.Options{RemoteOptions: remoteOptions(t, reg)}) // cold
			got := v.Verify(t.Context(), verify.Request{Image: tc.image, Authorities: tc.authorities, Threshold: tc.threshold,
				Attestations: tc.attestations, AllPlatforms: tc.allPlatforms})
			if got.Outcome != tc.outcome {
				t.Fatalf("Outcome = %s (%s), want %s", got.Outcome, got.Detail, tc.outcome)
			}
			served := reg.Served()[before:]
			sortBlobRuns(served[:min(parallel, len(served))])
			slices.Sort(served[min(parallel, len(served)):])
			slices.Sort(want[parallel:])
			if diff := cmp.Diff(want, served); diff != "" {
				t.Errorf("registry requests (-want +got):\n%s", diff)
			}
		})
	}
}

// blobRequests are the GETs of the blobs of sigs (signatures or
// attestations), sorted.
func blobRequests(t *testing.T, sigs []cosignoci.Signature) []string {
	t.Helper()
	var out []string
	for _, sig := range sigs {
		h, err := sig.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "GET /v2/app/blobs/"+h.String())
	}
	slices.Sort(out)
	return out
}

// sortBlobRuns sorts each run of consecutive blob GETs of reqs in place.
func sortBlobRuns(reqs []string) {
	isBlob := func(r string) bool { return strings.Contains(r, "/blobs/") }
	for i := 0; i < len(reqs); {
		j := i + 1
		if isBlob(reqs[i]) {
			for j < len(reqs) && isBlob(reqs[j]) {
				j++
			}
			slices.Sort(reqs[i:j])
		}
		i = j
	}
}
