package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/bulwark-dev/bulwark/pkg/check"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

var resources = map[string]schema.GroupVersionResource{
	"Pod":                   {Version: "v1", Resource: "pods"},
	"PodTemplate":           {Version: "v1", Resource: "podtemplates"},
	"ReplicationController": {Version: "v1", Resource: "replicationcontrollers"},
	"Deployment":            {Group: "apps", Version: "v1", Resource: "deployments"},
	"ReplicaSet":            {Group: "apps", Version: "v1", Resource: "replicasets"},
	"StatefulSet":           {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":             {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"Job":                   {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":               {Group: "batch", Version: "v1", Resource: "cronjobs"},
}

// TestCheckAgreesWithTheWebhook drives every shared fixture through `bulwark
// check`'s engine and, as the same user, through the real API server and webhook:
// the outcome, the denial message and the warnings must be the same — as dev, who
// may not grant exemptions, and as ops, who may (check --exempt-right).
func TestCheckAgreesWithTheWebhook(t *testing.T) {
	t.Run("as dev", func(t *testing.T) { checkAgrees(t, cluster.Dev, false) })
	t.Run("as ops with the right to exempt", func(t *testing.T) { checkAgrees(t, cluster.Ops, true) })
}

func checkAgrees(t *testing.T, user string, exemptRight bool) {
	ns := namespace(t)
	if exemptRight {
		if err := env.cluster.GrantExempt(t.Context(), ns, user, "digest", "signature", "vulnerabilities", "hardening", "base-image"); err != nil {
			t.Fatal(err)
		}
	}
	// One fixture carries an exemption dated from today, so it stays within the
	// maximum window whenever the test runs.
	dated := filepath.Join(t.TempDir(), "dated-exemption.yaml")
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: dated
spec:
  selector:
    matchLabels: {app: dated}
  template:
    metadata:
      labels: {app: dated}
      annotations:
        bulwark.dev/exempt: hardening
        bulwark.dev/exempt-reason: "OPS-12: writes its cache to /"
        bulwark.dev/exempt-until: %q
    spec:
      containers:
        - name: app
          image: %s
          securityContext: {readOnlyRootFilesystem: false}
`, inDays(30), pinned("dated"))
	if err := os.WriteFile(dated, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	docs, err := check.Load([]string{"../../deploy/samples", "../fixtures/check", dated}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Defaults()
	checker, err := check.NewChecker(&p, check.Options{User: user, Namespace: ns, ExemptRight: exemptRight})
	if err != nil {
		t.Fatal(err)
	}
	cfg := env.cluster.RESTConfig(user)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	client := dynamic.NewForConfigOrDie(cfg)

	judged, exempted := 0, 0
	for i := range docs {
		d := &docs[i]
		t.Run(filepath.Base(d.File)+"/"+d.Kind+"/"+d.Name, func(t *testing.T) {
			r, err := checker.Check(t.Context(), d)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if r.Outcome == check.Skipped {
				return
			}
			judged++
			for _, f := range r.Findings {
				if f.Action == "exempt" {
					exempted++
				}
			}
			var obj unstructured.Unstructured
			if err := obj.UnmarshalJSON(d.JSON); err != nil {
				t.Fatal(err)
			}
			before := len(warnings.all())
			_, err = client.Resource(resources[d.Kind]).Namespace(ns).Create(t.Context(), &obj, metav1.CreateOptions{})
			got := warnings.all()[before:]
			switch r.Outcome {
			case check.Denied:
				if err == nil {
					t.Fatalf("bulwark check denied, the webhook admitted:\n%s", r.Message)
				}
				if !strings.Contains(err.Error(), `denied the request: `+r.Message) {
					t.Errorf("messages differ\ncheck:   %s\nwebhook: %v", r.Message, err)
				}
			default:
				if err != nil {
					t.Fatalf("bulwark check said %s, the webhook: %v", r.Outcome, err)
				}
			}
			if !slices.Equal(r.Warnings, got) {
				t.Errorf("warnings differ\ncheck:   %q\nwebhook: %q", r.Warnings, got)
			}
		})
	}
	if judged < 10 {
		t.Errorf("only %d fixtures judged; the fixture set shrank", judged)
	}
	if exemptRight && exempted == 0 {
		t.Error("no fixture was admitted under an exemption; the exemption case is not compared")
	}
}
