package policy

import (
	stdcmp "cmp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

const testKeyPEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEogavNJBJttha7wNPnprddV5YBCTi
XxTz6vZiX9q24NbDaXV3WK2pc9RBp2stEeignXVe7gUqItBFFjT2eMM9VA==
-----END PUBLIC KEY-----
`

func rule(name string, images ...string) TrustRule {
	return TrustRule{Name: name, Images: images, Authorities: []verify.Authority{{Name: name + "-key", Key: &verify.Key{PEM: testKeyPEM}}}}
}

func TestRuleForPicksTheMostSpecificPattern(t *testing.T) {
	cfg := SignatureConfig{Rules: []TrustRule{
		rule("everything", "**"),
		rule("acme", "ghcr.io/acme/**"),
		rule("acme-web", "ghcr.io/acme/web"),
		rule("acme-one-level", "ghcr.io/acme/*"),
		rule("library", "docker.io/library/*"),
	}}
	for image, want := range map[string]string{
		"ghcr.io/acme/web@sha256:" + strings.Repeat("a", 64):        "acme-web",
		"ghcr.io/acme/api:1.0":                                      "acme-one-level",
		"ghcr.io/acme/team/api:1.0":                                 "acme",
		"ghcr.io/other/api:1.0":                                     "everything",
		"nginx:1.27":                                                "library",
		"docker.io/library/nginx@sha256:" + strings.Repeat("b", 64): "library",
		"index.docker.io/library/redis":                             "library",
	} {
		got := cfg.RuleFor(image)
		if got == nil || got.Name != want {
			t.Errorf("RuleFor(%q) = %v, want rule %q", image, got, want)
		}
	}
	if got := (&SignatureConfig{Rules: []TrustRule{rule("acme", "ghcr.io/acme/*")}}).RuleFor("ghcr.io/acme/team/api:1"); got != nil {
		t.Errorf("* crossed a path segment: %q", got.Name)
	}
	if got := cfg.RuleFor("NOT A REFERENCE"); got != nil {
		t.Errorf("an invalid reference matched rule %q", got.Name)
	}
}

func signaturePolicy(noMatch Outcome) *Policy {
	p := Defaults()
	p.Checks.Signature.Enabled = true
	p.Checks.Signature.NoMatch = noMatch
	p.Checks.Signature.Rules = []TrustRule{rule("team", "registry.example/team/**")}
	return &p
}

func TestCheckSignatureMessages(t *testing.T) {
	other := "other.example/app@sha256:" + strings.Repeat("c", 64)
	tests := map[string]struct {
		noMatch    Outcome
		images     []string
		signatures map[string]verify.Result
		want       []string
		actions    []Action
	}{
		"verified": {
			images:     []string{pinned},
			signatures: map[string]verify.Result{pinned: {Outcome: verify.Verified, Satisfied: []string{"team-key"}}},
		},
		"unsigned names the expected authority": {
			images:     []string{pinned},
			signatures: map[string]verify.Result{pinned: {Outcome: verify.Unsigned, Detail: "no signatures found"}},
			want:       []string{`spec.containers[0].image: image is not signed (check signature): "` + pinned + `" (rule "team", authorities "team-key"): no signatures found`},
			actions:    []Action{ActionDeny},
		},
		"mismatch": {
			images:     []string{pinned},
			signatures: map[string]verify.Result{pinned: {Outcome: verify.Mismatch, Detail: "invalid signature"}},
			want:       []string{`spec.containers[0].image: no valid signature from a trusted authority (check signature): "` + pinned + `" (rule "team", authorities "team-key"): invalid signature`},
			actions:    []Action{ActionDeny},
		},
		"registry unavailable fails closed": {
			images:     []string{pinned},
			signatures: map[string]verify.Result{pinned: {Outcome: verify.Unavailable, Detail: "registry.example: 503"}},
			want:       []string{`spec.containers[0].image: registry unavailable (check signature): "` + pinned + `" (rule "team", authorities "team-key"): registry.example: 503`},
			actions:    []Action{ActionDeny},
		},
		"no result fails closed": {
			images:  []string{pinned},
			want:    []string{`spec.containers[0].image: signature could not be verified (check signature): "` + pinned + `" (rule "team", authorities "team-key"): not verified`},
			actions: []Action{ActionDeny},
		},
		"unpinned images are left to the digest check": {
			images: []string{"registry.example/team/app:1.0"},
		},
		"no rule, noMatch deny": {
			noMatch: OutcomeDeny,
			images:  []string{other},
			want:    []string{`spec.containers[0].image: no trust rule matches the image (check signature): "` + other + `" matches no rule of checks.signature.rules`},
			actions: []Action{ActionDeny},
		},
		"no rule, noMatch warn": {
			noMatch: OutcomeWarn,
			images:  []string{other},
			want:    []string{`spec.containers[0].image: no trust rule matches the image (check signature): "` + other + `" matches no rule of checks.signature.rules`},
			actions: []Action{ActionWarn},
		},
		"no rule, noMatch allow": {
			noMatch: OutcomeAllow,
			images:  []string{other},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := signaturePolicy(stdcmp.Or(tc.noMatch, OutcomeDeny))
			var spec corev1.PodSpec
			for i, img := range tc.images {
				spec.Containers = append(spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img, SecurityContext: hardened()})
			}
			in := podInput(StageValidate, spec)
			in.Signatures = tc.signatures
			d := Evaluate(p, in)
			var got []string
			var actions []Action
			for _, v := range d.Verdicts {
				if v.Check == CheckSignature {
					got, actions = append(got, v.String()), append(actions, v.Action)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.actions, actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

func TestSignatureTargetsAreUniqueNewPinnedAndRuled(t *testing.T) {
	p := signaturePolicy(OutcomeDeny)
	other := "other.example/app@sha256:" + strings.Repeat("c", 64)
	old := corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned2}}}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: pinned2}, {Name: "a", Image: pinned}, {Name: "b", Image: pinned}, {Name: "c", Image: other}, {Name: "d", Image: "registry.example/team/app:2"}},
	}
	in := podInput(StageValidate, spec)
	in.Operation, in.OldSpec = OperationUpdate, &old
	var got []string
	for _, tg := range SignatureTargets(p, in) {
		got = append(got, tg.Image.String()+" "+tg.Rule.Name)
	}
	// pinned2 is unchanged by the update, other has no rule, the tag has no digest.
	if diff := cmp.Diff([]string{pinned + " team"}, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	p.Checks.Signature.Enabled = false
	if got := SignatureTargets(p, in); got != nil {
		t.Errorf("disabled check still has targets: %v", got)
	}
}

func TestResolvePatchesReplaceTagsWithTheResolvedDigest(t *testing.T) {
	p := Defaults()
	p.Checks.Digest.Pinning = PinningResolve
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "registry.example/team/app:1.0"}},
		Containers:     []corev1.Container{{Name: "web", Image: "registry.example/team/app:1.0"}, {Name: "side", Image: pinned2}},
		Volumes:        []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "models:v2"}}}},
	}
	in := &Input{Stage: StageMutate, Operation: OperationCreate, Spec: &spec, SpecPath: field.NewPath("spec", "template", "spec")}
	var tags []string
	for _, tg := range ResolveTargets(&p, in) {
		tags = append(tags, tg.String())
	}
	if diff := cmp.Diff([]string{"registry.example/team/app:1.0", "models:v2"}, tags); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	in.Resolved = map[string]string{"registry.example/team/app:1.0": pinned}
	d := Evaluate(&p, in)
	want := `[{"op":"replace","path":"/spec/template/spec/initContainers/0/image","value":"` + pinned + `"},` +
		`{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"` + pinned + `"}]`
	if got := patchJSON(t, d.Patches); got != want {
		t.Errorf("patches:\n got %s\nwant %s", got, want)
	}
	p.Checks.Digest.Pinning = PinningRequire
	if got := ResolveTargets(&p, in); got != nil {
		t.Errorf("require mode resolves %v", got)
	}
}

func TestParseSignatureAndRegistryErrorsNameTheField(t *testing.T) {
	head := "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\n"
	for name, tc := range map[string]struct{ in, want string }{
		"no authorities": {
			in:   "checks:\n  signature:\n    rules:\n    - name: a\n      images: ['**']\n",
			want: "checks.signature.rules[0].authorities: Required value",
		},
		"key and keyless": {
			in:   "checks:\n  signature:\n    rules:\n    - name: a\n      images: ['**']\n      authorities:\n      - name: k\n        key: {pem: x}\n        keyless: {issuer: i, subject: s, trustedRoot: /r}\n",
			want: "checks.signature.rules[0].authorities[0]: Invalid value: \"k\": set exactly one of key and keyless",
		},
		"bad PEM": {
			in:   "checks:\n  signature:\n    rules:\n    - name: a\n      images: ['**']\n      authorities:\n      - name: k\n        key: {pem: nope}\n",
			want: "checks.signature.rules[0].authorities[0].key.pem: Invalid value: \"<PEM>\": not a PEM \"PUBLIC KEY\" block",
		},
		"bad regexp": {
			in:   "checks:\n  signature:\n    rules:\n    - name: a\n      images: ['**']\n      authorities:\n      - name: k\n        keyless: {issuer: i, subjectRegExp: '(', trustedRoot: /r}\n",
			want: "checks.signature.rules[0].authorities[0].keyless.subjectRegExp",
		},
		"threshold above authorities": {
			in:   "checks:\n  signature:\n    rules:\n    - name: a\n      images: ['**']\n      threshold: 2\n      authorities:\n      - name: k\n        key: {secretRef: {name: s, key: cosign.pub}}\n",
			want: "checks.signature.rules[0].threshold: Invalid value: 2",
		},
		"noMatch": {
			in:   "checks:\n  signature:\n    noMatch: maybe\n",
			want: `checks.signature.noMatch: Unsupported value: "maybe"`,
		},
		"pinning": {
			in:   "checks:\n  digest:\n    pinning: latest\n",
			want: `checks.digest.pinning: Unsupported value: "latest"`,
		},
		"registry host": {
			in:   "registry:\n  allow: ['https://ghcr.io']\n",
			want: `registry.allow[0]: Invalid value: "https://ghcr.io"`,
		},
		"registry address": {
			in:   "registry:\n  allowAddresses: ['10.0.0.0/33']\n",
			want: `registry.allowAddresses[0]: Invalid value: "10.0.0.0/33"`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(head + tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	p, err := Parse([]byte(head + "checks:\n  signature:\n    enabled: true\n    rules:\n    - name: a\n      images: ['**']\n      authorities:\n      - name: k\n        key:\n          pem: |\n" + indent(testKeyPEM, "            ") + "registry:\n  allow: [ghcr.io, '127.0.0.1:5000']\n  allowAddresses: [127.0.0.1, 'fd00::/8']\n"))
	if err != nil {
		t.Fatalf("valid policy: %v", err)
	}
	if got := p.Registry.Prefixes(); len(got) != 2 || got[0].String() != "127.0.0.1/32" || got[1].String() != "fd00::/8" {
		t.Errorf("Prefixes() = %v", got)
	}
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
