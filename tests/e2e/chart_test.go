package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bulwark-dev/bulwark/pkg/check"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

const chartDir = "../../deploy/helm/bulwark"

// tool runs hack/build-tools.sh (quick once cached) and returns the path of name.
func tool(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", "../../hack/build-tools.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build helm and kustomize: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), name)
}

func runTool(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &toolError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type toolError struct {
	err    error
	stderr string
}

func (e *toolError) Error() string { return e.err.Error() + ": " + e.stderr }

// objects parses rendered YAML into objects keyed by kind/namespace/name.
func objects(t *testing.T, rendered []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "rendered.yaml")
	if err := os.WriteFile(f, rendered, 0o644); err != nil {
		t.Fatal(err)
	}
	docs, err := check.Load([]string{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	for _, d := range docs {
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(d.JSON); err != nil {
			t.Fatal(err)
		}
		out[u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName()] = &u
	}
	return out
}

// TestHelmAndKustomizeRenderTheSameSafeObjects renders the chart (defaults and
// non-default values) and the kustomize base with helm and kustomize built from the
// module proxy, lints the chart, checks its schema refuses unsafe values, compares
// the objects that matter between the two renderings, and has the real API server
// accept every rendered object (server-side apply, dry run).
func TestHelmAndKustomizeRenderTheSameSafeObjects(t *testing.T) {
	helm, kustomize := tool(t, "helm"), tool(t, "kustomize")
	if out, err := runTool(t, helm, "lint", "--strict", chartDir); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	template := func(values ...string) ([]byte, error) {
		args := []string{"template", "bulwark", chartDir, "--namespace", "bulwark-system", "--include-crds"}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		return runTool(t, helm, args...)
	}
	for name, v := range map[string]string{
		"timeout above 10 s":       "webhook.timeoutSeconds=30",
		"replicas not a number":    "replicaCount=many",
		"digest not sha256":        "image.digest=md5:abc",
		"unknown value":            "failurePolicy=Ignore",
		"namespace not a DNS name": "webhook.excludeNamespaces[0]=Not_A_Name",
	} {
		if _, err := template(v); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: --set %s rendered (err %v); want the schema to refuse it", name, v, err)
		}
	}

	defaults, err := template()
	if err != nil {
		t.Fatal(err)
	}
	custom, err := template("replicaCount=5", "image.digest=sha256:"+strings.Repeat("ab", 32), "webhook.excludeNamespaces[0]=tenant-infra",
		"clientAuth.caPEM=-----BEGIN CERTIFICATE-----", "clientAuth.certNames[0]="+cluster.WebhookClientName, "networkPolicy.enabled=false", "webhook.timeoutSeconds=5")
	if err != nil {
		t.Fatal(err)
	}
	base, err := runTool(t, kustomize, "build", "../../deploy/base")
	if err != nil {
		t.Fatal(err)
	}
	h, k, c := objects(t, defaults), objects(t, base), objects(t, custom)

	// The objects that matter agree. The Namespace is the installer's with Helm.
	for key, ko := range k {
		if ko.GetKind() == "Namespace" {
			continue
		}
		ho, ok := h[key]
		if !ok {
			t.Errorf("%s: in the kustomize base, not in the chart", key)
			continue
		}
		switch ko.GetKind() {
		case "ConfigMap":
			// Both must load as the same policy.
			kp, err1 := policy.Parse([]byte(nestedString(ko, "data", "policy.yaml")))
			hp, err2 := policy.Parse([]byte(nestedString(ho, "data", "policy.yaml")))
			if err1 != nil || err2 != nil || !reflect.DeepEqual(kp, hp) {
				t.Errorf("%s: policies differ: %v %v", key, err1, err2)
			}
		case "Deployment":
			unstructured.RemoveNestedField(ho.Object, "spec", "template", "metadata", "annotations")
			unstructured.RemoveNestedField(ko.Object, "spec", "template", "metadata", "annotations")
			fallthrough
		default:
			for _, f := range []string{"spec", "rules", "webhooks", "roleRef", "subjects"} {
				if diff := cmp.Diff(ko.Object[f], ho.Object[f]); diff != "" {
					t.Errorf("%s: %s differs between kustomize and Helm (-kustomize +helm):\n%s", key, f, diff)
				}
			}
		}
	}
	for key := range h {
		if _, ok := k[key]; !ok {
			t.Errorf("%s: in the chart, not in the kustomize base", key)
		}
	}

	// Non-default values take effect.
	d := c["Deployment/bulwark-system/bulwark-webhook"]
	if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != 5 {
		t.Errorf("replicas %d, want 5", r)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	ctr := containers[0].(map[string]any)
	if img := ctr["image"].(string); !strings.HasSuffix(img, "@sha256:"+strings.Repeat("ab", 32)) {
		t.Errorf("image %s, want pinned by the digest", img)
	}
	if args := ctr["args"].([]any); !contains(args, "--client-cert-name="+cluster.WebhookClientName) || !contains(args, "--client-ca-file=/etc/bulwark/client-ca/ca.crt") {
		t.Errorf("args %v lack client authentication", args)
	}
	if _, ok := c["NetworkPolicy/bulwark-system/bulwark-webhook"]; ok {
		t.Error("networkPolicy.enabled=false still renders a NetworkPolicy")
	}
	vwc := c["ValidatingWebhookConfiguration//bulwark"]
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	excluded, _, _ := unstructured.NestedSlice(hooks[0].(map[string]any), "namespaceSelector", "matchExpressions")
	if got := excluded[0].(map[string]any)["values"].([]any); !contains(got, "kube-system") || !contains(got, "bulwark-system") || !contains(got, "tenant-infra") {
		t.Errorf("excluded namespaces %v", got)
	}

	// The API server accepts every rendered object.
	for name, rendering := range map[string]map[string]*unstructured.Unstructured{"kustomize": k, "helm defaults": h, "helm custom": c} {
		applyAll(t, name, rendering, func(string) bool { return false })
	}
}

func nestedString(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
