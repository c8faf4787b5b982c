package e2e

import (
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

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// TestDeployManifestsAreAcceptedAndLeastPrivileged applies every object of
// `kustomize build deploy/base` with server-side apply — as a dry run, since nothing
// runs here and the webhook configurations would point at a Service with no pods —
// except the webhook's ServiceAccount and RBAC, applied for real, and asks the API
// server what they allow.
func TestDeployManifestsAreAcceptedAndLeastPrivileged(t *testing.T) {
	ctx := t.Context()
	base, err := runTool(t, tool(t, "kustomize"), "build", "../../deploy/base")
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, base)
	applyAll(t, "kustomize", objs, func(kind string) bool {
		return kind == "ServiceAccount" || kind == "ClusterRole" || kind == "ClusterRoleBinding"
	})
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ConfigMap", "CustomResourceDefinition"} {
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
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: "team-a"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets"}, false},
		// A pod's pull secrets are read by name, in the pod's namespace.
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "team-a", Name: "pull"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Group: "bulwark.dev", Resource: "imagescans"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "update", Group: "bulwark.dev", Resource: "imagescans", Subresource: "status"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "delete", Group: "bulwark.dev", Resource: "imagescans"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "other"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "team-a"}, false},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "namespaces"}, true},
		{sa, saGroups, authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "team-a"}, true},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "update", Resource: "configmaps", Namespace: "bulwark-system", Name: "bulwark-policy"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "exempt", Group: "bulwark.dev", Resource: "exemptions", Namespace: "team-a", Name: "digest"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "create", Group: "bulwark.dev", Resource: "imagescans"}, false},
		{"dev", []string{"developers", "system:authenticated"}, authorizationv1.ResourceAttributes{Verb: "update", Group: "bulwark.dev", Resource: "imagescans", Subresource: "status"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: c.user, Groups: c.groups, ResourceAttributes: &c.attrs}}
		res, err := env.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != c.want {
			t.Errorf("%s may %s %s/%s/%s in %q (name %q): %v, want %v", c.user, c.attrs.Verb, c.attrs.Group, c.attrs.Resource, c.attrs.Subresource, c.attrs.Namespace, c.attrs.Name, res.Status.Allowed, c.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// applyAll applies objs as admin with server-side apply — for real where real(kind),
// as a dry run otherwise — and reports every object the API server rejects. Webhook
// configurations are renamed so that they never merge with the tests' own.
func applyAll(t *testing.T, label string, objs map[string]*unstructured.Unstructured, real func(kind string) bool) {
	t.Helper()
	ctx := t.Context()
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulwark-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg := env.cluster.RESTConfig(cluster.Admin)
	client := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	for key, o := range objs {
		o = o.DeepCopy()
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
			o.SetName(o.GetName() + "-as-rendered")
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", label, key, err)
			continue
		}
		var r dynamic.ResourceInterface = client.Resource(m.Resource)
		if o.GetNamespace() != "" {
			r = client.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		body, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		opts := metav1.PatchOptions{FieldManager: "bulwark-e2e", Force: ptrTo(true)}
		if !real(o.GetKind()) {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := r.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts); err != nil {
			t.Errorf("%s: %s rejected by the API server: %v", label, key, err)
		}
	}
}
