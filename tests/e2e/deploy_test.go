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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// TestDeployManifestsAreAcceptedAndLeastPrivileged applies every object of
// `kustomize build deploy/base` with server-side apply — as a dry run, since nothing
// runs here and the webhook configurations would point at a Service with no pods —
// except the service accounts and RBAC, applied for real, and asks the API server
// what they allow the webhook, the scanner and a developer.
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
	for _, key := range []string{
		"Namespace//bulwark-system", "CustomResourceDefinition//imagescans.bulwark.dev", "ConfigMap/bulwark-system/bulwark-policy",
		"ServiceAccount/bulwark-system/bulwark-webhook", "ClusterRole//bulwark-webhook", "ClusterRoleBinding//bulwark-webhook",
		"Deployment/bulwark-system/bulwark-webhook", "PodDisruptionBudget/bulwark-system/bulwark-webhook",
		"Service/bulwark-system/bulwark-webhook", "NetworkPolicy/bulwark-system/bulwark-webhook",
		"ServiceAccount/bulwark-system/bulwark-scanner", "ClusterRole//bulwark-scanner", "ClusterRoleBinding//bulwark-scanner",
		"Deployment/bulwark-system/bulwark-scanner", "Service/bulwark-system/bulwark-scanner", "NetworkPolicy/bulwark-system/bulwark-scanner",
		"MutatingWebhookConfiguration//bulwark", "ValidatingWebhookConfiguration//bulwark",
	} {
		if objs[key] == nil {
			t.Errorf("deploy/base has no %s", key)
		}
	}

	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:bulwark-system", "system:authenticated"}
	webhook := identity{"system:serviceaccount:bulwark-system:bulwark-webhook", saGroups}
	scanner := identity{"system:serviceaccount:bulwark-system:bulwark-scanner", saGroups}
	dev := identity{"dev", []string{"developers", "system:authenticated"}}
	scanStatus := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "bulwark.dev", Resource: "imagescans", Subresource: "status", Name: "sha256-0"}
	}
	scans := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "bulwark.dev", Resource: "imagescans"}
	}
	for _, c := range []struct {
		who   identity
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		// The webhook: no Secret listing, no status writes, no pods; it creates
		// ImageScans and reads them.
		{webhook, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: "team-a"}, false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets"}, false},
		// A pod's pull secrets are read by name, in the pod's namespace.
		{webhook, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "team-a", Name: "pull"}, true},
		{webhook, scans("create"), true},
		{webhook, scans("watch"), true},
		{webhook, scanStatus("update"), false},
		{webhook, scanStatus("patch"), false},
		{webhook, scans("update"), false},
		{webhook, scans("delete"), false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "other"}, false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "team-a"}, false},
		{webhook, authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, true},
		{webhook, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "namespaces"}, true},
		{webhook, authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "team-a"}, true},
		// The scanner: claims ImageScans and writes their status, never creates or
		// deletes one; pull secrets by name only; pods listed to warn workloads.
		{scanner, scanStatus("update"), true},
		{scanner, scanStatus("patch"), true},
		{scanner, scans("watch"), true},
		{scanner, scans("create"), false},
		{scanner, scans("update"), false},
		{scanner, scans("patch"), false},
		{scanner, scans("delete"), false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "team-a", Name: "pull"}, true},
		{scanner, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: "team-a"}, false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets", Namespace: "team-a"}, false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, true},
		{scanner, authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "team-a"}, false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "team-a"}, true},
		{scanner, authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, false},
		{scanner, authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		// A developer: neither bulwark's configuration nor its ImageScans.
		{dev, authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		{dev, authorizationv1.ResourceAttributes{Verb: "update", Resource: "configmaps", Namespace: "bulwark-system", Name: "bulwark-policy"}, false},
		{dev, authorizationv1.ResourceAttributes{Verb: "exempt", Group: "bulwark.dev", Resource: "exemptions", Namespace: "team-a", Name: "digest"}, false},
		{dev, scans("create"), false},
		{dev, scanStatus("update"), false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: c.who.user, Groups: c.who.groups, ResourceAttributes: &c.attrs}}
		res, err := env.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != c.want {
			t.Errorf("%s may %s %s/%s/%s in %q (name %q): %v, want %v", c.who.user, c.attrs.Verb, c.attrs.Group, c.attrs.Resource, c.attrs.Subresource, c.attrs.Namespace, c.attrs.Name, res.Status.Allowed, c.want)
		}
	}
}

type identity struct {
	user   string
	groups []string
}

func ptrTo[T any](v T) *T { return &v }

// applyAll applies objs as admin with server-side apply — for real where real(kind),
// as a dry run otherwise — with strict field validation, and reports every object
// the API server rejects or warns about. bulwark-system carries the Pod Security
// label warn=restricted (warn, not enforce: other tests start unrestricted pods
// there), so a pod template that would violate the restricted standard of the
// shipped Namespace is reported too. Webhook configurations are renamed so that
// they never merge with the tests' own.
func applyAll(t *testing.T, label string, objs map[string]*unstructured.Unstructured, real func(kind string) bool) {
	t.Helper()
	ctx := t.Context()
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulwark-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pss := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/warn":"restricted","pod-security.kubernetes.io/warn-version":"latest"}}}`)
	if _, err := env.admin.CoreV1().Namespaces().Patch(ctx, "bulwark-system", types.MergePatchType, pss, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.cluster.RESTConfig(cluster.Admin))
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
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
		opts := metav1.PatchOptions{FieldManager: "bulwark-e2e", Force: ptrTo(true), FieldValidation: metav1.FieldValidationStrict}
		if !real(o.GetKind()) {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		before := len(warnings.all())
		if _, err := r.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts); err != nil {
			t.Errorf("%s: %s rejected by the API server: %v", label, key, err)
		}
		if w := warnings.all()[before:]; len(w) > 0 {
			t.Errorf("%s: %s: the API server warns: %q", label, key, w)
		}
	}
}
