package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// writableDeployment is a pinned Deployment whose container insists on a writable
// root filesystem, which the hardening check denies unless exempted.
func writableDeployment(name string, replicas int32, exemption map[string]string) *appsv1.Deployment {
	c := ctr("web", pinned("legacy"))
	c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(false)}
	d := deployment(name, replicas, c)
	d.Spec.Selector.MatchLabels = map[string]string{"app": name}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.Template.Annotations = exemption
	return d
}

func hardeningExemption(until string) map[string]string {
	return map[string]string{
		policy.AnnotationExempt:       "hardening",
		policy.AnnotationExemptReason: "OPS-7: legacy app writes to its root filesystem",
		policy.AnnotationExemptUntil:  until,
	}
}

func inDays(n int) string { return time.Now().UTC().AddDate(0, 0, n).Format(time.DateOnly) }

// waitForEvent waits for an Event in ns matching reason and regarding kind/name
// (name "" matches any) whose note contains note, and returns it.
func waitForEvent(t *testing.T, ns, reason, kind, name, note string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := env.admin.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Reason == reason && ev.Regarding.Kind == kind && (name == "" || ev.Regarding.Name == name) && strings.Contains(ev.Note, note) {
				found = ev
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		list, _ := env.admin.EventsV1().Events(ns).List(context.WithoutCancel(t.Context()), metav1.ListOptions{})
		var seen []string
		for _, ev := range list.Items {
			seen = append(seen, fmt.Sprintf("%s %s/%s: %.120s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note))
		}
		t.Fatalf("no %s Event regarding %s %q with note containing %q in %s; events:\n%s", reason, kind, name, note, ns, strings.Join(seen, "\n"))
	}
	if found.ReportingController != "bulwark" || len(found.Note) > 1024 || strings.ContainsAny(found.Note, "\n\r\t\x1b") {
		t.Errorf("event %s: controller %q, note %d bytes %q", found.Name, found.ReportingController, len(found.Note), found.Note)
	}
	return found
}

func TestExemptionByDevIsNotHonoured(t *testing.T) {
	ns := namespace(t)
	before := scrapeMetrics(t)
	dev, warnings := clientWithWarnings(t, cluster.Dev)
	_, err := dev.AppsV1().Deployments(ns).Create(t.Context(), writableDeployment("web", 1, hardeningExemption(inDays(10))), metav1.CreateOptions{})
	wantDenied(t, err, "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem",
		`exemption on the template not honoured: user "dev" may not grant exemptions from hardening in namespace `+ns)
	if w := strings.Join(warnings.all(), "\n"); !strings.Contains(w, `user "dev" may not grant exemptions from hardening`) {
		t.Errorf("warnings %q do not say the permission is missing", w)
	}
	waitForEvent(t, ns, "ExemptionRejected", "Deployment", "web", `user "dev" may not grant exemptions from hardening`)
	waitForEvent(t, ns, "HardeningRejected", "Deployment", "web", "readOnlyRootFilesystem")

	// kubectl get events reads core/v1: the same Events, with the reason enum.
	core, err := env.admin.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, ev := range core.Items {
		if ev.ReportingController == "bulwark" && ev.InvolvedObject.Kind == "Deployment" && ev.InvolvedObject.Name == "web" {
			reasons[ev.Reason] = true
		}
	}
	if !reasons["ExemptionRejected"] || !reasons["HardeningRejected"] {
		t.Errorf("core/v1 events for deployment/web have reasons %v", reasons)
	}

	after := scrapeMetrics(t)
	for _, series := range []string{
		`bulwark_exemptions_total{cause="Unauthorized",origin="template",result="rejected"}`,
		`bulwark_admission_requests_total{decision="denied",kind="Deployment",operation="CREATE",stage="validate"}`,
		`bulwark_policy_verdicts_total{action="deny",check="hardening",reason="HardeningRejected"}`,
	} {
		if after[series] <= before[series] {
			t.Errorf("%s did not move: %v → %v", series, before[series], after[series])
		}
	}
}

// TestWorkloadControllerPresentingAnotherGrantIsRefused impersonates the
// ReplicaSet controller — the one user whose grants count — to show that a grant
// only verifies for the workload that really owns the pod, and only for the
// exemption exactly as it was granted.
func TestWorkloadControllerPresentingAnotherGrantIsRefused(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	if err := env.cluster.GrantExempt(ctx, ns, cluster.Ops, "hardening"); err != nil {
		t.Fatal(err)
	}
	ops := kubernetes.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Ops))
	if _, err := ops.AppsV1().Deployments(ns).Create(ctx, writableDeployment("legacy", 1, hardeningExemption(inDays(30))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.AppsV1().Deployments(ns).Create(ctx, deployment("plain", 1, ctr("web", pinned("plain"))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	legacy := waitForPods(t, ns, "app=legacy", 1)[0]
	plain := waitForPods(t, ns, "app=web", 1)[0]

	cfg := env.cluster.RESTConfig(cluster.Admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:kube-system:replicaset-controller",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
	}
	controller := kubernetes.NewForConfigOrDie(cfg)
	podLike := func(name string, owner corev1.Pod, annotations map[string]string) *corev1.Pod {
		p := legacy.DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "impersonated"}, Annotations: annotations, OwnerReferences: owner.OwnerReferences}
		p.Spec.NodeName = ""
		return p
	}
	edited := maps.Clone(legacy.Annotations)
	edited[policy.AnnotationExempt] = "hardening,digest"

	if _, err := controller.CoreV1().Pods(ns).Create(ctx, podLike("genuine", legacy, legacy.Annotations), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the controller's own pod with its Deployment's grant: %v", err)
	}
	_, err := controller.CoreV1().Pods(ns).Create(ctx, podLike("foreign-owner", plain, legacy.Annotations), metav1.CreateOptions{})
	wantDenied(t, err, "readOnlyRootFilesystem", "grant does not match this exemption for Deployment "+ns+"/plain")
	_, err = controller.CoreV1().Pods(ns).Create(ctx, podLike("edited", legacy, edited), metav1.CreateOptions{})
	wantDenied(t, err, "readOnlyRootFilesystem", "grant does not match this exemption for Deployment "+ns+"/legacy")
}

func TestExemptionByOpsCarriesOverToControllerMadePods(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	if err := env.cluster.GrantExempt(ctx, ns, cluster.Ops, "hardening"); err != nil {
		t.Fatal(err)
	}
	ops := kubernetes.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Ops))
	before := scrapeMetrics(t)
	d, err := ops.AppsV1().Deployments(ns).Create(ctx, writableDeployment("legacy", 2, hardeningExemption(inDays(30))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("ops's exempted deployment denied: %v", err)
	}
	grant := d.Spec.Template.Annotations[policy.AnnotationExemptGrant]
	if grant == "" {
		t.Fatalf("no %s written on the pod template: %v", policy.AnnotationExemptGrant, d.Spec.Template.Annotations)
	}

	pods := waitForPods(t, ns, "app=legacy", 2)
	for _, p := range pods {
		if sc := p.Spec.Containers[0].SecurityContext; sc.ReadOnlyRootFilesystem == nil || *sc.ReadOnlyRootFilesystem {
			t.Errorf("pod %s: readOnlyRootFilesystem %v, want the explicit false kept", p.Name, sc.ReadOnlyRootFilesystem)
		}
	}
	ev := waitForEvent(t, ns, "PolicyExempted", "Deployment", "legacy", "granted by ops")
	if !strings.Contains(ev.Note, "OPS-7") {
		t.Errorf("PolicyExempted note %q lacks the reason", ev.Note)
	}
	waitForEvent(t, ns, "PolicyExempted", "ReplicaSet", "", "granted by ops")

	// The audit log holds the exemption for the Deployment (requested by ops) and for
	// its pods (requested by the ReplicaSet controller, under ops's grant).
	waitForAudit(t, func(ev auditEvent) bool {
		return ev.ObjectRef.Namespace == ns && ev.ObjectRef.Resource == "deployments" && ev.User.Username == cluster.Ops &&
			strings.Contains(ev.Annotations["validate.bulwark.dev/exemption"], "hardening on the template granted by ops")
	})
	waitForAudit(t, func(ev auditEvent) bool {
		return ev.ObjectRef.Namespace == ns && ev.ObjectRef.Resource == "pods" &&
			ev.User.Username == "system:serviceaccount:kube-system:replicaset-controller" &&
			strings.Contains(ev.Annotations["validate.bulwark.dev/exemption"], "hardening on the object granted by ops")
	})

	after := scrapeMetrics(t)
	for _, series := range []string{
		`bulwark_exemptions_total{cause="",origin="template",result="honoured"}`,
		`bulwark_exemptions_total{cause="",origin="object",result="honoured"}`,
		`bulwark_policy_verdicts_total{action="exempt",check="hardening",reason="HardeningRejected"}`,
		`bulwark_admission_requests_total{decision="allowed",kind="Pod",operation="CREATE",stage="validate"}`,
	} {
		if after[series] <= before[series] {
			t.Errorf("%s did not move: %v → %v", series, before[series], after[series])
		}
	}

	t.Run("grant copied to another deployment", func(t *testing.T) {
		copied := writableDeployment("copy", 1, d.Spec.Template.Annotations)
		_, err := env.dev.AppsV1().Deployments(ns).Create(ctx, copied, metav1.CreateOptions{})
		wantDenied(t, err, "readOnlyRootFilesystem", `user "dev" may not grant exemptions`)
	})
	t.Run("exemption edited after the grant", func(t *testing.T) {
		err := retryUpdate(ctx, func() error {
			cur, err := env.dev.AppsV1().Deployments(ns).Get(ctx, "legacy", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Spec.Template.Annotations[policy.AnnotationExempt] = "hardening,digest"
			_, err = env.dev.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		wantDenied(t, err, "readOnlyRootFilesystem", `user "dev" may not grant exemptions from hardening, digest`)
	})
	t.Run("pod claiming an owner it does not have", func(t *testing.T) {
		forged := pods[0].DeepCopy()
		forged.ObjectMeta = metav1.ObjectMeta{
			Name: "forged", Labels: map[string]string{"app": "forged"},
			Annotations: pods[0].Annotations, OwnerReferences: pods[0].OwnerReferences,
		}
		forged.Spec.NodeName = ""
		_, err := env.dev.CoreV1().Pods(ns).Create(ctx, forged, metav1.CreateOptions{})
		wantDenied(t, err, "spec.containers[0].securityContext.readOnlyRootFilesystem", `user "dev" may not grant exemptions`)
	})
}

func retryUpdate(ctx context.Context, update func() error) error {
	var err error
	for range 5 {
		if err = update(); err == nil || !strings.Contains(err.Error(), "the object has been modified") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func waitForPods(t *testing.T, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := env.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) >= n, nil
	})
	if err != nil {
		t.Fatalf("%d of %d pods (%s) created: %v", len(pods), n, selector, err)
	}
	return pods
}

func TestInvalidExemptionsAreNotHonoured(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	if err := env.cluster.GrantExempt(ctx, ns, cluster.Ops, "hardening"); err != nil {
		t.Fatal(err)
	}
	ops, warnings := clientWithWarnings(t, cluster.Ops)
	tests := map[string]struct {
		ann  map[string]string
		want string
	}{
		"expired":        {ann: hardeningExemption(inDays(-1)), want: "has passed"},
		"without reason": {ann: map[string]string{policy.AnnotationExempt: "hardening", policy.AnnotationExemptUntil: inDays(5)}, want: "bulwark.dev/exempt-reason is required"},
		"beyond window":  {ann: hardeningExemption(inDays(120)), want: "is more than the maximum window of 90 days ahead"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := ctr("web", pinned("web"))
			c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(false)}
			pod := podOf(strings.ReplaceAll(name, " ", "-"), c)
			pod.Annotations = tc.ann
			_, err := ops.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			wantDenied(t, err, "readOnlyRootFilesystem", tc.want)
			if w := strings.Join(warnings.all(), "\n"); !strings.Contains(w, tc.want) {
				t.Errorf("no admission warning saying %q: %q", tc.want, w)
			}
			waitForEvent(t, ns, "ExemptionRejected", "Pod", pod.Name, tc.want)
		})
	}
}

func TestNamespaceExemption(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	if err := env.cluster.GrantExempt(ctx, ns, cluster.Ops, "digest"); err != nil {
		t.Fatal(err)
	}
	annotate := func(cs kubernetes.Interface) error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"digest",%q:"OPS-9 vendor images",%q:%q}}}`,
			policy.AnnotationExempt, policy.AnnotationExemptReason, policy.AnnotationExemptUntil, inDays(20))
		_, err := cs.CoreV1().Namespaces().Patch(ctx, ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
		return err
	}
	// dev may edit this namespace (RBAC) but holds no right to exempt.
	if err := env.cluster.AllowNamespaceEdit(ctx, ns, cluster.Dev); err != nil {
		t.Fatal(err)
	}
	err := annotate(env.dev)
	if err == nil || !strings.Contains(err.Error(), `user "dev" may not grant exemptions from digest in namespace `+ns) {
		t.Fatalf("dev annotating the namespace: %v; want bulwark's denial", err)
	}
	unpinned := podOf("vendor", ctr("vendor", "vendor/agent:7"))
	_, err = env.dev.CoreV1().Pods(ns).Create(ctx, unpinned, metav1.CreateOptions{})
	wantDenied(t, err, "spec.containers[0].image")

	if err := annotate(kubernetes.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Ops))); err != nil {
		t.Fatalf("ops annotating the namespace: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.dev.CoreV1().Pods(ns).Create(ctx, unpinned, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("unpinned pod still denied in the exempted namespace: %v", err)
	}
	waitForEvent(t, ns, "PolicyExempted", "Pod", "vendor", "digest on the namespace granted by ops")
}

func TestDenialOfControllerMadePodRegardsItsReplicaSet(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	if err := env.cluster.GrantExempt(ctx, ns, cluster.Ops, "hardening"); err != nil {
		t.Fatal(err)
	}
	ops := kubernetes.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Ops))
	// Long enough for the first pod to be admitted on a busy 2-core machine.
	until := time.Now().Add(12 * time.Second).UTC().Truncate(time.Second)
	d, err := ops.AppsV1().Deployments(ns).Create(ctx, writableDeployment("shortlived", 1, hardeningExemption(until.Format(time.RFC3339))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("deployment with a short exemption: %v", err)
	}
	waitForPods(t, ns, "app=shortlived", 1)
	waitForEvent(t, ns, "ExemptionExpiring", "Deployment", "shortlived", "ends in")

	time.Sleep(time.Until(until) + time.Second)
	// Scaling leaves the template alone, so the Deployment is not judged again; the
	// new pod is, and its exemption has expired.
	err = retryUpdate(ctx, func() error {
		cur, err := ops.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Replicas = ptr.To[int32](2)
		_, err = ops.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("scale: %v", err)
	}
	ev := waitForEvent(t, ns, "HardeningRejected", "ReplicaSet", "", "readOnlyRootFilesystem")
	rs, err := env.admin.AppsV1().ReplicaSets(ns).Get(ctx, ev.Regarding.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Event's ReplicaSet %s: %v", ev.Regarding.Name, err)
	}
	if owner := metav1.GetControllerOf(rs); owner == nil || owner.Kind != "Deployment" || owner.Name != "shortlived" {
		t.Errorf("ReplicaSet %s owner %+v, want Deployment shortlived", rs.Name, owner)
	}
	if ev.Regarding.UID != rs.UID {
		t.Errorf("Event regards UID %s, ReplicaSet has %s", ev.Regarding.UID, rs.UID)
	}
	waitForEvent(t, ns, "ExemptionRejected", "ReplicaSet", rs.Name, "has passed")
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	User      struct{ Username string } `json:"user"`
	ObjectRef struct {
		Resource, Namespace, Name string
	} `json:"objectRef"`
	Annotations map[string]string `json:"annotations"`
}

func waitForAudit(t *testing.T, match func(auditEvent) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(env.cluster.AuditLog)
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			var ev auditEvent
			if json.Unmarshal([]byte(line), &ev) == nil && match(ev) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no matching audit event: %v", err)
	}
}

var metricLine = regexp.MustCompile(`^(bulwark_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$`)

// scrapeMetrics reads the webhook's /metrics over TLS.
func scrapeMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.cluster.CA.CertPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get(env.webhook.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return parseMetrics(res.Body)
}

// parseMetrics reads bulwark's samples from a /metrics body, by series.
func parseMetrics(r io.Reader) map[string]float64 {
	body, _ := io.ReadAll(r)
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		if m := metricLine.FindStringSubmatch(strings.TrimSuffix(line, "\n")); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v
		}
	}
	return out
}
