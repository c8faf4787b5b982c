package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/bulwark-dev/bulwark/pkg/check"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
	"github.com/bulwark-dev/bulwark/tests/tools"
)

const chartDir = "../../deploy/helm/bulwark"

// The third-party kinds the chart renders are checked against their real CRDs,
// fetched from the Go module proxy at these versions (the newest each proxy served
// when pinned; the files are the controller-gen output both projects release from).
const (
	certManagerModule         = "github.com/cert-manager/cert-manager"
	certManagerVersion        = "v1.21.2"
	prometheusOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	prometheusOperatorVersion = "v0.89.0"
)

// thirdPartyCRDs are the CRD files, by module, that the chart's objects need.
var thirdPartyCRDs = []struct{ module, version, file string }{
	{certManagerModule, certManagerVersion, "deploy/crds/cert-manager.io_issuers.yaml"},
	{certManagerModule, certManagerVersion, "deploy/crds/cert-manager.io_certificates.yaml"},
	{prometheusOperatorModule, prometheusOperatorVersion, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
}

// tool returns the path of helm or kustomize (tests/tools).
func tool(t *testing.T, name string) string { return tools.Path(t, name) }

func runTool(t *testing.T, bin string, args ...string) ([]byte, error) {
	return tools.Run(t.Context(), bin, args...)
}

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

// TestHelmAndKustomizeRenderTheSameSafeObjects renders the chart (defaults, and
// non-default values in each certificate mode) and the kustomize base with helm and
// kustomize built from the module proxy, lints the chart, checks its schema refuses
// unsafe values, compares the objects that matter between the two renderings,
// checks what each certificate mode and the scanner render, and has the real API
// server accept every rendered object (server-side apply, dry run), cert-manager's
// and the Prometheus Operator's kinds against their real CRDs.
func TestHelmAndKustomizeRenderTheSameSafeObjects(t *testing.T) {
	helm, kustomize := tool(t, "helm"), tool(t, "kustomize")
	caBundle := base64.StdEncoding.EncodeToString(env.cluster.CA.CertPEM)
	for _, values := range [][]string{nil, {"certificates.mode=cert-manager"}, {"certificates.mode=secret", "webhook.caBundle=" + caBundle}} {
		args := []string{"lint", "--strict", chartDir}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		if out, err := runTool(t, helm, args...); err != nil {
			t.Fatalf("helm lint %v: %v\n%s", values, err, out)
		}
	}
	template := func(values ...string) ([]byte, error) {
		args := []string{"template", "bulwark", chartDir, "--namespace", "bulwark-system", "--include-crds"}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		return runTool(t, helm, args...)
	}
	for name, v := range map[string][]string{
		"timeout above 10 s":                       {"webhook.timeoutSeconds=30"},
		"replicas not a number":                    {"replicaCount=many"},
		"digest not sha256":                        {"image.digest=md5:abc"},
		"unknown value":                            {"failurePolicy=Ignore"},
		"namespace not a DNS name":                 {"webhook.excludeNamespaces[0]=Not_A_Name"},
		"unknown certificate mode":                 {"certificates.mode=vault"},
		"secret mode without a CA bundle":          {"certificates.mode=secret"},
		"a CA bundle the webhook would overwrite":  {"webhook.caBundle=" + caBundle},
		"a CA bundle cert-manager would overwrite": {"certificates.mode=cert-manager", "webhook.caBundle=" + caBundle},
		"certificate lifetime not a duration":      {"certificates.mode=cert-manager", "certificates.certManager.duration=90d"},
		"scanner digest not sha256":                {"scanner.image.digest=md5:abc"},
		"no scanner replica":                       {"scanner.replicaCount=0"},
		"database over plain http":                 {"scanner.db.updateURL=http://mirror.internal/databases"},
		"air-gapped without a database":            {"scanner.db.updateURL="},
		"a download and a database claim":          {"scanner.db.existingClaim=grype-db"},
		"size not a quantity":                      {"scanner.tmpSizeLimit=lots"},
	} {
		if _, err := template(v...); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: --set %s rendered (err %v); want the schema to refuse it", name, v, err)
		}
	}

	render := func(values ...string) map[string]*unstructured.Unstructured {
		out, err := template(values...)
		if err != nil {
			t.Fatal(err)
		}
		return objects(t, out)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	scannerDigest := "sha256:" + strings.Repeat("cd", 32)
	h := render()
	custom := render("replicaCount=5", "image.digest="+digest, "webhook.excludeNamespaces[0]=tenant-infra",
		"clientAuth.caPEM=-----BEGIN CERTIFICATE-----", "clientAuth.certNames[0]="+cluster.WebhookClientName, "networkPolicy.enabled=false", "webhook.timeoutSeconds=5",
		"certificates.mode=secret", "webhook.caBundle="+caBundle, "tls.secretName=webhook-serving",
		"scanner.replicaCount=3", "scanner.image.digest="+scannerDigest, "scanner.db.updateURL=", "scanner.db.existingClaim=grype-db",
		"serviceMonitor.enabled=true", "serviceMonitor.labels.release=prometheus")
	certManager := render("certificates.mode=cert-manager", "serviceMonitor.enabled=true")
	noScanner := render("scanner.enabled=false")
	base, err := runTool(t, kustomize, "build", "../../deploy/base")
	if err != nil {
		t.Fatal(err)
	}
	k := objects(t, base)

	// The objects that matter agree. The Namespace is the installer's with Helm.
	for key, ko := range k {
		ko, ho := ko.DeepCopy(), h[key]
		if ko.GetKind() == "Namespace" {
			continue
		}
		if ho == nil {
			t.Errorf("%s: in the kustomize base, not in the chart", key)
			continue
		}
		ho = ho.DeepCopy()
		switch ko.GetKind() {
		case "ConfigMap":
			// Both must load as the same policy.
			kp, err1 := policy.Parse([]byte(nestedString(ko, "data", "policy.yaml")))
			hp, err2 := policy.Parse([]byte(nestedString(ho, "data", "policy.yaml")))
			if err1 != nil || err2 != nil || !reflect.DeepEqual(kp, hp) {
				t.Errorf("%s: policies differ: %v %v", key, err1, err2)
			}
		case "Deployment":
			// Helm adds checksum/policy, so that a policy change rolls the pods.
			unstructured.RemoveNestedField(ho.Object, "spec", "template", "metadata", "annotations")
			unstructured.RemoveNestedField(ko.Object, "spec", "template", "metadata", "annotations")
			fallthrough
		default:
			for _, f := range []string{"spec", "rules", "webhooks", "roleRef", "subjects", "automountServiceAccountToken"} {
				if diff := cmp.Diff(ko.Object[f], ho.Object[f]); diff != "" {
					t.Errorf("%s: %s differs between kustomize and Helm (-kustomize +helm):\n%s", key, f, diff)
				}
			}
			if diff := cmp.Diff(ko.GetAnnotations(), ho.GetAnnotations()); ko.GetKind() != "CustomResourceDefinition" && diff != "" {
				t.Errorf("%s: annotations differ between kustomize and Helm (-kustomize +helm):\n%s", key, diff)
			}
		}
	}
	for key := range h {
		if _, ok := k[key]; !ok {
			t.Errorf("%s: in the chart, not in the kustomize base", key)
		}
	}

	// Every Deployment, in every rendering, is restricted and has requests and limits.
	for name, r := range map[string]map[string]*unstructured.Unstructured{"kustomize": k, "helm defaults": h, "helm custom": custom, "helm cert-manager": certManager, "helm without scanner": noScanner} {
		for key, o := range r {
			if o.GetKind() == "Deployment" {
				checkRestricted(t, name+": "+key, o)
			}
		}
	}
	wantResources := map[string]map[string]any{
		"bulwark-webhook": {"requests": map[string]any{"cpu": "100m", "memory": "96Mi"}, "limits": map[string]any{"memory": "256Mi"}},
		"bulwark-scanner": {"requests": map[string]any{"cpu": "250m", "memory": "512Mi"}, "limits": map[string]any{"memory": "1Gi"}},
	}
	for name, want := range wantResources {
		got, _, _ := unstructured.NestedMap(container(t, h, name), "resources")
		if diff := cmp.Diff(map[string]any(want), got); diff != "" {
			t.Errorf("%s: default resources (-want +got):\n%s", name, diff)
		}
	}

	// Certificates: the kustomize base and the chart's default manage their own; the
	// other modes render what they need and nothing of the others.
	checkSelfManaged(t, "kustomize", k)
	checkSelfManaged(t, "helm defaults", h)
	checkCertManager(t, "helm cert-manager", certManager)
	checkSecretMode(t, "helm custom", custom, caBundle, "webhook-serving")

	// The scanner: on by default, pinned and air-gapped on request, off on request.
	checkScanner(t, "kustomize", k, 2, "ghcr.io/bulwark-dev/bulwark-scanner:0.1.0", "https://grype.anchore.io/databases", "")
	checkScanner(t, "helm defaults", h, 2, "ghcr.io/bulwark-dev/bulwark-scanner:0.1.0", "https://grype.anchore.io/databases", "")
	checkScanner(t, "helm custom", custom, 3, "ghcr.io/bulwark-dev/bulwark-scanner@"+scannerDigest, "", "grype-db")
	for key := range noScanner {
		if strings.Contains(key, "bulwark-scanner") {
			t.Errorf("scanner.enabled=false still renders %s", key)
		}
	}

	// Other non-default values take effect.
	d := custom["Deployment/bulwark-system/bulwark-webhook"]
	if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != 5 {
		t.Errorf("replicas %d, want 5", r)
	}
	ctr := container(t, custom, "bulwark-webhook")
	if img := ctr["image"].(string); img != "ghcr.io/bulwark-dev/bulwark-webhook@"+digest {
		t.Errorf("image %s, want pinned by the digest", img)
	}
	if args := stringsOf(ctr["args"]); !slices.Contains(args, "--client-cert-name="+cluster.WebhookClientName) || !slices.Contains(args, "--client-ca-file=/etc/bulwark/client-ca/ca.crt") {
		t.Errorf("args %v lack client authentication", args)
	}
	for key := range custom {
		if strings.HasPrefix(key, "NetworkPolicy/") {
			t.Errorf("networkPolicy.enabled=false still renders %s", key)
		}
	}
	vwc := custom["ValidatingWebhookConfiguration//bulwark"]
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	excluded, _, _ := unstructured.NestedSlice(hooks[0].(map[string]any), "namespaceSelector", "matchExpressions")
	if got := stringsOf(excluded[0].(map[string]any)["values"]); !slices.Equal(got, []string{"kube-system", "bulwark-system", "tenant-infra"}) {
		t.Errorf("excluded namespaces %v", got)
	}
	for _, r := range []map[string]*unstructured.Unstructured{custom, certManager} {
		for _, c := range []struct{ name, port string }{{"bulwark-webhook", "https"}, {"bulwark-scanner", "metrics"}} {
			sm := r["ServiceMonitor/bulwark-system/"+c.name]
			if sm == nil {
				t.Errorf("serviceMonitor.enabled=true renders no ServiceMonitor %s", c.name)
				continue
			}
			svc := r["Service/bulwark-system/"+c.name]
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			svcSel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
			if !reflect.DeepEqual(sel, svc.GetLabels()) || !reflect.DeepEqual(sel, svcSel) {
				t.Errorf("ServiceMonitor %s selects %v; Service labels %v, pods %v", c.name, sel, svc.GetLabels(), svcSel)
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(eps) != 1 || eps[0].(map[string]any)["port"] != c.port {
				t.Errorf("ServiceMonitor %s endpoints %v, want port %s", c.name, eps, c.port)
			}
		}
	}
	if l := custom["ServiceMonitor/bulwark-system/bulwark-scanner"].GetLabels(); l["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v, want serviceMonitor.labels", l)
	}
	for key := range h {
		if strings.HasPrefix(key, "ServiceMonitor/") {
			t.Errorf("serviceMonitor.enabled defaults to false, yet %s is rendered", key)
		}
	}

	// The API server accepts every rendered object; cert-manager's and the
	// Prometheus Operator's against their own CRDs.
	installThirdPartyCRDs(t)
	for name, rendering := range map[string]map[string]*unstructured.Unstructured{"kustomize": k, "helm defaults": h, "helm custom": custom,
		"helm cert-manager": certManager, "helm without scanner": noScanner} {
		applyAll(t, name, rendering, func(string) bool { return false })
	}
}

// checkRestricted fails unless the Deployment's pods meet the restricted Pod Security
// Standard plus a read-only root file system, and every container has CPU and memory
// requests and a memory limit.
func checkRestricted(t *testing.T, label string, d *unstructured.Unstructured) {
	t.Helper()
	pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	want := map[string]any{"runAsNonRoot": true, "runAsUser": int64(65532), "runAsGroup": int64(65532), "seccompProfile": map[string]any{"type": "RuntimeDefault"}}
	if diff := cmp.Diff(want, pod["securityContext"]); diff != "" {
		t.Errorf("%s: pod securityContext (-want +got):\n%s", label, diff)
	}
	containers, _, _ := unstructured.NestedSlice(pod, "containers")
	for _, c := range containers {
		c := c.(map[string]any)
		want := map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}}}
		if diff := cmp.Diff(want, c["securityContext"]); diff != "" {
			t.Errorf("%s: container %s securityContext (-want +got):\n%s", label, c["name"], diff)
		}
		for _, f := range [][]string{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
			if v, _, _ := unstructured.NestedString(c, append([]string{"resources"}, f...)...); v == "" {
				t.Errorf("%s: container %s has no resources.%s", label, c["name"], strings.Join(f, "."))
			}
		}
	}
	if pod["automountServiceAccountToken"] == false || pod["serviceAccountName"] == nil {
		t.Errorf("%s: pods run as no service account of their own", label)
	}
}

// checkSelfManaged: the webhook makes its own certificate in the Secret it is told,
// for the Service the webhook configurations call, and injects the CA into the
// configurations it is told — the ones rendered. No Secret is mounted, no caBundle
// or CA injection is rendered.
func checkSelfManaged(t *testing.T, label string, objs map[string]*unstructured.Unstructured) {
	t.Helper()
	ctr := container(t, objs, "bulwark-webhook")
	args := stringsOf(ctr["args"])
	svc, cfgNames := calledService(t, objs)
	for _, want := range []string{"--cert-secret=bulwark-webhook-tls", "--cert-service=" + svc, "--webhook-config-name=" + cfgNames} {
		if !slices.Contains(args, want) {
			t.Errorf("%s: self-managed certificates: args %v lack %s", label, args, want)
		}
	}
	if _, ok := objs["Service/bulwark-system/"+svc]; !ok {
		t.Errorf("%s: no Service %s", label, svc)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--tls-") }) {
		t.Errorf("%s: self-managed certificates: args %v name certificate files", label, args)
	}
	env := map[string]string{}
	for _, e := range ctr["env"].([]any) {
		e := e.(map[string]any)
		env[e["name"].(string)], _, _ = unstructured.NestedString(e, "valueFrom", "fieldRef", "fieldPath")
	}
	if diff := cmp.Diff(map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}, env); diff != "" {
		t.Errorf("%s: self-managed certificates: env (-want +got):\n%s", label, diff)
	}
	for name, v := range podVolumes(t, objs, "bulwark-webhook") {
		if _, ok := v["secret"]; ok && name != "grant" {
			t.Errorf("%s: self-managed certificates: the webhook mounts Secret volume %s", label, name)
		}
	}
	checkCABundles(t, label, objs, "", "")
	checkNoCertManager(t, label, objs)
}

// checkCertManager: cert-manager's self-signed Issuer makes a CA, whose Issuer signs
// the serving certificate for the Service the configurations call, into the Secret
// the webhook reads its certificate files from; the CA injector fills the caBundle.
func checkCertManager(t *testing.T, label string, objs map[string]*unstructured.Unstructured) {
	t.Helper()
	get := func(key string) *unstructured.Unstructured {
		o := objs[key]
		if o == nil {
			t.Fatalf("%s: no %s", label, key)
		}
		return o
	}
	selfSigned := get("Issuer/bulwark-system/bulwark-selfsigned")
	ca := get("Certificate/bulwark-system/bulwark-ca")
	caIssuer := get("Issuer/bulwark-system/bulwark-ca")
	serving := get("Certificate/bulwark-system/bulwark-webhook")
	if _, ok, _ := unstructured.NestedMap(selfSigned.Object, "spec", "selfSigned"); !ok {
		t.Errorf("%s: Issuer %s is not selfSigned", label, selfSigned.GetName())
	}
	if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); !isCA || nestedString(ca, "spec", "issuerRef", "name") != selfSigned.GetName() {
		t.Errorf("%s: CA Certificate %v, want isCA issued by %s", label, ca.Object["spec"], selfSigned.GetName())
	}
	if got, want := nestedString(caIssuer, "spec", "ca", "secretName"), nestedString(ca, "spec", "secretName"); got != want || got == "" {
		t.Errorf("%s: CA Issuer reads Secret %q, the CA Certificate writes %q", label, got, want)
	}
	if got := nestedString(serving, "spec", "issuerRef", "name"); got != caIssuer.GetName() {
		t.Errorf("%s: serving Certificate issued by %q, want %s", label, got, caIssuer.GetName())
	}
	svc, _ := calledService(t, objs)
	dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
	if !slices.Contains(dns, svc+".bulwark-system.svc") {
		t.Errorf("%s: serving Certificate dnsNames %v lack %s.bulwark-system.svc, the name the API server verifies", label, dns, svc)
	}
	checkCertificateFiles(t, label, objs, nestedString(serving, "spec", "secretName"))
	checkCABundles(t, label, objs, "", "bulwark-system/"+serving.GetName())
}

// checkSecretMode: the installer's Secret is mounted and read, the installer's CA
// bundle is in the configurations, and nothing manages certificates.
func checkSecretMode(t *testing.T, label string, objs map[string]*unstructured.Unstructured, caBundle, secret string) {
	t.Helper()
	checkCertificateFiles(t, label, objs, secret)
	checkCABundles(t, label, objs, caBundle, "")
	checkNoCertManager(t, label, objs)
}

// checkCertificateFiles: the webhook reads --tls-cert-file and --tls-key-file from
// the Secret secret, mounted as a whole (so that renewals reach the files).
func checkCertificateFiles(t *testing.T, label string, objs map[string]*unstructured.Unstructured, secret string) {
	t.Helper()
	ctr := container(t, objs, "bulwark-webhook")
	var dir string
	for name, v := range podVolumes(t, objs, "bulwark-webhook") {
		if s, _, _ := unstructured.NestedString(v, "secret", "secretName"); s == secret {
			for _, m := range ctr["volumeMounts"].([]any) {
				if m := m.(map[string]any); m["name"] == name && m["subPath"] == nil {
					dir = m["mountPath"].(string)
				}
			}
		}
	}
	if dir == "" {
		t.Fatalf("%s: the webhook does not mount Secret %s", label, secret)
	}
	args := stringsOf(ctr["args"])
	for _, want := range []string{"--tls-cert-file=" + dir + "/tls.crt", "--tls-key-file=" + dir + "/tls.key"} {
		if !slices.Contains(args, want) {
			t.Errorf("%s: args %v lack %s", label, args, want)
		}
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--cert-secret") }) {
		t.Errorf("%s: args %v also ask for self-managed certificates", label, args)
	}
}

// checkCABundles: both webhook configurations carry caBundle (none if empty) and the
// annotation cert-manager.io/inject-ca-from: injectFrom (none if empty).
func checkCABundles(t *testing.T, label string, objs map[string]*unstructured.Unstructured, caBundle, injectFrom string) {
	t.Helper()
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		o := objs[kind+"//bulwark"]
		if got := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != injectFrom {
			t.Errorf("%s: %s annotated cert-manager.io/inject-ca-from %q, want %q", label, kind, got, injectFrom)
		}
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, w := range hooks {
			if got, _, _ := unstructured.NestedString(w.(map[string]any), "clientConfig", "caBundle"); got != caBundle {
				t.Errorf("%s: %s caBundle %.20q, want %.20q", label, kind, got, caBundle)
			}
		}
	}
}

func checkNoCertManager(t *testing.T, label string, objs map[string]*unstructured.Unstructured) {
	t.Helper()
	for key, o := range objs {
		if o.GroupVersionKind().Group == "cert-manager.io" {
			t.Errorf("%s: renders %s", label, key)
		}
	}
}

// calledService returns the Service both webhook configurations call and their
// common name.
func calledService(t *testing.T, objs map[string]*unstructured.Unstructured) (service, configName string) {
	t.Helper()
	mwc, vwc := objs["MutatingWebhookConfiguration//bulwark"], objs["ValidatingWebhookConfiguration//bulwark"]
	if mwc == nil || vwc == nil {
		t.Fatal("no webhook configurations named bulwark")
	}
	for _, o := range []*unstructured.Unstructured{mwc, vwc} {
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, w := range hooks {
			s, _, _ := unstructured.NestedString(w.(map[string]any), "clientConfig", "service", "name")
			if service != "" && s != service {
				t.Fatalf("the webhooks call Services %s and %s", service, s)
			}
			service = s
		}
	}
	return service, mwc.GetName()
}

// checkScanner: the scanner Deployment runs replicas workers of image with its own
// service account, downloading its database from updateURL into an emptyDir, or
// (updateURL empty) reading it from the claim, read-only.
func checkScanner(t *testing.T, label string, objs map[string]*unstructured.Unstructured, replicas int64, image, updateURL, claim string) {
	t.Helper()
	for _, key := range []string{"ServiceAccount/bulwark-system/bulwark-scanner", "ClusterRole//bulwark-scanner", "ClusterRoleBinding//bulwark-scanner", "Service/bulwark-system/bulwark-scanner"} {
		if objs[key] == nil {
			t.Errorf("%s: no %s", label, key)
		}
	}
	d := objs["Deployment/bulwark-system/bulwark-scanner"]
	if d == nil {
		t.Fatalf("%s: no scanner Deployment", label)
	}
	if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != replicas {
		t.Errorf("%s: scanner replicas %d, want %d", label, r, replicas)
	}
	if sa := nestedString(d, "spec", "template", "spec", "serviceAccountName"); sa != "bulwark-scanner" {
		t.Errorf("%s: scanner runs as %q, want bulwark-scanner", label, sa)
	}
	ctr := container(t, objs, "bulwark-scanner")
	if ctr["image"] != image {
		t.Errorf("%s: scanner image %v, want %s", label, ctr["image"], image)
	}
	wantArgs := []string{"--policy=/etc/bulwark/policy/policy.yaml", "--db-dir=/var/lib/bulwark/db", "--db-update-url=" + updateURL, "--metrics-bind-address=:9090"}
	if diff := cmp.Diff(wantArgs, stringsOf(ctr["args"])); diff != "" {
		t.Errorf("%s: scanner args (-want +got):\n%s", label, diff)
	}
	mounts := map[string]map[string]any{}
	for _, m := range ctr["volumeMounts"].([]any) {
		m := m.(map[string]any)
		mounts[m["mountPath"].(string)] = m
	}
	vols := podVolumes(t, objs, "bulwark-scanner")
	volumeAt := func(path string) map[string]any {
		m := mounts[path]
		if m == nil {
			t.Fatalf("%s: scanner mounts nothing at %s", label, path)
		}
		return vols[m["name"].(string)]
	}
	db, tmp := volumeAt("/var/lib/bulwark/db"), volumeAt("/tmp")
	if limit, _, _ := unstructured.NestedString(tmp, "emptyDir", "sizeLimit"); limit == "" {
		t.Errorf("%s: /tmp is %v, want an emptyDir with a sizeLimit", label, tmp)
	}
	if claim == "" {
		if limit, _, _ := unstructured.NestedString(db, "emptyDir", "sizeLimit"); limit == "" {
			t.Errorf("%s: the database volume is %v, want an emptyDir with a sizeLimit", label, db)
		}
	} else {
		got, _, _ := unstructured.NestedMap(db, "persistentVolumeClaim")
		if diff := cmp.Diff(map[string]any{"claimName": claim, "readOnly": true}, got); diff != "" || mounts["/var/lib/bulwark/db"]["readOnly"] != true {
			t.Errorf("%s: the database volume is %v, want claim %s mounted read-only", label, db, claim)
		}
	}
	if np := objs["NetworkPolicy/bulwark-system/bulwark-scanner"]; np != nil {
		ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		want := []any{map[string]any{"ports": []any{map[string]any{"port": int64(9090), "protocol": "TCP"}}}}
		if diff := cmp.Diff(want, ingress); diff != "" {
			t.Errorf("%s: scanner ingress (-want +got):\n%s", label, diff)
		}
	}
}

// container returns the first container of the Deployment named name.
func container(t *testing.T, objs map[string]*unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	d := objs["Deployment/bulwark-system/"+name]
	if d == nil {
		t.Fatalf("no Deployment %s", name)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	return containers[0].(map[string]any)
}

// podVolumes returns the volumes of the Deployment named name, by name.
func podVolumes(t *testing.T, objs map[string]*unstructured.Unstructured, name string) map[string]map[string]any {
	t.Helper()
	vols, _, _ := unstructured.NestedSlice(objs["Deployment/bulwark-system/"+name].Object, "spec", "template", "spec", "volumes")
	out := map[string]map[string]any{}
	for _, v := range vols {
		v := v.(map[string]any)
		out[v["name"].(string)] = v
	}
	return out
}

// installThirdPartyCRDs downloads the pinned modules with `go mod download` (the Go
// module proxy; cached in the module cache after the first run) and installs
// thirdPartyCRDs for real: a CRD applied as a dry run defines no kind.
func installThirdPartyCRDs(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	client := dynamic.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Admin))
	crds := client.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	dirs := map[string]string{}
	var installed []*unstructured.Unstructured
	for _, c := range thirdPartyCRDs {
		mod := c.module + "@" + c.version
		if dirs[mod] == "" {
			cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
			cmd.Dir = t.TempDir() // outside bulwark's module: its go.mod stays as it is
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go mod download %s: %v\n%s%s", mod, err, out, stderr.String())
			}
			var info struct{ Dir, Error string }
			if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
				t.Fatalf("go mod download %s: %v %s", mod, err, info.Error)
			}
			dirs[mod] = info.Dir
		}
		file := filepath.Join(dirs[mod], c.file)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		objs := objects(t, data)
		if len(objs) != 1 {
			t.Fatalf("%s: %d objects, want one CRD", file, len(objs))
		}
		for _, crd := range objs {
			body, err := crd.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := crds.Patch(ctx, crd.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "bulwark-e2e", Force: ptrTo(true)}); err != nil {
				t.Fatalf("%s: CRD %s refused: %v", mod, crd.GetName(), err)
			}
			installed = append(installed, crd)
		}
	}
	disco := discovery.NewDiscoveryClientForConfigOrDie(env.cluster.RESTConfig(cluster.Admin))
	for _, crd := range installed {
		group := nestedString(crd, "spec", "group")
		plural := nestedString(crd, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		gv := group + "/" + versions[0].(map[string]any)["name"].(string)
		// Established, and served by discovery, which the apply's REST mapper reads.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			list, err := disco.ServerResourcesForGroupVersion(gv)
			if err != nil {
				return false, nil
			}
			return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }), nil
		})
		if err != nil {
			t.Fatalf("%s/%s never served: %v", gv, plural, err)
		}
	}
}

func nestedString(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// stringsOf returns a []any of strings (an unstructured list) as []string.
func stringsOf(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		str, _ := s.(string)
		out = append(out, str)
	}
	return out
}
