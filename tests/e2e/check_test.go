package e2e

import (
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
// the outcome, the denial message and the warnings must be the same.
func TestCheckAgreesWithTheWebhook(t *testing.T) {
	ns := namespace(t)
	docs, err := check.Load([]string{"../../deploy/samples", "../fixtures/check"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Defaults()
	checker, err := check.NewChecker(&p, check.Options{User: cluster.Dev, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	cfg := env.cluster.RESTConfig(cluster.Dev)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	client := dynamic.NewForConfigOrDie(cfg)

	judged := 0
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
}
