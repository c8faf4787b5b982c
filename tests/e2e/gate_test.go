package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

func TestUnpinnedImagesAreDeniedWithFieldPath(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	tests := map[string]struct {
		create func() error
		path   string
		image  string
	}{
		"pod container": {
			create: func() error {
				_, err := env.dev.CoreV1().Pods(ns).Create(ctx, podOf("web", ctr("web", "nginx:1.27")), metav1.CreateOptions{})
				return err
			},
			path: "spec.containers[0].image", image: "nginx:1.27",
		},
		"pod init container": {
			create: func() error {
				p := podOf("init", ctr("web", pinned("web")))
				p.Spec.InitContainers = []corev1.Container{ctr("migrate", "migrate:latest")}
				_, err := env.dev.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				return err
			},
			path: "spec.initContainers[0].image", image: "migrate:latest",
		},
		"deployment": {
			create: func() error {
				_, err := env.dev.AppsV1().Deployments(ns).Create(ctx, deployment("web", 1, ctr("web", "nginx:1.27")), metav1.CreateOptions{})
				return err
			},
			path: "spec.template.spec.containers[0].image", image: "nginx:1.27",
		},
		"cronjob": {
			create: func() error {
				_, err := env.dev.BatchV1().CronJobs(ns).Create(ctx, cronJob("nightly", ctr("job", "alpine:3.20")), metav1.CreateOptions{})
				return err
			},
			path: "spec.jobTemplate.spec.template.spec.containers[0].image", image: "alpine:3.20",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			wantDenied(t, tc.create(), tc.path, `"`+tc.image+`"`, "image not pinned by digest", "crane digest "+tc.image)
		})
	}
}

func TestEphemeralContainerWithUnpinnedImageIsDenied(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	pod, err := env.dev.CoreV1().Pods(ns).Create(ctx, podOf("web", ctr("web", pinned("web"))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pinned pod: %v", err)
	}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox:1.36"},
	}}
	_, err = env.dev.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{})
	wantDenied(t, err, "spec.ephemeralContainers[0].image", `"busybox:1.36"`, "image not pinned by digest")

	// A pinned debug container is admitted and hardened like any other container.
	pod.Spec.EphemeralContainers[0].Image = pinned("busybox")
	got, err := env.dev.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("pinned ephemeral container: %v", err)
	}
	wantHardened(t, "ephemeral container", got.Spec.EphemeralContainers[0].SecurityContext)
}

func wantHardened(t *testing.T, what string, sc *corev1.SecurityContext) {
	t.Helper()
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", what)
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) == 0 || sc.Capabilities.Drop[len(sc.Capabilities.Drop)-1] != "ALL":
		t.Errorf("%s: capabilities %+v, want drop ALL", what, sc.Capabilities)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem %v, want true", what, sc.ReadOnlyRootFilesystem)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation %v, want false", what, sc.AllowPrivilegeEscalation)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccompProfile %+v, want RuntimeDefault", what, sc.SeccompProfile)
	}
}

func TestPinnedDeploymentPodsAreStoredHardened(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	d := deployment("web", 2, ctr("web", pinned("web")), ctr("sidecar", pinned("sidecar")))
	d.Spec.Template.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{
		RunAsNonRoot: ptr.To(true),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}},
	}
	created, err := env.dev.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("pinned deployment denied: %v", err)
	}
	if created.Spec.Template.Spec.Containers[0].SecurityContext != nil {
		t.Errorf("deployment template was mutated: %+v; only pods are", created.Spec.Template.Spec.Containers[0].SecurityContext)
	}

	// The controller manager makes a ReplicaSet and its pods; bulwark admits and
	// hardens them on their way to storage.
	var pods []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := env.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) == 2, nil
	})
	if err != nil {
		t.Fatalf("controller manager created %d of 2 pods: %v", len(pods), err)
	}
	for _, p := range pods {
		if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "ReplicaSet" {
			t.Errorf("pod %s not owned by a ReplicaSet: %+v", p.Name, p.OwnerReferences)
		}
		for _, c := range p.Spec.Containers {
			wantHardened(t, p.Name+"/"+c.Name, c.SecurityContext)
		}
		sidecar := p.Spec.Containers[1].SecurityContext
		if sidecar.RunAsNonRoot == nil || !*sidecar.RunAsNonRoot || len(sidecar.Capabilities.Add) != 1 || sidecar.Capabilities.Add[0] != "NET_BIND_SERVICE" {
			t.Errorf("pod %s: the user's own settings were not kept: %+v", p.Name, sidecar)
		}
	}

	// Re-admitting a stored pod yields no patch: send it to the real server's
	// /mutate exactly as the API server would.
	stored := pods[0]
	resp := review(t, "/mutate", &stored)
	if !resp.Allowed || len(resp.Patch) != 0 {
		t.Errorf("re-admitting stored pod: allowed=%v patch=%s, want allowed with no patch", resp.Allowed, resp.Patch)
	}
}

// review posts an AdmissionReview for a Pod CREATE to the webhook and returns the
// response.
func review(t *testing.T, path string, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("e2e-review"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: pod.Namespace, Name: pod.Name,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.cluster.CA.CertPEM)
	anonymous := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if res, err := anonymous.Post(env.webhook.URL+path, "application/json", bytes.NewReader(body)); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a caller without the API server's client certificate got %v, %v; want 401", res.Status, err)
	}
	clientAs := func(cn string) *http.Client {
		kp, err := env.cluster.CA.IssueClient(cn, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	}
	// Another client of the same CA (a kubelet, say) is refused too.
	if res, err := clientAs("system:node:worker-1").Post(env.webhook.URL+path, "application/json", bytes.NewReader(body)); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another client of the cluster CA got %v, %v; want 401", res.Status, err)
	}
	// As the API server.
	res, err := clientAs(cluster.WebhookClientName).Post(env.webhook.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post review: %v", err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil || out.Response == nil {
		t.Fatalf("decode review response %s: %v", data, err)
	}
	if out.Response.UID != ar.Request.UID {
		t.Errorf("response UID %q, want %q", out.Response.UID, ar.Request.UID)
	}
	return out.Response
}

func TestExplicitReadOnlyRootFilesystemFalse(t *testing.T) {
	ns := namespace(t)
	writable := func(name string) *corev1.Pod {
		c := ctr("web", pinned("web"))
		c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(false)}
		return podOf(name, c)
	}
	t.Run("denied by default", func(t *testing.T) {
		_, err := env.dev.CoreV1().Pods(ns).Create(t.Context(), writable("denied"), metav1.CreateOptions{})
		wantDenied(t, err, "spec.containers[0].securityContext.readOnlyRootFilesystem", "explicit setting conflicts with hardening", "set to false")
	})
	t.Run("warned in warn mode", func(t *testing.T) {
		p := policy.Defaults()
		p.Checks.Hardening.Mode = policy.ModeWarn
		useWebhook(t, &p)
		cs, warnings := clientWithWarnings(t, cluster.Dev)
		got, err := cs.CoreV1().Pods(ns).Create(t.Context(), writable("warned"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("warn mode denied: %v", err)
		}
		if sc := got.Spec.Containers[0].SecurityContext; sc.ReadOnlyRootFilesystem == nil || *sc.ReadOnlyRootFilesystem {
			t.Errorf("explicit false was overwritten: %v", sc.ReadOnlyRootFilesystem)
		}
		if sc := got.Spec.Containers[0].SecurityContext; sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("the other controls were not injected: %+v", sc)
		}
		want := "bulwark: spec.containers[0].securityContext.readOnlyRootFilesystem: explicit setting conflicts with hardening (check hardening): set to false"
		if w := warnings.all(); len(w) != 1 || !strings.HasPrefix(w[0], want) {
			t.Errorf("warnings = %q, want one starting with %q", w, want)
		}

		// The same for a workload: admitted with the warning at its own admission.
		d := deployment("warned", 1, *writable("x").Spec.Containers[0].DeepCopy())
		if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
			t.Fatalf("warn mode denied the deployment: %v", err)
		}
		want = "bulwark: spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem: explicit setting conflicts with hardening"
		if w := warnings.all(); len(w) != 2 || !strings.HasPrefix(w[1], want) {
			t.Errorf("warnings = %q, want a second one starting with %q", w, want)
		}
	})
}

// useWebhook points the cluster's webhook configurations at a second bulwark server
// running policy p for the rest of the test, and back afterwards.
func useWebhook(t *testing.T, p *policy.Policy) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	w, err := startWebhook(ctx, t.TempDir(), env.cluster, p)
	if err != nil {
		t.Fatal(err)
	}
	repoint(t, w.URL)
	t.Cleanup(func() {
		repoint(t, env.webhook.URL)
		if err := w.Stop(); err != nil {
			t.Errorf("stop webhook: %v", err)
		}
	})
}

func repoint(t *testing.T, baseURL string) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	if err := env.cluster.UninstallWebhook(ctx, "bulwark"); err != nil {
		t.Fatal(err)
	}
	if err := env.cluster.InstallWebhook(ctx, webhookManifest, baseURL, env.cluster.CA.CertPEM); err != nil {
		t.Fatal(err)
	}
	// The API server picks up webhook configurations through an informer: wait until
	// a dry-run request reaches the new server.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.admin.CoreV1().Pods(cluster.DevNamespace).Create(ctx, podOf("probe", ctr("probe", pinned("probe"))),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("webhook at %s never answered: %v", baseURL, err)
	}
	time.Sleep(time.Second) // both webhook configurations and every API server watch
}

func TestExcludedNamespaces(t *testing.T) {
	ctx := t.Context()
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulwark-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// A namespace cannot borrow the exclusion: the API server owns this label.
	sneaky := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sneaky", Labels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, sneaky, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForDefaultServiceAccount(t, "sneaky")
	unpinned := podOf("unpinned", ctr("web", "nginx:1.27"))
	for _, ns := range []string{"kube-system", "bulwark-system"} {
		waitForDefaultServiceAccount(t, ns)
		got, err := env.admin.CoreV1().Pods(ns).Create(ctx, unpinned, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s: unpinned pod denied: %v", ns, err)
			continue
		}
		if got.Spec.Containers[0].SecurityContext != nil {
			t.Errorf("%s: pod was mutated: %+v", ns, got.Spec.Containers[0].SecurityContext)
		}
	}
	for _, ns := range []string{cluster.DevNamespace, "sneaky"} {
		_, err := env.admin.CoreV1().Pods(ns).Create(ctx, unpinned, metav1.CreateOptions{})
		wantDenied(t, err, "spec.containers[0].image")
	}
}

func waitForDefaultServiceAccount(t testing.TB, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default service account: %v", ns, err)
	}
}

func TestDryRunDecidesTheSameAndStoresNothing(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	_, err := env.dev.CoreV1().Pods(ns).Create(ctx, podOf("bad", ctr("web", "nginx:1.27")), dry)
	wantDenied(t, err, "spec.containers[0].image")

	got, err := env.dev.CoreV1().Pods(ns).Create(ctx, podOf("good", ctr("web", pinned("web"))), dry)
	if err != nil {
		t.Fatalf("dry run of a pinned pod: %v", err)
	}
	wantHardened(t, "dry-run pod", got.Spec.Containers[0].SecurityContext)
	if _, err := env.admin.CoreV1().Pods(ns).Get(ctx, "good", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run pod was stored (get: %v)", err)
	}

	// No Events on dry run. Events leave one queue in order: once the Event of a
	// later real denial is there, one for the dry run would be too.
	_, err = env.dev.CoreV1().Pods(ns).Create(ctx, podOf("marker", ctr("web", "nginx:1.27")), metav1.CreateOptions{})
	wantDenied(t, err, "spec.containers[0].image")
	waitForEvent(t, ns, "ImageNotPinned", "Pod", "marker", "nginx:1.27")
	events, err := env.admin.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events.Items {
		if ev.Regarding.Name == "bad" || ev.Regarding.Name == "good" {
			t.Errorf("dry run recorded Event %s %s/%s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name)
		}
	}
}

func TestDenialIsInTheAuditLog(t *testing.T) {
	ns := namespace(t)
	_, err := env.dev.CoreV1().Pods(ns).Create(t.Context(), podOf("audited", ctr("web", "nginx:1.27")), metav1.CreateOptions{})
	wantDenied(t, err, "spec.containers[0].image")
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(env.cluster.AuditLog)
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, `"namespace":"`+ns+`"`) || !strings.Contains(line, `"name":"audited"`) {
				continue
			}
			var ev struct {
				User        struct{ Username string } `json:"user"`
				Annotations map[string]string         `json:"annotations"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				return false, err
			}
			if ev.Annotations["validate.bulwark.dev/decision"] == "denied" &&
				ev.Annotations["validate.bulwark.dev/digest"] == "deny ImageNotPinned at spec.containers[0].image" &&
				ev.User.Username == cluster.Dev {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no audit event with bulwark's annotations for the denied pod: %v", err)
	}
}
