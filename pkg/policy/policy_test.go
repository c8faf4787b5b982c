package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

const (
	pinned  = "registry.example/team/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pinned2 = "registry.example/team/app@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// hardened is a security context that satisfies every default control.
func hardened() *corev1.SecurityContext {
	p := Defaults()
	return p.Checks.Hardening.SecurityContext()
}

func podInput(stage Stage, spec corev1.PodSpec) *Input {
	return &Input{Stage: stage, Operation: OperationCreate, Pod: true, Spec: &spec, SpecPath: field.NewPath("spec")}
}

func TestCheckDigestMessages(t *testing.T) {
	p := Defaults()
	tests := map[string]struct {
		spec     corev1.PodSpec
		specPath *field.Path
		want     []string
	}{
		"tag only": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			want: []string{"spec.containers[0].image: image not pinned by digest (check digest): \"nginx:1.27\"; pin it as nginx:1.27@sha256:<digest> (`crane digest nginx:1.27` prints the digest)"},
		},
		"no tag": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			want: []string{"spec.containers[0].image: image not pinned by digest (check digest): \"nginx\"; pin it as nginx@sha256:<digest> (`crane digest nginx` prints the digest)"},
		},
		"repo@digest and repo:tag@digest are pinned": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: pinned}, {Name: "b", Image: pinned2}}},
		},
		"init and sidecar containers": {
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1"}, {Name: "sidecar", Image: "envoy:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				Containers:     []corev1.Container{{Name: "web", Image: pinned}},
			},
			want: []string{
				"spec.initContainers[0].image: image not pinned by digest (check digest): \"busybox:1\"; pin it as busybox:1@sha256:<digest> (`crane digest busybox:1` prints the digest)",
				"spec.initContainers[1].image: image not pinned by digest (check digest): \"envoy:1\"; pin it as envoy:1@sha256:<digest> (`crane digest envoy:1` prints the digest)",
			},
		},
		"ephemeral container and image volume": {
			spec: corev1.PodSpec{
				Containers:          []corev1.Container{{Name: "web", Image: pinned}},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
				Volumes:             []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "models:v2"}}}},
			},
			want: []string{
				"spec.ephemeralContainers[0].image: image not pinned by digest (check digest): \"busybox\"; pin it as busybox@sha256:<digest> (`crane digest busybox` prints the digest)",
				"spec.volumes[0].image.reference: image not pinned by digest (check digest): \"models:v2\"; pin it as models:v2@sha256:<digest> (`crane digest models:v2` prints the digest)",
			},
		},
		"deployment template path": {
			spec:     corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			specPath: field.NewPath("spec", "template", "spec"),
			want:     []string{"spec.template.spec.containers[0].image: image not pinned by digest (check digest): \"nginx:1.27\"; pin it as nginx:1.27@sha256:<digest> (`crane digest nginx:1.27` prints the digest)"},
		},
		"cronjob template path": {
			spec:     corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: "alpine:3"}}},
			specPath: field.NewPath("spec", "jobTemplate", "spec", "template", "spec"),
			want:     []string{"spec.jobTemplate.spec.template.spec.containers[0].image: image not pinned by digest (check digest): \"alpine:3\"; pin it as alpine:3@sha256:<digest> (`crane digest alpine:3` prints the digest)"},
		},
		"sha512 digest": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "app@sha512:" + strings.Repeat("ab", 64)}}},
			want: []string{"spec.containers[0].image: image not pinned by digest (check digest): \"app@sha512:" + strings.Repeat("ab", 64) + "\"; only sha256 digests are accepted"},
		},
		"short digest": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "app@sha256:abc"}}},
			want: []string{"spec.containers[0].image: image reference is not valid (check digest): \"app@sha256:abc\": invalid checksum digest length: sha256:abc"},
		},
		"invalid reference": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "UPPER/Case:tag"}}},
			want: []string{"spec.containers[0].image: image reference is not valid (check digest): \"UPPER/Case:tag\": repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: UPPER/Case"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := podInput(StageValidate, tc.spec)
			if tc.specPath != nil {
				in.SpecPath, in.Pod = tc.specPath, false
			}
			var got []string
			for _, v := range checkDigest(&p, in, nil) {
				if v.Action != ActionDeny || v.Check != CheckDigest {
					t.Errorf("verdict %v: want a deny of check digest", v)
				}
				got = append(got, v.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDigestOnPodUpdateJudgesOnlyWhatChanged(t *testing.T) {
	p := Defaults()
	old := corev1.PodSpec{Containers: []corev1.Container{{Name: "legacy", Image: "nginx:1.25"}}}
	tests := map[string]struct {
		spec corev1.PodSpec
		want []string
	}{
		"unchanged legacy image": {
			spec: *old.DeepCopy(),
		},
		"image changed to a tag": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "legacy", Image: "nginx:1.26"}}},
			want: []string{"spec.containers[0].image"},
		},
		"ephemeral container added": {
			spec: corev1.PodSpec{
				Containers:          old.Containers,
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
			},
			want: []string{"spec.ephemeralContainers[0].image"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := podInput(StageValidate, tc.spec)
			in.Operation, in.OldSpec = OperationUpdate, &old
			var got []string
			for _, v := range Evaluate(&p, in).Verdicts {
				if v.Check == CheckDigest {
					got = append(got, v.Path)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("digest verdict paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkloadUpdateWithUnchangedTemplateIsNotJudged(t *testing.T) {
	p := Defaults()
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}
	in := &Input{Stage: StageValidate, Operation: OperationUpdate, Spec: &spec, OldSpec: spec.DeepCopy(), SpecPath: field.NewPath("spec", "template", "spec")}
	if d := Evaluate(&p, in); len(d.Verdicts) != 0 {
		t.Errorf("verdicts = %v, want none for an unchanged template", d.Verdicts)
	}
	in.OldSpec.Containers[0].Image = "nginx:1.26"
	if d := Evaluate(&p, in); !d.Denied() {
		t.Errorf("changed template with a tag: want denied, got %v", d.Verdicts)
	}
}

func patchJSON(t *testing.T, ps []Patch) string {
	t.Helper()
	if len(ps) == 0 {
		return ""
	}
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHardeningPatches(t *testing.T) {
	tests := map[string]struct {
		edit func(*Policy)
		spec corev1.PodSpec
		want string
	}{
		"no security context": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}},
			want: `[{"op":"add","path":"/spec/containers/0/securityContext","value":{"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"seccompProfile":{"type":"RuntimeDefault"}}}]`,
		},
		"fully hardened": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: hardened()}}},
		},
		"partial context keeps explicit add and appends ALL": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: &corev1.SecurityContext{
				RunAsNonRoot: ptr.To(true),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"NET_RAW"}},
			}}}},
			want: `[{"op":"add","path":"/spec/containers/0/securityContext/capabilities/drop/-","value":"ALL"},` +
				`{"op":"add","path":"/spec/containers/0/securityContext/readOnlyRootFilesystem","value":true},` +
				`{"op":"add","path":"/spec/containers/0/securityContext/allowPrivilegeEscalation","value":false},` +
				`{"op":"add","path":"/spec/containers/0/securityContext/seccompProfile","value":{"type":"RuntimeDefault"}}]`,
		},
		"capabilities without drop": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
				sc := hardened()
				sc.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}
				return sc
			}()}}},
			want: `[{"op":"add","path":"/spec/containers/0/securityContext/capabilities/drop","value":["ALL"]}]`,
		},
		"explicit false is kept, not overwritten": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
				sc := hardened()
				sc.ReadOnlyRootFilesystem = ptr.To(false)
				return sc
			}()}}},
		},
		"pod-level seccomp is respected": {
			spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")}},
				Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
					sc := hardened()
					sc.SeccompProfile = nil
					return sc
				}()}},
			},
		},
		"init containers first, then containers": {
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
					sc := hardened()
					sc.AllowPrivilegeEscalation = nil
					return sc
				}()}},
				Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
					sc := hardened()
					sc.ReadOnlyRootFilesystem = nil
					return sc
				}()}},
			},
			want: `[{"op":"add","path":"/spec/initContainers/0/securityContext/allowPrivilegeEscalation","value":false},` +
				`{"op":"add","path":"/spec/containers/0/securityContext/readOnlyRootFilesystem","value":true}]`,
		},
		"controls switched off": {
			edit: func(p *Policy) {
				p.Checks.Hardening.ReadOnlyRootFilesystem = false
				p.Checks.Hardening.SeccompRuntimeDefault = false
			},
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}},
			want: `[{"op":"add","path":"/spec/containers/0/securityContext","value":{"capabilities":{"drop":["ALL"]},"allowPrivilegeEscalation":false}}]`,
		},
		"tmp emptyDir for containers that become read-only": {
			edit: func(p *Policy) { p.Checks.Hardening.TmpEmptyDir = true },
			spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "a", Image: pinned},
				{Name: "b", Image: pinned, VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp/"}}},
				{Name: "c", Image: pinned, VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}},
			}, Volumes: []corev1.Volume{{Name: "data"}, {Name: "scratch"}}},
			want: `[{"op":"add","path":"/spec/containers/0/securityContext","value":{"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"seccompProfile":{"type":"RuntimeDefault"}}},` +
				`{"op":"add","path":"/spec/containers/0/volumeMounts","value":[{"name":"bulwark-tmp","mountPath":"/tmp"}]},` +
				`{"op":"add","path":"/spec/containers/1/securityContext","value":{"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"seccompProfile":{"type":"RuntimeDefault"}}},` +
				`{"op":"add","path":"/spec/containers/2/securityContext","value":{"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"seccompProfile":{"type":"RuntimeDefault"}}},` +
				`{"op":"add","path":"/spec/containers/2/volumeMounts/-","value":{"name":"bulwark-tmp","mountPath":"/tmp"}},` +
				`{"op":"add","path":"/spec/volumes/-","value":{"name":"bulwark-tmp","emptyDir":{}}}]`,
		},
		"privileged container gets no allowPrivilegeEscalation": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: func() *corev1.SecurityContext {
				sc := hardened()
				sc.AllowPrivilegeEscalation = nil
				sc.Privileged = ptr.To(true)
				return sc
			}()}}},
		},
		"windows pods are left alone": {
			spec: corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Windows}, Containers: []corev1.Container{{Name: "web", Image: pinned}}},
		},
		"audit mode changes nothing": {
			edit: func(p *Policy) { p.Checks.Hardening.Mode = ModeAudit },
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := Defaults()
			if tc.edit != nil {
				tc.edit(&p)
			}
			d := Evaluate(&p, podInput(StageMutate, tc.spec))
			if len(d.Verdicts) != 0 {
				t.Errorf("mutate stage returned verdicts %v; it must only patch", d.Verdicts)
			}
			if diff := cmp.Diff(tc.want, patchJSON(t, d.Patches)); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHardeningNotAppliedToWorkloadTemplates(t *testing.T) {
	p := Defaults()
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}}
	for _, stage := range []Stage{StageMutate, StageValidate} {
		in := &Input{Stage: stage, Operation: OperationCreate, Spec: &spec, SpecPath: field.NewPath("spec", "template", "spec")}
		if d := Evaluate(&p, in); len(d.Patches)+len(d.Verdicts) != 0 {
			t.Errorf("%s: got patches %v verdicts %v, want none for a template", stage, d.Patches, d.Verdicts)
		}
	}
}

func TestHardeningVerdicts(t *testing.T) {
	withSC := func(edit func(sc *corev1.SecurityContext)) corev1.PodSpec {
		sc := hardened()
		edit(sc)
		return corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned, SecurityContext: sc}}}
	}
	tests := map[string]struct {
		mode     Mode
		template bool
		spec     corev1.PodSpec
		want     []string
		action   Action
	}{
		"explicit readOnlyRootFilesystem false is denied": {
			spec:   withSC(func(sc *corev1.SecurityContext) { sc.ReadOnlyRootFilesystem = ptr.To(false) }),
			want:   []string{"spec.containers[0].securityContext.readOnlyRootFilesystem: explicit setting conflicts with hardening (check hardening): set to false; remove it so bulwark sets true, and mount an emptyDir where the app writes"},
			action: ActionDeny,
		},
		"explicit readOnlyRootFilesystem false only warns in warn mode": {
			mode:   ModeWarn,
			spec:   withSC(func(sc *corev1.SecurityContext) { sc.ReadOnlyRootFilesystem = ptr.To(false) }),
			want:   []string{"spec.containers[0].securityContext.readOnlyRootFilesystem: explicit setting conflicts with hardening (check hardening): set to false; remove it so bulwark sets true, and mount an emptyDir where the app writes"},
			action: ActionWarn,
		},
		"explicit override in a deployment template": {
			template: true,
			spec:     withSC(func(sc *corev1.SecurityContext) { sc.AllowPrivilegeEscalation = ptr.To(true) }),
			want:     []string{"spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: explicit setting conflicts with hardening (check hardening): set to true; remove it so bulwark sets false"},
			action:   ActionDeny,
		},
		"privileged": {
			spec: withSC(func(sc *corev1.SecurityContext) {
				sc.AllowPrivilegeEscalation = nil
				sc.Privileged = ptr.To(true)
			}),
			want:   []string{"spec.containers[0].securityContext.privileged: explicit setting conflicts with hardening (check hardening): privileged containers can always escalate privileges; remove privileged: true"},
			action: ActionDeny,
		},
		"SYS_ADMIN": {
			spec: withSC(func(sc *corev1.SecurityContext) {
				sc.AllowPrivilegeEscalation = nil
				sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN", "CAP_SYS_ADMIN"}
			}),
			want:   []string{"spec.containers[0].securityContext.capabilities.add[1]: explicit setting conflicts with hardening (check hardening): SYS_ADMIN allows privilege escalation; remove it from capabilities.add"},
			action: ActionDeny,
		},
		"unconfined seccomp on the pod": {
			spec: func() corev1.PodSpec {
				s := withSC(func(sc *corev1.SecurityContext) { sc.SeccompProfile = nil })
				s.Containers = append(s.Containers, *s.Containers[0].DeepCopy())
				s.Containers[1].Name = "second"
				s.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
				return s
			}(),
			want:   []string{"spec.securityContext.seccompProfile.type: explicit setting conflicts with hardening (check hardening): set to Unconfined for the whole pod; remove it so bulwark sets RuntimeDefault"},
			action: ActionDeny,
		},
		"mutating webhook skipped": {
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}},
			want: []string{
				"spec.containers[0].securityContext.capabilities.drop: hardening not applied (check hardening): unset; bulwark's mutating webhook sets it, so it did not run on this request",
				"spec.containers[0].securityContext.readOnlyRootFilesystem: hardening not applied (check hardening): unset; bulwark's mutating webhook sets it, so it did not run on this request",
				"spec.containers[0].securityContext.allowPrivilegeEscalation: hardening not applied (check hardening): unset; bulwark's mutating webhook sets it, so it did not run on this request",
				"spec.containers[0].securityContext.seccompProfile: hardening not applied (check hardening): unset; bulwark's mutating webhook sets it, so it did not run on this request",
			},
			action: ActionDeny,
		},
		"audit mode records": {
			mode:   ModeAudit,
			spec:   withSC(func(sc *corev1.SecurityContext) { sc.ReadOnlyRootFilesystem = ptr.To(false) }),
			want:   []string{"spec.containers[0].securityContext.readOnlyRootFilesystem: explicit setting conflicts with hardening (check hardening): set to false; remove it so bulwark sets true, and mount an emptyDir where the app writes"},
			action: ActionAudit,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := Defaults()
			if tc.mode != "" {
				p.Checks.Hardening.Mode = tc.mode
			}
			in := podInput(StageValidate, tc.spec)
			if tc.template {
				in.Pod, in.SpecPath = false, field.NewPath("spec", "template", "spec")
			}
			d := Evaluate(&p, in)
			var got []string
			for _, v := range d.Verdicts {
				if v.Action != tc.action {
					t.Errorf("verdict %q has action %s, want %s", v, v.Action, tc.action)
				}
				got = append(got, v.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHardeningIsIdempotent(t *testing.T) {
	p := Defaults()
	p.Checks.Hardening.TmpEmptyDir = true
	spec := corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Image: pinned},
		{Name: "b", Image: pinned, SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}}},
	}}
	first := Evaluate(&p, podInput(StageMutate, spec))
	if len(first.Patches) == 0 {
		t.Fatal("first pass produced no patch")
	}
	patched := applyForTest(t, spec, first.Patches)
	if second := Evaluate(&p, podInput(StageMutate, patched)); len(second.Patches) != 0 {
		t.Errorf("second pass produced patches %s", patchJSON(t, second.Patches))
	}
	if v := Evaluate(&p, podInput(StageValidate, patched)).Verdicts; len(v) != 0 {
		t.Errorf("validate after mutate: %v", v)
	}
}

func TestDenialMessage(t *testing.T) {
	d := Decision{Verdicts: []Verdict{
		{Check: CheckDigest, Reason: ReasonImageNotPinned, Action: ActionDeny, Path: "spec.containers[0].image", Detail: `"nginx"`},
		{Check: CheckHardening, Reason: ReasonHardeningRejected, Action: ActionWarn, Path: "spec.containers[0].securityContext.privileged", Detail: "x"},
	}}
	want := "Pod \"web\" violates bulwark policy:\n- spec.containers[0].image: image not pinned by digest (check digest): \"nginx\""
	if got := d.DenialMessage(`Pod "web"`); got != want {
		t.Errorf("DenialMessage = %q, want %q", got, want)
	}
}

// TestSecurityContextIsWhatTheMutationAdds keeps HardeningConfig.SecurityContext
// equal to the patch a container without a securityContext gets.
func TestSecurityContextIsWhatTheMutationAdds(t *testing.T) {
	for name, edit := range map[string]func(*HardeningConfig){
		"defaults":   func(*HardeningConfig) {},
		"no seccomp": func(c *HardeningConfig) { c.SeccompRuntimeDefault = false },
		"only drop ALL": func(c *HardeningConfig) {
			c.ReadOnlyRootFilesystem, c.DisallowPrivilegeEscalation, c.SeccompRuntimeDefault = false, false, false
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := Defaults()
			edit(&p.Checks.Hardening)
			d := Evaluate(&p, podInput(StageMutate, corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: pinned}}}))
			if len(d.Patches) != 1 {
				t.Fatalf("patches %v, want one", d.Patches)
			}
			if diff := cmp.Diff(p.Checks.Hardening.SecurityContext(), d.Patches[0].Value); diff != "" {
				t.Errorf("(-SecurityContext +patch):\n%s", diff)
			}
		})
	}
}
