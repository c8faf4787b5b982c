package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// pinned returns a distinct image reference pinned by digest.
func pinned(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "registry.example/demo/" + name + ":1.0@sha256:" + hex.EncodeToString(sum[:])
}

var nsCount struct {
	sync.Mutex
	n int
}

// namespace creates a fresh namespace that Dev may work in.
func namespace(t testing.TB) string {
	t.Helper()
	nsCount.Lock()
	nsCount.n++
	name := fmt.Sprintf("e2e-%d-%s", nsCount.n, strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	nsCount.Unlock()
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if err := env.cluster.CreateDevNamespace(t.Context(), name); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func podOf(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: containers}}
}

func ctr(name, image string) corev1.Container {
	return corev1.Container{Name: name, Image: image}
}

func template(containers ...corev1.Container) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func deployment(name string, replicas int32, containers ...corev1.Container) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(containers...),
		},
	}
}

func cronJob(name string, containers ...corev1.Container) *batchv1.CronJob {
	t := template(containers...)
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule:    "*/5 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}},
		},
	}
}

// warningRecorder collects the admission warnings a client receives, as kubectl
// prints them.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// clientWithWarnings returns a client for user that records warnings.
func clientWithWarnings(t *testing.T, user string) (kubernetes.Interface, *warningRecorder) {
	t.Helper()
	cfg := env.cluster.RESTConfig(user)
	w := &warningRecorder{}
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return cs, w
}

// wantDenied fails unless err is bulwark's denial containing every part.
func wantDenied(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request admitted; want denied with %q", parts)
	}
	msg := err.Error()
	if !strings.Contains(msg, `admission webhook "validate.bulwark.dev" denied the request`) {
		t.Fatalf("error is not bulwark's denial: %v", err)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("denial %q does not contain %q", msg, p)
		}
	}
}
