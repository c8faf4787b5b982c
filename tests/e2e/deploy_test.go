package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-dev/bulwark/pkg/check"
)

// TestDeployManifestsAreAcceptedAndLeastPrivileged applies every object of
// deploy/base with server-side apply — as a dry run, since nothing runs here and the
// webhook configurations would point at a Service with no pods — and then, for
// real, the webhook's ServiceAccount and RBAC, and asks the API server what they
// allow.
func TestDeployManifestsAreAcceptedAndLeastPrivileged(t *testing.T) {
	ctx := t.Context()
	base := "../../deploy/base"
	var kustomization struct{ Resources []string }
	data, err := os.ReadFile(filepath.Join(base, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &kustomization); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range kustomization.Resources {
		paths = append(paths, filepath.Join(base, r))
	}
	docs, err := check.Load(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The configMapGenerator's ConfigMap, from the shipped policy file.
	policyYAML, err := os.ReadFile(filepath.Join(base, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := yaml.Marshal(corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "bulwark-policy", Namespace: "bulwark-system"}, Data: map[string]string{"policy.yaml": string(policyYAML)}})
	if err != nil {
		t.Fatal(err)
	}
	cmJSON, err := yaml.YAMLToJSON(cm)
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, check.Document{File: "configMapGenerator", Kind: "ConfigMap", JSON: cmJSON})

	cfg := env.cluster.RESTConfig("admin")
	client := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulwark-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, d := range docs {
		var obj unstructured.Unstructured
		if err := obj.UnmarshalJSON(d.JSON); err != nil {
			t.Fatalf("%s %s: %v", d.File, d.Kind, err)
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", d.File, gvk, err)
		}
		ri := client.Resource(m.Resource)
		var r dynamic.ResourceInterface = ri
		if obj.GetNamespace() != "" {
			r = ri.Namespace(obj.GetNamespace())
		}
		body := d.JSON
		if strings.HasSuffix(obj.GetKind(), "WebhookConfiguration") {
			// The tests' own "bulwark" configurations point at a URL; a dry run of
			// the shipped ones must not merge with them.
			obj.SetName(obj.GetName() + "-as-shipped")
			if body, err = obj.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
		real := obj.GetKind() == "ServiceAccount" || obj.GetKind() == "ClusterRole" || obj.GetKind() == "ClusterRoleBinding"
		opts := metav1.PatchOptions{FieldManager: "bulwark-e2e", Force: ptrTo(true)}
		if !real {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := r.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts); err != nil {
			t.Errorf("%s: %s %s rejected by the API server: %v", d.File, obj.GetKind(), obj.GetName(), err)
		}
		kinds[obj.GetKind()] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ConfigMap"} {
		if !kinds[k] {
			t.Errorf("deploy/base has no %s", k)
		}
	}

	sa := "system:serviceaccount:bulwark-system:bulwark-webhook"
	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:bulwark-system", "system:authenticated"}
	for _, c := range []struct {
		user   string
		groups []string
		attrs  authorizationv1.ResourceAttributes
		want   bool
	}{
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "team-a"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "other"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "team-a"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "namespaces"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "team-a"}, true},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "update", Resource: "configmaps", Namespace: "bulwark-system", Name: "bulwark-policy"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "exempt", Group: "bulwark.dev", Resource: "exemptions", Namespace: "team-a", Name: "digest"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: c.user, Groups: c.groups, ResourceAttributes: &c.attrs}}
		res, err := env.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != c.want {
			t.Errorf("%s may %s %s/%s in %q (name %q): %v, want %v", c.user, c.attrs.Verb, c.attrs.Group, c.attrs.Resource, c.attrs.Namespace, c.attrs.Name, res.Status.Allowed, c.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
