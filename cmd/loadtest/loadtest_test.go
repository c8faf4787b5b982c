package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	got := summarize(lat, 3, 2*time.Second)
	want := Summary{Requests: 100, Errors: 3, Seconds: 2, PerSecond: 50, P50Ms: 50, P90Ms: 90, P99Ms: 99, MaxMs: 100, MeanMs: 50.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
	if got := summarize(nil, 1, time.Second); got.Requests != 0 || got.Errors != 1 || got.P50Ms != 0 {
		t.Errorf("summarize of nothing = %+v", got)
	}
}

func TestHistogramSumCount(t *testing.T) {
	const text = `# HELP x_seconds x
x_seconds_bucket{name="mutate.bulwark.dev",le="0.1"} 3
x_seconds_sum{name="mutate.bulwark.dev",operation="CREATE",rejected="false"} 0.5
x_seconds_count{name="mutate.bulwark.dev",operation="CREATE",rejected="false"} 4
x_seconds_sum{name="mutate.bulwark.dev",operation="UPDATE",rejected="false"} 0.25
x_seconds_count{name="mutate.bulwark.dev",operation="UPDATE",rejected="false"} 1
x_seconds_sum{name="validate.bulwark.dev",operation="CREATE",rejected="false"} 9
x_seconds_count{name="validate.bulwark.dev",operation="CREATE",rejected="false"} 9
x_seconds_total_sum{name="mutate.bulwark.dev"} 100
`
	if got, want := histogramSumCount(text, "x_seconds", `name="mutate.bulwark.dev"`), [2]float64{0.75, 5}; got != want {
		t.Errorf("histogramSumCount = %v, want %v", got, want)
	}
}

// TestReviewTemplates checks that each replayed review is what the webhook expects:
// a v1 AdmissionReview with the request's uid, and an object whose images are pinned.
func TestReviewTemplates(t *testing.T) {
	for _, tc := range []struct {
		kind                      string
		mutate, patched, hardened bool
	}{
		{kind: kindPod, mutate: false, patched: false, hardened: true},
		{kind: kindPod, mutate: true, patched: true, hardened: false},
		{kind: kindDeployment, mutate: false},
	} {
		tmpl, err := newReviewTemplate(tc.kind, tc.mutate)
		if err != nil {
			t.Fatal(err)
		}
		uid := requestUID(42)
		if len(uid) != len(uidPlaceholder) {
			t.Errorf("uid %q and placeholder differ in length", uid)
		}
		var r admissionv1.AdmissionReview
		if err := json.Unmarshal(tmpl.body(uid), &r); err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if r.APIVersion != "admission.k8s.io/v1" || r.Request == nil || string(r.Request.UID) != uid || r.Request.Operation != admissionv1.Create {
			t.Fatalf("%s: review %+v", tc.kind, r)
		}
		if !tmpl.allowed || tmpl.patched != tc.patched {
			t.Errorf("%s mutate=%t: expects allowed=%t patched=%t", tc.kind, tc.mutate, tmpl.allowed, tmpl.patched)
		}
		var spec corev1.PodSpec
		if tc.kind == kindPod {
			var pod corev1.Pod
			if err := json.Unmarshal(r.Request.Object.Raw, &pod); err != nil {
				t.Fatal(err)
			}
			spec = pod.Spec
		} else {
			var d appsv1.Deployment
			if err := json.Unmarshal(r.Request.Object.Raw, &d); err != nil {
				t.Fatal(err)
			}
			spec = d.Spec.Template.Spec
		}
		if len(spec.Containers) != 2 {
			t.Fatalf("%s: %d containers, want 2", tc.kind, len(spec.Containers))
		}
		for _, c := range spec.Containers {
			if !policy.Pinned(c.Image) {
				t.Errorf("%s: image %s is not pinned", tc.kind, c.Image)
			}
			if (c.SecurityContext != nil) != tc.hardened {
				t.Errorf("%s mutate=%t: container %s securityContext %v", tc.kind, tc.mutate, c.Name, c.SecurityContext)
			}
		}
	}
}
