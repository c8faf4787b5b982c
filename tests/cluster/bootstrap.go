package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	authorizationv1 "k8s.io/api/authorization/v1"
	"maps"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// DevRole is the ClusterRole bound to Dev in a namespace: pods and workloads only.
const DevRole = "bulwark-dev-workloads"

func (c *Cluster) bootstrap(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	verbs := []string{"create", "get", "list", "watch", "update", "patch", "delete"}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: DevRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"}, Verbs: verbs},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: verbs},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: verbs},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Operators administer every namespace.
	ops := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bulwark-operators-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "bulwark:operators"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, ops, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Operators also annotate namespaces (namespace-wide exemptions).
	nsEditor := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bulwark-namespace-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "update", "patch"}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, nsEditor, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	opsNS := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bulwark-operators-namespaces"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: nsEditor.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "bulwark:operators"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, opsNS, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.applyBulwarkRBAC(ctx, cs); err != nil {
		return err
	}
	if err := c.applyBulwarkCertsRBAC(ctx, cs); err != nil {
		return err
	}
	// "admin" is an aggregated role: the controller manager fills in its rules
	// shortly after start. Operators cannot work before.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		admin, err := cs.RbacV1().ClusterRoles().Get(ctx, "admin", metav1.GetOptions{})
		return err == nil && len(admin.Rules) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("aggregated ClusterRole admin never got its rules: %w", err)
	}
	return c.CreateDevNamespace(ctx, DevNamespace)
}

// BulwarkRBACFile holds the webhook's and the scanner's ClusterRoles, relative to
// the repository root.
const BulwarkRBACFile = "deploy/base/rbac.yaml"

// applyBulwarkRBAC binds the Bulwark user to every ClusterRole of BulwarkRBACFile,
// so tests run with the rights a deployment gives the webhook and the scanner: the
// tests run the webhook with the scanner inside it, and workers as that user.
func (c *Cluster) applyBulwarkRBAC(ctx context.Context, cs kubernetes.Interface) error {
	data, err := os.ReadFile(filepath.Join(repoRoot(), BulwarkRBACFile))
	if err != nil {
		return err
	}
	for _, doc := range splitYAML(data) {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", BulwarkRBACFile, err)
		}
		role, ok := obj.(*rbacv1.ClusterRole)
		if !ok {
			continue
		}
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-dev-user"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: Bulwark}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// repoRoot finds the repository root from this source file's directory or the
// working directory (tests run in their package directory).
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// GrantExempt lets user grant exemptions from checks in namespace ns, with a Role
// and RoleBinding, as an operator would.
func (c *Cluster) GrantExempt(ctx context.Context, ns, user string, checks ...string) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	name := "bulwark-exempt-" + user
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"bulwark.dev"}, Resources: []string{"exemptions"}, Verbs: []string{"exempt"}, ResourceNames: checks}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
	return err
}

// CreateDevNamespace creates namespace ns, lets Dev work in it, and waits until its
// default service account exists (pods cannot be created before).
func (c *Cluster) CreateDevNamespace(ctx context.Context, ns string) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dev-workloads", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: DevRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: Dev}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// InstallWebhook registers bulwark's webhook configurations from manifestFile
// (deploy/base/webhook.yaml), pointing them at baseURL (https://127.0.0.1:port)
// with caBundle instead of the in-cluster Service. Everything else — rules,
// namespace selector, failure policy — is the shipped configuration.
func (c *Cluster) InstallWebhook(ctx context.Context, manifestFile, baseURL string, caBundle []byte) error {
	return c.InstallWebhookAs(ctx, manifestFile, baseURL, caBundle, "", nil)
}

// InstallWebhookAs is InstallWebhook under another configuration name (when name
// is not empty) and limited to namespaces carrying nsLabels (when set), so that a
// second webhook with another policy can run next to the first.
func (c *Cluster) InstallWebhookAs(ctx context.Context, manifestFile, baseURL string, caBundle []byte, name string, nsLabels map[string]string) error {
	mwc, vwc, err := LoadWebhookConfigurations(manifestFile)
	if err != nil {
		return err
	}
	if name != "" {
		mwc.Name, vwc.Name = name, name
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = urlConfig(baseURL, mwc.Webhooks[i].ClientConfig, caBundle)
		mwc.Webhooks[i].NamespaceSelector = withLabels(mwc.Webhooks[i].NamespaceSelector, nsLabels)
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = urlConfig(baseURL, vwc.Webhooks[i].ClientConfig, caBundle)
		vwc.Webhooks[i].NamespaceSelector = withLabels(vwc.Webhooks[i].NamespaceSelector, nsLabels)
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create mutating webhook configuration: %w", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create validating webhook configuration: %w", err)
	}
	return nil
}

// UninstallWebhook removes the configurations InstallWebhook created.
func (c *Cluster) UninstallWebhook(ctx context.Context, name string) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	if err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

func withLabels(sel *metav1.LabelSelector, labels map[string]string) *metav1.LabelSelector {
	if len(labels) == 0 {
		return sel
	}
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	maps.Copy(sel.MatchLabels, labels)
	return sel
}

func urlConfig(baseURL string, in admissionregistrationv1.WebhookClientConfig, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	path := "/"
	if in.Service != nil && in.Service.Path != nil {
		path = *in.Service.Path
	}
	return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + path), CABundle: caBundle}
}

// LoadWebhookConfigurations reads the mutating and validating configurations from a
// multi-document YAML file.
func LoadWebhookConfigurations(path string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	for _, doc := range splitYAML(data) {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			mwc = o
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			vwc = o
		}
	}
	if mwc == nil || vwc == nil {
		return nil, nil, fmt.Errorf("%s: want one mutating and one validating webhook configuration", path)
	}
	return mwc, vwc, nil
}

// splitYAML splits a multi-document YAML file, dropping empty documents.
func splitYAML(data []byte) [][]byte {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if err != nil {
			return docs
		}
		if len(bytes.TrimSpace(doc)) > 0 && !bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			docs = append(docs, doc)
		}
	}
}

// AllowNamespaceEdit lets user update the namespace ns itself (its annotations).
func (c *Cluster) AllowNamespaceEdit(ctx context.Context, ns, user string) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	name := "namespace-edit-" + ns + "-" + user
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, ResourceNames: []string{ns}, Verbs: []string{"get", "update", "patch"}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if _, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return err
	}
	// The API server's RBAC authorizer learns of the binding through its own
	// informer: wait until it answers yes, or the next request may be refused.
	return waitAllowed(ctx, cs, user, authorizationv1.ResourceAttributes{Verb: "patch", Resource: "namespaces", Name: ns})
}

// waitAllowed polls SubjectAccessReviews until user may do attrs.
func waitAllowed(ctx context.Context, cs kubernetes.Interface, user string, attrs authorizationv1.ResourceAttributes) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &attrs}}
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		return err == nil && res.Status.Allowed, nil
	})
}

// CRDFile is bulwark's ImageScan CRD, relative to the repository root.
const CRDFile = "deploy/base/crds/bulwark.dev_imagescans.yaml"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates bulwark's CRDs, as the installer does, and waits until the
// API server serves them.
func (c *Cluster) InstallCRDs(ctx context.Context) error {
	data, err := os.ReadFile(filepath.Join(repoRoot(), CRDFile))
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(c.RESTConfig(Admin))
	if err != nil {
		return err
	}
	var names []string
	for _, doc := range splitYAML(data) {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return fmt.Errorf("%s: %w", CRDFile, err)
		}
		if _, err := client.Resource(crdGVR).Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			crd, err := client.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			established := false
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		return true, nil
	})
}
