package policy_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// benchSpec is a pod spec with two containers pinned by digest, as a user writes it
// (hardened false: no securityContext) or as bulwark's mutating webhook leaves it.
func benchSpec(hardened bool) *corev1.PodSpec {
	mounts := []corev1.VolumeMount{{Name: "kube-api-access-7xk2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "web", Image: "registry.example/team-a/web:1.4.2@sha256:d1864540c44317880193e9178dd89a68cc2e559ed500d599de0471b86fb22412", VolumeMounts: mounts},
			{Name: "log-shipper", Image: "registry.example/team-a/log-shipper:0.9.1@sha256:2e9a5bd2c086c6bc1abb0f061a6e1a42542ba1ccb1feaf3cf012408d140af933", VolumeMounts: mounts},
		},
		Volumes:         []corev1.Volume{{Name: "kube-api-access-7xk2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}},
		SecurityContext: &corev1.PodSecurityContext{},
	}
	if hardened {
		for i := range spec.Containers {
			spec.Containers[i].SecurityContext = &corev1.SecurityContext{
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				ReadOnlyRootFilesystem:   ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false),
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
		}
	}
	return spec
}

// BenchmarkEvaluate measures the default policy on a pinned two-container pod: the
// validating stage admitting it hardened, the mutating stage hardening it.
func BenchmarkEvaluate(b *testing.B) {
	p := policy.Defaults()
	for _, tc := range []struct {
		stage    policy.Stage
		hardened bool
		patches  int
	}{
		{policy.StageValidate, true, 0},
		{policy.StageMutate, false, 2},
	} {
		b.Run(string(tc.stage), func(b *testing.B) {
			in := &policy.Input{Stage: tc.stage, Operation: policy.OperationCreate, Pod: true, Spec: benchSpec(tc.hardened), SpecPath: field.NewPath("spec")}
			if d := policy.Evaluate(&p, in); len(d.Verdicts) != 0 || len(d.Patches) != tc.patches {
				b.Fatalf("got verdicts %v and %d patches, want none and %d", d.Verdicts, len(d.Patches), tc.patches)
			}
			b.ReportAllocs()
			for b.Loop() {
				policy.Evaluate(&p, in)
			}
		})
	}
}

// BenchmarkPinned measures the digest check's parsing of one image reference.
func BenchmarkPinned(b *testing.B) {
	const image = "registry.example/team-a/web:1.4.2@sha256:d1864540c44317880193e9178dd89a68cc2e559ed500d599de0471b86fb22412"
	if !policy.Pinned(image) {
		b.Fatalf("%s is not pinned", image)
	}
	b.ReportAllocs()
	for b.Loop() {
		policy.Pinned(image)
	}
}
