package admission

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

const (
	signedImage   = "registry.test/team/app:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	unsignedImage = "registry.test/team/app@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// verifierFunc is a verify.Verifier made of a function.
type verifierFunc func(ctx context.Context, req verify.Request) verify.Result

func (f verifierFunc) Verify(ctx context.Context, req verify.Request) verify.Result {
	return f(ctx, req)
}

type resolverFunc func(ctx context.Context, tag name.Tag, kc authn.Keychain) (name.Digest, error)

func (f resolverFunc) Resolve(ctx context.Context, tag name.Tag, kc authn.Keychain) (name.Digest, error) {
	return f(ctx, tag, kc)
}

// keychainsFunc records which namespace, service account and secrets were asked for.
type keychainsFunc func(namespace, sa string, secrets []string) error

func (f keychainsFunc) ForPod(_ context.Context, namespace, sa string, secrets []string) (authn.Keychain, error) {
	return authn.NewMultiKeychain(), f(namespace, sa, secrets)
}

func trustPolicy(pinning policy.Pinning) *policy.Policy {
	p := policy.Defaults()
	p.Checks.Digest.Pinning = pinning
	p.Checks.Signature.Enabled = true
	p.Checks.Signature.Rules = []policy.TrustRule{{Name: "team", Images: []string{"registry.test/team/**"},
		Authorities: []verify.Authority{{Name: "release", Key: &verify.Key{SecretRef: &verify.SecretRef{Name: "keys", Key: "release.pub"}}}}}}
	return &p
}

func podRequest(t *testing.T, spec corev1.PodSpec) admission.Request {
	t.Helper()
	raw, err := json.Marshal(corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"}, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name: "web", Namespace: "team-a", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}}
}

func hardenedContainer(name, image string) corev1.Container {
	p := policy.Defaults()
	return corev1.Container{Name: name, Image: image, SecurityContext: p.Checks.Hardening.SecurityContext()}
}

func TestValidateDecidesFromTheVerifiersResult(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	verifier := verifierFunc(func(_ context.Context, req verify.Request) verify.Result {
		mu.Lock()
		asked = append(asked, req.Image.String())
		mu.Unlock()
		if req.Image.String() == signedImage {
			return verify.Result{Outcome: verify.Verified, Satisfied: []string{"release"}}
		}
		return verify.Result{Outcome: verify.Unsigned, Detail: `no signatures found; expected a signature by key "release"`}
	})
	var keychainArgs []string
	keychains := keychainsFunc(func(ns, sa string, secrets []string) error {
		keychainArgs = append(keychainArgs, ns+" "+sa+" "+strings.Join(secrets, ","))
		return nil
	})
	for name, tc := range map[string]struct {
		verifier verify.Verifier
		images   []string
		allowed  bool
		message  string
	}{
		"signed": {verifier: verifier, images: []string{signedImage, signedImage}, allowed: true},
		"unsigned": {verifier: verifier, images: []string{signedImage, unsignedImage}, message: `- spec.containers[1].image: image is not signed (check signature): "` + unsignedImage +
			`" (rule "team", authorities "release"): no signatures found; expected a signature by key "release"`},
		"no verifier fails closed": {images: []string{signedImage}, message: "signature could not be verified (check signature)"},
	} {
		t.Run(name, func(t *testing.T) {
			asked, keychainArgs = nil, nil
			h := NewHandler(Options{Stage: policy.StageValidate, Policy: func() *policy.Policy { return trustPolicy(policy.PinningRequire) },
				Metrics: NewMetrics(prometheus.NewRegistry()), Verifier: tc.verifier, Keychains: keychains})
			spec := corev1.PodSpec{ServiceAccountName: "builder", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}}
			for i, img := range tc.images {
				spec.Containers = append(spec.Containers, hardenedContainer("c"+string(rune('0'+i)), img))
			}
			rv := h.Review(t.Context(), podRequest(t, spec))
			if rv.Response.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %s", rv.Response.Allowed, tc.allowed, rv.Response.Result.Message)
			}
			if !tc.allowed && !strings.Contains(rv.Response.Result.Message, tc.message) {
				t.Errorf("message %q\nwant it to contain %q", rv.Response.Result.Message, tc.message)
			}
			if tc.verifier == nil {
				return
			}
			// Each digest once; credentials from the pod's own namespace.
			if len(asked) != len(dedupe(tc.images)) {
				t.Errorf("verifier asked %v, want each of %v once", asked, dedupe(tc.images))
			}
			if diff := cmp.Diff([]string{"team-a builder pull"}, keychainArgs); diff != "" {
				t.Errorf("keychain (-want +got):\n%s", diff)
			}
		})
	}
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func TestMutateResolvesEachTagOnceAndVerifiesTheDigest(t *testing.T) {
	const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	var mu sync.Mutex
	resolutions := map[string]int{}
	var verified []string
	resolver := resolverFunc(func(_ context.Context, tag name.Tag, _ authn.Keychain) (name.Digest, error) {
		mu.Lock()
		defer mu.Unlock()
		resolutions[tag.String()]++
		if tag.TagStr() == "missing" {
			return name.Digest{}, errors.New("MANIFEST_UNKNOWN")
		}
		return name.NewDigest(tag.String() + "@" + digest)
	})
	verifier := verifierFunc(func(_ context.Context, req verify.Request) verify.Result {
		mu.Lock()
		defer mu.Unlock()
		verified = append(verified, req.Image.String())
		return verify.Result{Outcome: verify.Verified}
	})
	h := NewHandler(Options{Stage: policy.StageMutate, Policy: func() *policy.Policy { return trustPolicy(policy.PinningResolve) },
		Metrics: NewMetrics(prometheus.NewRegistry()), Verifier: verifier, Resolver: resolver})
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{hardenedContainer("init", "registry.test/team/app:1.0")},
		Containers:     []corev1.Container{hardenedContainer("web", "registry.test/team/app:1.0"), hardenedContainer("side", "registry.test/team/side:missing")},
	}
	rv := h.Review(t.Context(), podRequest(t, spec))
	if !rv.Response.Allowed {
		t.Fatalf("mutate denied: %v", rv.Response.Result)
	}
	if diff := cmp.Diff(map[string]int{"registry.test/team/app:1.0": 1, "registry.test/team/side:missing": 1}, resolutions); diff != "" {
		t.Errorf("resolutions (-want +got):\n%s", diff)
	}
	want := "registry.test/team/app:1.0@" + digest
	if diff := cmp.Diff([]string{want}, verified); diff != "" {
		t.Errorf("verified (-want +got):\n%s", diff)
	}
	got, _ := json.Marshal(rv.Patches)
	if wantPatches := `[{"op":"replace","path":"/spec/initContainers/0/image","value":"` + want + `"},{"op":"replace","path":"/spec/containers/0/image","value":"` + want + `"}]`; string(got) != wantPatches {
		t.Errorf("patches:\n got %s\nwant %s", got, wantPatches)
	}
	if diff := cmp.Diff([]string{"bulwark: could not resolve registry.test/team/side:missing to a digest: MANIFEST_UNKNOWN"}, rv.Response.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
