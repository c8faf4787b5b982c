// Package deploy holds bulwark's manifests; its test lints them.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-dev/bulwark/tests/tools"
)

const (
	chartDir    = "helm/bulwark"
	serviceName = "bulwark-webhook"
)

// TestWebhookConfigurationsKeepTheSafeDefaults lints the webhook configurations as
// every installation renders them — the kustomize base, and the Helm chart with its
// defaults and with non-default values in each certificate mode — and fails on any
// deviation from the defaults a cluster relies on. helm and kustomize are built from
// the module proxy (hack/build-tools.sh); in -short mode only the base file is read.
func TestWebhookConfigurationsKeepTheSafeDefaults(t *testing.T) {
	caBundle := "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t" // any base64: the lint does not read it
	for _, r := range []struct {
		name      string
		namespace string
		render    func(t *testing.T) []byte
	}{
		{"deploy/base/webhook.yaml", "bulwark-system", func(t *testing.T) []byte { return readFile(t, "base/webhook.yaml") }},
		{"kustomize build deploy/base", "bulwark-system", func(t *testing.T) []byte { return run(t, tool(t, "kustomize"), "build", "base") }},
		{"helm defaults (self-managed certificates)", "bulwark-system", helmTemplate("bulwark-system")},
		{"helm cert-manager, another namespace", "security", helmTemplate("security", "certificates.mode=cert-manager", "serviceMonitor.enabled=true")},
		{"helm secret, shorter timeout, more exclusions", "bulwark-system", helmTemplate("bulwark-system", "certificates.mode=secret", "webhook.caBundle="+caBundle,
			"webhook.timeoutSeconds=5", "webhook.excludeNamespaces[0]=tenant-infra", "scanner.enabled=false", "networkPolicy.enabled=false")},
	} {
		t.Run(r.name, func(t *testing.T) {
			mwc, vwc, err := webhookConfigurations(r.render(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range lintWebhookConfigurations(mwc, vwc, r.namespace) {
				t.Error(p)
			}
		})
	}
}

// TestWebhookLintCatchesEveryDeviation proves the lint: each change below, made to
// the shipped configurations, is reported.
func TestWebhookLintCatchesEveryDeviation(t *testing.T) {
	mwc0, vwc0, err := webhookConfigurations(readFile(t, "base/webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p := lintWebhookConfigurations(mwc0, vwc0, "bulwark-system"); len(p) > 0 {
		t.Fatalf("the shipped configurations fail the lint: %v", p)
	}
	type (
		mwc = admissionregistrationv1.MutatingWebhookConfiguration
		vwc = admissionregistrationv1.ValidatingWebhookConfiguration
	)
	for name, c := range map[string]struct {
		change func(*mwc, *vwc)
		want   string
	}{
		"validating fails open": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		}, "validate.bulwark.dev: failurePolicy Ignore, want Fail"},
		"mutating fails open": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		}, "mutate.bulwark.dev: failurePolicy Ignore, want Fail"},
		"failurePolicy unset": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].FailurePolicy = nil
		}, "validate.bulwark.dev: failurePolicy unset, want Fail"},
		"timeout 30 s": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].TimeoutSeconds = ptr.To[int32](30)
		}, "validate.bulwark.dev: timeoutSeconds 30, want at most 10"},
		"timeout unset": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].TimeoutSeconds = nil
		}, "mutate.bulwark.dev: timeoutSeconds unset, want at most 10"},
		"side effects None": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].SideEffects = ptr.To(admissionregistrationv1.SideEffectClassNone)
		}, "validate.bulwark.dev: sideEffects None, want NoneOnDryRun"},
		"matchPolicy Exact": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].MatchPolicy = ptr.To(admissionregistrationv1.Exact)
		}, "mutate.bulwark.dev: matchPolicy Exact, want Equivalent"},
		"review v1beta1 too": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].AdmissionReviewVersions = []string{"v1", "v1beta1"}
		}, "validate.bulwark.dev: admissionReviewVersions [v1 v1beta1], want [v1]"},
		"no reinvocation": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].ReinvocationPolicy = ptr.To(admissionregistrationv1.NeverReinvocationPolicy)
		}, "mutate.bulwark.dev: reinvocationPolicy Never, want IfNeeded"},
		"kube-system gated": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values = []string{"bulwark-system"}
		}, "validate.bulwark.dev: namespaceSelector excludes map[kubernetes.io/metadata.name:[bulwark-system]]"},
		"own namespace gated": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values = []string{"kube-system"}
		}, "mutate.bulwark.dev: namespaceSelector excludes map[kubernetes.io/metadata.name:[kube-system]]"},
		"label opt-out of a namespace": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].NamespaceSelector.MatchExpressions = append(v.Webhooks[0].NamespaceSelector.MatchExpressions,
				metav1.LabelSelectorRequirement{Key: "bulwark.dev/ignore", Operator: metav1.LabelSelectorOpDoesNotExist})
		}, "validate.bulwark.dev: namespaceSelector excludes map[DoesNotExist bulwark.dev/ignore:[] kubernetes.io/metadata.name:[kube-system bulwark-system]]"},
		"exclusion by a forgeable label": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].NamespaceSelector.MatchExpressions[0].Key = "name"
		}, "validate.bulwark.dev: namespaceSelector excludes map[name:[kube-system bulwark-system]]"},
		"object selector": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bulwark.dev/enforce": "true"}}
		}, "mutate.bulwark.dev: has an objectSelector"},
		"deployments not validated on UPDATE": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].Rules[1].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
		}, "validate.bulwark.dev: no rule for apps/deployments:UPDATE"},
		"ephemeral containers not mutated": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].Rules = slices.Delete(m.Webhooks[0].Rules, 1, 2)
		}, "mutate.bulwark.dev: no rule for /pods/ephemeralcontainers:UPDATE"},
		"another service": {func(_ *mwc, v *vwc) {
			v.Webhooks[0].ClientConfig.Service.Name = "other"
		}, "validate.bulwark.dev: calls service bulwark-system/other path /validate port 443, want bulwark-system/bulwark-webhook"},
		"a URL": {func(m *mwc, _ *vwc) {
			m.Webhooks[0].ClientConfig.URL = ptr.To("https://example.com/mutate")
		}, "mutate.bulwark.dev: calls URL https://example.com/mutate, want the Service"},
		"a second webhook": {func(_ *mwc, v *vwc) {
			v.Webhooks = append(v.Webhooks, *v.Webhooks[0].DeepCopy())
			v.Webhooks[1].Name = "more.bulwark.dev"
		}, "want one webhook named validate.bulwark.dev in the validating configuration, got [validate.bulwark.dev more.bulwark.dev]"},
	} {
		t.Run(name, func(t *testing.T) {
			m, v := mwc0.DeepCopy(), vwc0.DeepCopy()
			c.change(m, v)
			got := lintWebhookConfigurations(m, v, "bulwark-system")
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("lint reported %q, want %q", got, c.want)
			}
		})
	}
}

// lintWebhookConfigurations returns every way mwc and vwc deviate from the defaults a
// cluster relies on: fail closed, a timeout under the API server's, no lockout of
// kube-system or bulwark's own namespace (ns), no opt-out by label, every pod-making
// kind on CREATE and UPDATE, calls to bulwark's own Service.
func lintWebhookConfigurations(mwc *admissionregistrationv1.MutatingWebhookConfiguration, vwc *admissionregistrationv1.ValidatingWebhookConfiguration, ns string) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	type hook struct {
		name       string
		failure    *admissionregistrationv1.FailurePolicyType
		match      *admissionregistrationv1.MatchPolicyType
		side       *admissionregistrationv1.SideEffectClass
		timeout    *int32
		versions   []string
		rules      []admissionregistrationv1.RuleWithOperations
		nsSelector *metav1.LabelSelector
		objSelect  *metav1.LabelSelector
		client     admissionregistrationv1.WebhookClientConfig
		path       string
	}
	var hooks []hook
	var names []string
	for _, w := range mwc.Webhooks {
		names = append(names, w.Name)
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			report("%s: reinvocationPolicy %v, want IfNeeded", w.Name, val(w.ReinvocationPolicy))
		}
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.MatchPolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.Rules, w.NamespaceSelector, w.ObjectSelector, w.ClientConfig, "/mutate"})
	}
	if !slices.Equal(names, []string{"mutate.bulwark.dev"}) {
		report("want one webhook named mutate.bulwark.dev in the mutating configuration, got %v", names)
	}
	names = nil
	for _, w := range vwc.Webhooks {
		names = append(names, w.Name)
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.MatchPolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.Rules, w.NamespaceSelector, w.ObjectSelector, w.ClientConfig, "/validate"})
	}
	if !slices.Equal(names, []string{"validate.bulwark.dev"}) {
		report("want one webhook named validate.bulwark.dev in the validating configuration, got %v", names)
	}
	// What each webhook must see. The mutating one writes or strips exemption grants
	// on workloads and namespaces, and hardens pods on CREATE.
	workloads := []string{"/replicationcontrollers", "/podtemplates", "apps/deployments", "apps/replicasets", "apps/statefulsets", "apps/daemonsets", "batch/jobs", "batch/cronjobs", "/namespaces"}
	var wantMutate, wantValidate []string
	for _, w := range workloads {
		wantMutate = append(wantMutate, w+":CREATE", w+":UPDATE")
	}
	wantMutate = append(wantMutate, "/pods:CREATE", "/pods/ephemeralcontainers:UPDATE")
	wantValidate = append(slices.Clone(wantMutate), "/pods:UPDATE")
	wantRules := map[string][]string{"mutate.bulwark.dev": wantMutate, "validate.bulwark.dev": wantValidate}

	for _, h := range hooks {
		if h.failure == nil || *h.failure != admissionregistrationv1.Fail {
			report("%s: failurePolicy %v, want Fail", h.name, val(h.failure))
		}
		if h.timeout == nil || *h.timeout > 10 {
			report("%s: timeoutSeconds %v, want at most 10", h.name, val(h.timeout))
		}
		if h.side == nil || *h.side != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			report("%s: sideEffects %v, want NoneOnDryRun", h.name, val(h.side))
		}
		if h.match == nil || *h.match != admissionregistrationv1.Equivalent {
			report("%s: matchPolicy %v, want Equivalent", h.name, val(h.match))
		}
		if !slices.Equal(h.versions, []string{"v1"}) {
			report("%s: admissionReviewVersions %v, want [v1]", h.name, h.versions)
		}
		excluded := notIn(h.nsSelector)
		if got := excluded["kubernetes.io/metadata.name"]; !slices.Contains(got, "kube-system") || !slices.Contains(got, ns) || len(excluded) != 1 {
			report("%s: namespaceSelector excludes %v, want kube-system and %s by kubernetes.io/metadata.name only", h.name, excluded, ns)
		}
		if h.objSelect != nil && (len(h.objSelect.MatchLabels) > 0 || len(h.objSelect.MatchExpressions) > 0) {
			report("%s: has an objectSelector: a label would opt out of bulwark", h.name)
		}
		switch s := h.client.Service; {
		case h.client.URL != nil:
			report("%s: calls URL %s, want the Service %s/%s", h.name, *h.client.URL, ns, serviceName)
		case s == nil:
			report("%s: calls no Service", h.name)
		case s.Namespace != ns || s.Name != serviceName || val(s.Path) != h.path || val(s.Port) != int32(443):
			report("%s: calls service %s/%s path %v port %v, want %s/%s path %s port 443", h.name, s.Namespace, s.Name, val(s.Path), val(s.Port), ns, serviceName, h.path)
		}
		have := map[string]bool{}
		for _, r := range h.rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, op := range r.Operations {
						have[g+"/"+res+":"+string(op)] = true
					}
				}
			}
		}
		for _, w := range wantRules[h.name] {
			if !have[w] {
				report("%s: no rule for %s", h.name, w)
			}
		}
	}
	return problems
}

// notIn returns the NotIn expressions of a namespace selector by key; anything else
// (matchLabels, In, Exists) shows up under its own key, so the lint sees that it
// narrows what is gated.
func notIn(s *metav1.LabelSelector) map[string][]string {
	out := map[string][]string{}
	if s == nil {
		return out
	}
	for k, v := range s.MatchLabels {
		out["matchLabels "+k] = []string{v}
	}
	for _, e := range s.MatchExpressions {
		key := e.Key
		if e.Operator != metav1.LabelSelectorOpNotIn {
			key = string(e.Operator) + " " + e.Key
		}
		out[key] = append(out[key], e.Values...)
	}
	return out
}

func val[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// webhookConfigurations decodes bulwark's mutating and validating configurations
// from a multi-document YAML stream holding any other objects too.
func webhookConfigurations(stream []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, err
		}
		var into any
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			if mwc != nil {
				return nil, nil, fmt.Errorf("more than one %s", meta.Kind)
			}
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			into = mwc
		case "ValidatingWebhookConfiguration":
			if vwc != nil {
				return nil, nil, fmt.Errorf("more than one %s", meta.Kind)
			}
			vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			into = vwc
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", meta.Kind, err)
		}
	}
	if mwc == nil || vwc == nil {
		return nil, nil, fmt.Errorf("want one mutating and one validating webhook configuration")
	}
	return mwc, vwc, nil
}

// helmTemplate renders the chart in namespace ns with --set values.
func helmTemplate(ns string, values ...string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		args := []string{"template", "bulwark", chartDir, "--namespace", ns}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		return run(t, tool(t, "helm"), args...)
	}
}

// tool returns the path of helm or kustomize (tests/tools); -short skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s is not built", name)
	}
	return tools.Path(t, name)
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	out, err := tools.Run(t.Context(), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
