package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestKeychainsForPod(t *testing.T) {
	client := fake.NewClientset(
		pullSecret("team-a", "pull", "pod.example.com", "pod-user", "pod-pw"),
		pullSecret("team-a", "sa-pull", "sa.example.com", "sa-user", "sa-pw"),
		&corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Namespace: "team-a", Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-pull"}, {Name: "sa-missing"}},
		},
		// Same names in another namespace, with other credentials: never read.
		pullSecret("team-b", "pull", "pod.example.com", "other-user", "other-pw"),
		pullSecret("team-b", "sa-pull", "sa.example.com", "other-user", "other-pw"),
		pullSecret("team-b", "missing", "pod.example.com", "other-user", "other-pw"),
	)
	kc, err := NewKeychains(client).ForPod(t.Context(), "team-a", "builder", []string{"pull", "missing"})
	if err != nil {
		t.Fatalf("ForPod: %v (a missing pull secret must be ignored)", err)
	}

	tests := map[string]struct {
		repo string
		want authn.AuthConfig
	}{
		"pod's pull secret":             {repo: "pod.example.com/team/app", want: authn.AuthConfig{Username: "pod-user", Password: "pod-pw"}},
		"service account's pull secret": {repo: "sa.example.com/team/app", want: authn.AuthConfig{Username: "sa-user", Password: "sa-pw"}},
		"no secret: anonymous":          {repo: "ghcr.io/team/app", want: authn.AuthConfig{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := resolveAuth(t, kc, tc.repo)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("credentials for %s (-want +got):\n%s", tc.repo, diff)
			}
		})
	}

	type read struct{ Verb, Namespace, Resource, Name string }
	var reads []read
	for _, a := range client.Actions() {
		r := read{Verb: a.GetVerb(), Namespace: a.GetNamespace(), Resource: a.GetResource().Resource}
		if g, ok := a.(k8stesting.GetAction); ok {
			r.Name = g.GetName()
		}
		reads = append(reads, r)
	}
	want := []read{
		{"get", "team-a", "secrets", "pull"},
		{"get", "team-a", "secrets", "missing"},
		{"get", "team-a", "serviceaccounts", "builder"},
		{"get", "team-a", "secrets", "sa-pull"},
		{"get", "team-a", "secrets", "sa-missing"},
	}
	if diff := cmp.Diff(want, reads); diff != "" {
		t.Errorf("API reads (-want +got):\n%s", diff)
	}
}

func TestKeychainsForPodMissingServiceAccount(t *testing.T) {
	client := fake.NewClientset(pullSecret("team-a", "pull", "pod.example.com", "pod-user", "pod-pw"))
	kc, err := NewKeychains(client).ForPod(t.Context(), "team-a", "", []string{"pull"})
	if err != nil {
		t.Fatalf("ForPod: %v (a missing service account must be ignored)", err)
	}
	want := authn.AuthConfig{Username: "pod-user", Password: "pod-pw"}
	if diff := cmp.Diff(want, resolveAuth(t, kc, "pod.example.com/team/app")); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
	for _, a := range client.Actions() {
		if a.GetNamespace() != "team-a" {
			t.Errorf("%s %s in namespace %q, want only team-a", a.GetVerb(), a.GetResource().Resource, a.GetNamespace())
		}
	}
}

func TestKeychainsForPodRequiresNamespace(t *testing.T) {
	client := fake.NewClientset(pullSecret("default", "pull", "pod.example.com", "u", "p"))
	if _, err := NewKeychains(client).ForPod(t.Context(), "", "", []string{"pull"}); err == nil {
		t.Error("ForPod with an empty namespace succeeded")
	}
	if n := len(client.Actions()); n != 0 {
		t.Errorf("ForPod with an empty namespace made %d API calls, want 0", n)
	}
}

// resolveAuth returns the credentials kc holds for repo.
func resolveAuth(t *testing.T, kc authn.Keychain, repo string) authn.AuthConfig {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}
