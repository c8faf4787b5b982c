package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// TestNoLockoutWhenBulwarkIsDown stops every bulwark server: pods in an enforced
// namespace are refused (fail closed), pods in kube-system and bulwark's own
// namespace are still admitted, and deleting the webhook configurations as admin
// restores admission everywhere.
func TestNoLockoutWhenBulwarkIsDown(t *testing.T) {
	ns := namespace(t)
	ctx := context.WithoutCancel(t.Context())
	p := policy.Defaults()
	w, err := startWebhook(ctx, t.TempDir(), env.cluster, &p)
	if err != nil {
		t.Fatal(err)
	}
	repoint(t, w.URL)
	t.Cleanup(func() { repoint(t, env.webhook.URL) })
	if err := w.Stop(); err != nil {
		t.Fatalf("stop webhook: %v", err)
	}

	_, err = env.dev.CoreV1().Pods(ns).Create(ctx, podOf("while-down", ctr("web", pinned("web"))), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "mutate.bulwark.dev"`) {
		t.Fatalf("with bulwark down, a pod in an enforced namespace: %v; want refused by the failure policy", err)
	}
	for _, system := range []string{"kube-system", "bulwark-system"} {
		if _, err := env.admin.CoreV1().Namespaces().Get(ctx, system, metav1.GetOptions{}); err != nil {
			if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: system}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		waitForDefaultServiceAccount(t, system)
		repair := podOf("", ctr("fix", "registry.example/tools/fix:1"))
		repair.GenerateName = "repair-"
		if _, err := env.admin.CoreV1().Pods(system).Create(ctx, repair, metav1.CreateOptions{}); err != nil {
			t.Errorf("with bulwark down, a pod in %s was refused: %v (lockout)", system, err)
		}
	}

	// The emergency procedure: delete the webhook configurations.
	if err := env.cluster.UninstallWebhook(ctx, "bulwark"); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.dev.CoreV1().Pods(ns).Create(ctx, podOf("after-delete", ctr("web", pinned("web"))), metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("deleting the webhook configurations did not restore admission: %v", err)
	}
}
