// Package deploy holds bulwark's manifests; its test lints them.
package deploy

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// TestWebhookConfigurationsKeepTheSafeDefaults fails on any deviation from the
// defaults a cluster relies on: fail closed, a timeout under the API server's,
// no lockout of kube-system or bulwark's own namespace, no opt-out by label.
func TestWebhookConfigurationsKeepTheSafeDefaults(t *testing.T) {
	mwc, vwc, err := cluster.LoadWebhookConfigurations("base/webhook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type hook struct {
		name          string
		failure       *admissionregistrationv1.FailurePolicyType
		match         *admissionregistrationv1.MatchPolicyType
		side          *admissionregistrationv1.SideEffectClass
		timeout       *int32
		versions      []string
		rules         []admissionregistrationv1.RuleWithOperations
		nsSelector    map[string][]string
		objectSelects bool
	}
	var hooks []hook
	for _, w := range mwc.Webhooks {
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy %v, want IfNeeded", w.Name, w.ReinvocationPolicy)
		}
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.MatchPolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.Rules, notIn(w.NamespaceSelector), w.ObjectSelector != nil && (len(w.ObjectSelector.MatchLabels) > 0 || len(w.ObjectSelector.MatchExpressions) > 0)})
	}
	for _, w := range vwc.Webhooks {
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.MatchPolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.Rules, notIn(w.NamespaceSelector), w.ObjectSelector != nil && (len(w.ObjectSelector.MatchLabels) > 0 || len(w.ObjectSelector.MatchExpressions) > 0)})
	}
	if len(hooks) != 2 {
		t.Fatalf("want one mutating and one validating webhook, got %d", len(hooks))
	}
	for _, h := range hooks {
		if h.failure == nil || *h.failure != admissionregistrationv1.Fail {
			t.Errorf("%s: failurePolicy %v, want Fail", h.name, val(h.failure))
		}
		if h.timeout == nil || *h.timeout > 10 {
			t.Errorf("%s: timeoutSeconds %v, want at most 10", h.name, val(h.timeout))
		}
		if h.side == nil || *h.side != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			t.Errorf("%s: sideEffects %v, want NoneOnDryRun", h.name, val(h.side))
		}
		if h.match == nil || *h.match != admissionregistrationv1.Equivalent {
			t.Errorf("%s: matchPolicy %v, want Equivalent", h.name, val(h.match))
		}
		if !slices.Equal(h.versions, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions %v, want [v1]", h.name, h.versions)
		}
		if got := h.nsSelector["kubernetes.io/metadata.name"]; !slices.Contains(got, "kube-system") || !slices.Contains(got, "bulwark-system") || len(h.nsSelector) != 1 {
			t.Errorf("%s: namespaceSelector excludes %v, want kube-system and bulwark-system by kubernetes.io/metadata.name only", h.name, h.nsSelector)
		}
		if h.objectSelects {
			t.Errorf("%s: has an objectSelector: a label would opt out of bulwark", h.name)
		}
	}
	// What each webhook must see, on CREATE and UPDATE.
	wantRules := map[string][]string{
		"mutate.bulwark.dev":   {"/pods:CREATE", "/pods/ephemeralcontainers:UPDATE"},
		"validate.bulwark.dev": {"/pods:CREATE", "/pods:UPDATE", "/pods/ephemeralcontainers:UPDATE", "apps/deployments:CREATE", "apps/deployments:UPDATE", "apps/replicasets:CREATE", "apps/statefulsets:CREATE", "apps/daemonsets:CREATE", "batch/jobs:CREATE", "batch/cronjobs:CREATE", "batch/cronjobs:UPDATE", "/replicationcontrollers:CREATE", "/podtemplates:CREATE", "/namespaces:UPDATE"},
	}
	for _, h := range hooks {
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
				t.Errorf("%s: no rule for %s", h.name, w)
			}
		}
	}
}

// notIn returns the NotIn expressions of a namespace selector by key; anything else
// (matchLabels, In, Exists) shows up under its own key, so the test sees that it
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
