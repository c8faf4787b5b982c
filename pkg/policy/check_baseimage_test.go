package policy

import (
	stdcmp "cmp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

func TestCheckBaseImageMessages(t *testing.T) {
	digest := "sha256:" + strings.Repeat("d", 64)
	declared := func(refs ...verify.BaseRef) verify.Base { return verify.Base{Outcome: verify.Verified, Declared: refs} }
	tests := map[string]struct {
		approved   []string
		undeclared Outcome
		base       *verify.Base
		want       []string
		actions    []Action
	}{
		"pinned and approved": {
			approved: []string{"gcr.io/distroless/**"},
			base:     ptrTo(declared(verify.BaseRef{Name: "gcr.io/distroless/static:nonroot", Digest: digest})),
		},
		"pinned, any base approved": {
			base: ptrTo(declared(verify.BaseRef{Name: "docker.io/library/ubuntu:24.04", Digest: digest})),
		},
		"pinned by name": {
			base: ptrTo(declared(verify.BaseRef{Name: "docker.io/library/ubuntu@" + digest})),
		},
		"not pinned": {
			base:    ptrTo(declared(verify.BaseRef{Name: "docker.io/library/ubuntu:24.04"})),
			want:    []string{`spec.containers[0].image: base image not pinned by digest (check base-image): "` + pinned + `" declares base "docker.io/library/ubuntu:24.04" without a digest; rebuild it FROM a base pinned by digest`},
			actions: []Action{ActionDeny},
		},
		"not approved, per platform": {
			approved: []string{"gcr.io/distroless/**", "docker.io/library/debian"},
			base: ptrTo(declared(verify.BaseRef{Platform: "linux/amd64", Name: "debian:12", Digest: digest},
				verify.BaseRef{Platform: "linux/arm64", Name: "ubuntu:24.04", Digest: digest})),
			want:    []string{`spec.containers[0].image: base image not approved (check base-image): "` + pinned + `" (linux/arm64) is built on "ubuntu:24.04", which is not one of the approved bases gcr.io/distroless/**, docker.io/library/debian`},
			actions: []Action{ActionDeny},
		},
		"undeclared, allowed by default": {
			base: &verify.Base{Outcome: verify.Verified, Undeclared: []string{"image"}},
		},
		"undeclared, warn": {
			undeclared: OutcomeWarn,
			base:       &verify.Base{Outcome: verify.Verified, Undeclared: []string{"linux/amd64"}},
			want:       []string{`spec.containers[0].image: image declares no base image (check base-image): "` + pinned + `" declares no base image (linux/amd64); checks.baseImage.undeclared is warn`},
			actions:    []Action{ActionWarn},
		},
		"registry unavailable fails closed": {
			base:    &verify.Base{Outcome: verify.Unavailable, Detail: "registry r answered HTTP 503"},
			want:    []string{`spec.containers[0].image: registry unavailable (check base-image): "` + pinned + `": registry r answered HTTP 503`},
			actions: []Action{ActionDeny},
		},
		"not read fails closed": {
			want:    []string{`spec.containers[0].image: base image could not be read (check base-image): "` + pinned + `": manifest not read`},
			actions: []Action{ActionDeny},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := Defaults()
			p.Checks.BaseImage.Enabled = true
			p.Checks.BaseImage.Approved = tc.approved
			p.Checks.BaseImage.Undeclared = stdcmp.Or(tc.undeclared, OutcomeAllow)
			in := podInput(StageValidate, corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: pinned, SecurityContext: hardened()}}})
			if tc.base != nil {
				in.Bases = map[string]verify.Base{pinned: *tc.base}
			}
			if got := BaseImageTargets(&p, in); len(got) != 1 || got[0].String() != pinned {
				t.Errorf("targets = %v", got)
			}
			var got []string
			var actions []Action
			for _, v := range Evaluate(&p, in).Verdicts {
				got, actions = append(got, v.String()), append(actions, v.Action)
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

func ptrTo[T any](v T) *T { return &v }
