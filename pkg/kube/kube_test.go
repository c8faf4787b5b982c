package kube

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/pkg/admission"
)

func TestEventQueueDropsInsteadOfBlocking(t *testing.T) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	q := NewEventQueue(fake.NewClientset(), 2, dropped)
	ev := admission.Event{Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"}, Type: corev1.EventTypeWarning, Reason: "ImageNotPinned", Action: "Admission", Note: "n"}
	done := make(chan struct{})
	go func() {
		// Nothing drains the queue: Record must still return at once.
		for range 5 {
			q.Record(ev)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if got := testutil.ToFloat64(dropped); got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
}

func TestEventQueueSendsEvents(t *testing.T) {
	client := fake.NewClientset()
	q := NewEventQueue(client, 10, prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go q.Run(ctx)
	q.Record(admission.Event{Regarding: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "web-1", UID: "u1"},
		Type: corev1.EventTypeWarning, Reason: "HardeningRejected", Action: "Admission", Note: "denied"})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		list, err := client.EventsV1().Events("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 {
			ev := list.Items[0]
			if ev.Reason != "HardeningRejected" || ev.Regarding.Name != "web-1" || ev.ReportingController != ReportingController || ev.Note != "denied" {
				t.Errorf("event = %+v", ev)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("event not sent")
}

func TestAuthorizerAsksOnceThenCaches(t *testing.T) {
	client := fake.NewClientset()
	var asked []authorizationv1.SubjectAccessReviewSpec
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		asked = append(asked, sar.Spec)
		sar.Status.Allowed = sar.Spec.User == "ops"
		return true, sar, nil
	})
	a := NewAuthorizer(client)
	ops := authenticationv1.UserInfo{Username: "ops", Groups: []string{"operators"}}
	for range 3 {
		ok, err := a.CanExempt(t.Context(), ops, "team-a", "hardening")
		if err != nil || !ok {
			t.Fatalf("CanExempt(ops) = %v, %v", ok, err)
		}
	}
	if ok, _ := a.CanExempt(t.Context(), authenticationv1.UserInfo{Username: "dev"}, "team-a", "hardening"); ok {
		t.Error("dev may exempt")
	}
	if len(asked) != 2 {
		t.Fatalf("asked %d reviews, want 2 (one per user)", len(asked))
	}
	ra := asked[0].ResourceAttributes
	if ra.Verb != "exempt" || ra.Group != "bulwark.dev" || ra.Resource != "exemptions" || ra.Name != "hardening" || ra.Namespace != "team-a" || asked[0].Groups[0] != "operators" {
		t.Errorf("review asked %+v", asked[0])
	}
}

func TestLookupControllerOf(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d1", Controller: ptr.To(true)},
	}}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Annotations: map[string]string{"a": "b"}}}
	client := fake.NewClientset(rs, ns)
	l := NewLookup(client, informers.NewSharedInformerFactory(client, 0))
	owner, err := l.ControllerOf(t.Context(), "ns", "ReplicaSet", "web-1")
	if err != nil || owner == nil || owner.Kind != "Deployment" || owner.Name != "web" {
		t.Fatalf("ControllerOf = %+v, %v", owner, err)
	}
	if _, err := l.ControllerOf(t.Context(), "ns", "StatefulSet", "x"); err == nil {
		t.Error("looked up the owner of a StatefulSet")
	}
	// Not started: the cache is empty, so the namespace is read from the API.
	ann, err := l.NamespaceAnnotations(t.Context(), "ns")
	if err != nil || ann["a"] != "b" {
		t.Errorf("NamespaceAnnotations = %v, %v", ann, err)
	}
}
