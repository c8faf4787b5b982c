package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/bulwark-dev/bulwark/certs"
	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/internal/certrotate"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

const (
	// certsSecret and the Lease are the names deploy/base/rbac-certs.yaml allows.
	certsSecret = "bulwark-webhook-tls"
	// certsConfigName keeps the test's webhook configurations apart from the
	// suite's ("bulwark"); the test grants the shipped rights on it.
	certsConfigName = "bulwark-certs-e2e"
)

var certsLabel = map[string]string{"bulwark.dev/e2e": "self-managed-certificates"}

// TestSelfManagedCertificatesRotate starts two replicas in self-managed mode
// with no Secret, a serving certificate of 18 s and a CA of 36 s, points the API
// server at them (mutating webhook → replica 0, validating → replica 1), and
// creates pods through the API server, one after another, while the leader
// rotates the serving certificate and then the CA, repairs a Secret spoilt by
// hand, and rotates to a new CA when the Secret is deleted. It proves that one
// replica leads and alone writes, that both configurations' caBundle follows
// [A] → [B A] → [B] → [C B] → [C], that both replicas serve every new certificate
// before the old one expires, without a restart, that no admission and no TLS
// handshake fails, and that the other replica takes over when the leader stops.
func TestSelfManagedCertificatesRotate(t *testing.T) {
	ctx := context.WithoutCancel(t.Context())
	ns := labeledNamespace(t, certsLabel)
	t.Cleanup(func() { // its pods
		_ = env.admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	secrets := env.admin.CoreV1().Secrets(cluster.BulwarkNamespace)
	leases := env.admin.CoordinationV1().Leases(cluster.BulwarkNamespace)
	clean := func() {
		for _, err := range []error{
			secrets.Delete(ctx, certsSecret, metav1.DeleteOptions{}),
			leases.Delete(ctx, certrotate.DefaultLeaseName, metav1.DeleteOptions{}),
		} {
			if err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		}
	}
	clean() // the Secret-less state
	t.Cleanup(clean)
	grantCertsConfigRights(t, certsConfigName)

	spec := certs.Spec{
		CommonName:   "bulwark-webhook",
		DNSNames:     certs.ServiceNames("bulwark-webhook", cluster.BulwarkNamespace),
		IPs:          []net.IP{net.IPv4(127, 0, 0, 1)}, // --cert-hosts 127.0.0.1: the API server calls 127.0.0.1
		CertValidity: 18 * time.Second,
		CAValidity:   36 * time.Second,
		Propagation:  2 * time.Second,
	}
	p := policy.Defaults()
	dir := t.TempDir()
	var replicas [2]*webhookServer
	var stop [2]func() error // once each: Stop waits for Run's result
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	ids := [2]string{"replica-0_" + suffix, "replica-1_" + suffix}
	for i := range replicas {
		w, err := startWebhook(ctx, filepath.Join(dir, ids[i]), env.cluster, &p, func(c *app.Config) {
			c.CertFile, c.KeyFile = "/not/read.crt", "/not/read.key"
			c.SelfManaged = &certrotate.Config{
				Namespace: cluster.BulwarkNamespace, SecretName: certsSecret, WebhookConfigName: certsConfigName,
				Identity: ids[i], Spec: spec, Recheck: time.Second,
			}
			c.ShutdownTimeout = 10 * time.Second
		})
		if err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
		replicas[i], stop[i] = w, sync.OnceValue(w.Stop)
		t.Cleanup(func() { _ = stop[i]() }) // after a failure; stopped below otherwise
	}
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(time.Millisecond) }

	// The configurations appear after the webhook made its Secret, as in a fresh
	// install, with no caBundle: the leader finds and fills them.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no Secret made: %v", err)
	}
	mwc, vwc, err := cluster.LoadWebhookConfigurations(webhookManifest)
	if err != nil {
		t.Fatal(err)
	}
	mwc.Name, vwc.Name = certsConfigName, certsConfigName
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = urlClientConfig(replicas[0].URL + "/mutate")
		mwc.Webhooks[i].NamespaceSelector.MatchLabels = certsLabel
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = urlClientConfig(replicas[1].URL + "/validate")
		vwc.Webhooks[i].NamespaceSelector.MatchLabels = certsLabel
	}
	adm := env.admin.AdmissionregistrationV1()
	t.Cleanup(func() { _ = env.cluster.UninstallWebhook(context.Background(), certsConfigName) })
	if _, err := adm.MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bundles := func(ctx context.Context) (mutating, validating []byte, err error) {
		m, err := adm.MutatingWebhookConfigurations().Get(ctx, certsConfigName, metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		v, err := adm.ValidatingWebhookConfigurations().Get(ctx, certsConfigName, metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		return m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle, nil
	}

	// Ready: both caBundles are the Secret's ca.crt, both replicas are ready,
	// and the API server admits through them.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		sec, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		m, v, err := bundles(ctx)
		if err != nil || len(m) == 0 || !bytes.Equal(m, sec.Data[certs.CABundleKey]) || !bytes.Equal(v, m) {
			return false, nil
		}
		for _, r := range replicas {
			if _, err := httpsGet(r, m, "/readyz"); err != nil {
				return false, nil
			}
		}
		_, err = env.dev.CoreV1().Pods(ns).Create(ctx, podOf("probe", ctr("web", pinned("web"))), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the replicas never became ready behind an injected caBundle: %v", err)
	}
	sec, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", sec.Type, corev1.SecretTypeTLS)
	}
	first, err := certs.Parse(sec.Data)
	if err != nil || len(first.Bundle) != 1 {
		t.Fatalf("first Secret: %v, bundle of %d", err, len(first.Bundle))
	}
	if diff := slices.Compare(first.Serving.Leaf.DNSNames, spec.DNSNames); diff != 0 || len(first.Serving.Leaf.IPAddresses) != 1 {
		t.Errorf("serving certificate for %v %v, want %v and 127.0.0.1", first.Serving.Leaf.DNSNames, first.Serving.Leaf.IPAddresses, spec.DNSNames)
	}
	// Handshakes refused before a replica had a certificate, if any, are the
	// baseline; none may follow.
	baseline := [2]map[string]float64{}
	for i, r := range replicas {
		baseline[i] = replicaMetrics(t, r, certs.EncodeBundle(first.Bundle))
	}
	t.Logf("ready %s after the start; handshake errors before: %v, %v", since(),
		baseline[0]["bulwark_tls_handshake_errors_total"], baseline[1]["bulwark_tls_handshake_errors_total"])

	// Admissions through the API server, one after another, until stopped.
	runCtx, stopRun := context.WithTimeout(ctx, 50*time.Second)
	defer stopRun()
	var admitted, refused atomic.Int64
	var refusals []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for runCtx.Err() == nil {
			pod := podOf("", ctr("web", pinned("web")))
			pod.GenerateName = "rotating-"
			if _, err := env.dev.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				refused.Add(1)
				mu.Lock()
				refusals = append(refusals, since().String()+": "+err.Error())
				mu.Unlock()
			} else {
				admitted.Add(1)
			}
			time.Sleep(30 * time.Millisecond)
		}
	})

	// What each replica serves, verified as the API server verifies it: against
	// the caBundle of the configuration that calls it.
	type served struct {
		leaf *x509.Certificate
		seen time.Time
	}
	var history [2][]served
	var bundleHistory []string // serials of the caBundle's CAs, as it changes
	var current []byte         // the caBundle last seen
	var clientFailures []string
	maxLeaders, leaderSamples, leaderOf := 0, 0, -1
	var lastScrape time.Time
	observe := func() {
		time.Sleep(100 * time.Millisecond)
		m, v, err := bundles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, v) {
			return // the leader patches one configuration, then the other
		}
		current = m
		if b := bundleSerials(t, m); len(bundleHistory) == 0 || bundleHistory[len(bundleHistory)-1] != b {
			bundleHistory = append(bundleHistory, b)
		}
		for i, r := range replicas {
			resp, err := httpsGet(r, m, "/healthz")
			if err != nil {
				clientFailures = append(clientFailures, fmt.Sprintf("replica %d at %s: %v", i, since(), err))
				continue
			}
			leaf := resp.TLS.PeerCertificates[0]
			if h := history[i]; len(h) == 0 || !h[len(h)-1].leaf.Equal(leaf) {
				history[i] = append(h, served{leaf: leaf, seen: time.Now()})
			}
		}
		if time.Since(lastScrape) > 300*time.Millisecond {
			lastScrape = time.Now()
			leaders := 0
			for i, r := range replicas {
				if replicaMetrics(t, r, m)["bulwark_certificates_leader"] == 1 {
					leaders++
					leaderOf = i
				}
			}
			maxLeaders = max(maxLeaders, leaders)
			if leaders == 1 {
				leaderSamples++
			}
		}
	}
	// settled: the caBundle holds n CAs over its history, the newest alone, and
	// both replicas serve a certificate it signed.
	settled := func(n int) bool {
		if len(bundleHistory) < n || strings.Contains(bundleHistory[len(bundleHistory)-1], " ") {
			return false
		}
		for i := range replicas {
			if h := history[i]; len(h) == 0 || !signedByFirst(h[len(h)-1].leaf, current) {
				return false
			}
		}
		return true
	}
	phase := func(name string, done func() bool) {
		for !done() {
			if runCtx.Err() != nil {
				t.Errorf("%s: not done after %s", name, since())
				return
			}
			observe()
		}
		t.Logf("%s: done at %s", name, since())
	}

	// 1. Scheduled rotations: serving certificate at 12 s, CA at 24 s.
	phase("scheduled rotations", func() bool { return settled(3) && len(history[0]) >= 3 && len(history[1]) >= 3 })

	// 2. A Secret spoilt by hand is repaired; nothing served changes.
	servedBefore := [2]int{len(history[0]), len(history[1])}
	if err := retryUpdate(ctx, func() error {
		sec, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sec.Data[certs.KeyKey] = []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n")
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	phase("spoilt Secret repaired", func() bool {
		sec, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{})
		if err != nil {
			return false
		}
		_, err = certs.Parse(sec.Data)
		return err == nil
	})
	observe()
	for i := range replicas {
		if len(history[i]) != servedBefore[i] {
			t.Errorf("replica %d changed its certificate over the repair", i)
		}
	}
	if sec, err := secrets.Get(ctx, certsSecret, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if m, _ := certs.Parse(sec.Data); m.Serving == nil || !m.Serving.Leaf.Equal(history[0][len(history[0])-1].leaf) {
		t.Error("the repaired Secret does not hold the certificate the replicas serve")
	}

	// 3. Deleting the Secret forces a new CA, as gently as a scheduled rotation.
	if err := secrets.Delete(ctx, certsSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	phase("forced rotation", func() bool { return settled(5) })

	elapsed := time.Since(start)
	stopRun()
	wg.Wait()

	t.Logf("after %s: caBundle CA serials %q; admissions: %d admitted, %d refused", elapsed.Round(time.Millisecond), bundleHistory, admitted.Load(), refused.Load())
	for i, h := range history {
		for _, s := range h {
			t.Logf("replica %d served serial %s (issuer %s, until %s) from %s", i, s.leaf.SerialNumber, s.leaf.Issuer.CommonName,
				s.leaf.NotAfter.Sub(start).Round(time.Millisecond), s.seen.Sub(start).Round(time.Millisecond))
		}
	}
	// caBundle: [A] → [B A] → [B] → [C B] → [C].
	wantShape := func(h []string) bool {
		if len(h) != 5 {
			return false
		}
		a, ba, b, cb, c := strings.Fields(h[0]), strings.Fields(h[1]), strings.Fields(h[2]), strings.Fields(h[3]), strings.Fields(h[4])
		return len(a) == 1 && len(ba) == 2 && len(b) == 1 && len(cb) == 2 && len(c) == 1 &&
			ba[1] == a[0] && b[0] == ba[0] && a[0] != b[0] && cb[1] == b[0] && c[0] == cb[0] && c[0] != b[0]
	}
	if !wantShape(bundleHistory) {
		t.Errorf("caBundle went through %q, want [A], [B A], [B], [C B], [C]", bundleHistory)
	}
	// Every replica served each new certificate before the old one expired.
	for i, h := range history {
		if len(h) < 4 {
			t.Errorf("replica %d served %d certificates, want at least 4 (three rotations)", i, len(h))
		}
		for j := 1; j < len(h); j++ {
			if !h[j].seen.Before(h[j-1].leaf.NotAfter) {
				t.Errorf("replica %d served serial %s only at %s, after serial %s expired at %s", i, h[j].leaf.SerialNumber, h[j].seen.Sub(start), h[j-1].leaf.SerialNumber, h[j-1].leaf.NotAfter.Sub(start))
			}
		}
	}
	if refused.Load() > 0 || admitted.Load() < 50 {
		mu.Lock()
		t.Errorf("%d admitted, %d refused (want at least 50 and 0); first refusals: %q", admitted.Load(), refused.Load(), refusals[:min(3, len(refusals))])
		mu.Unlock()
	}
	if len(clientFailures) > 0 {
		t.Errorf("%d client-side handshake failures against the configurations' caBundle: %q", len(clientFailures), clientFailures[:min(3, len(clientFailures))])
	}
	for i, r := range replicas {
		after := replicaMetrics(t, r, current)
		if d := after["bulwark_tls_handshake_errors_total"] - baseline[i]["bulwark_tls_handshake_errors_total"]; d != 0 {
			t.Errorf("replica %d: %v server-side TLS handshake errors during the rotations", i, d)
		}
		// The API server was moved off every old certificate: each replica told
		// it to reconnect after a rotation, so its handshakes verified the new ones.
		if after["bulwark_tls_stale_connections_closed_total"] < 2 {
			t.Errorf("replica %d closed %v connections of a replaced certificate, want at least 2", i, after["bulwark_tls_stale_connections_closed_total"])
		}
		t.Logf("replica %d: %v server-side handshake errors, %v stale connections closed", i,
			after["bulwark_tls_handshake_errors_total"]-baseline[i]["bulwark_tls_handshake_errors_total"], after["bulwark_tls_stale_connections_closed_total"])
	}
	// One leader, the Lease's holder, which alone wrote.
	if maxLeaders != 1 || leaderSamples == 0 || leaderOf < 0 {
		t.Fatalf("leaders at once: at most %d over %d samples, want exactly 1", maxLeaders, leaderSamples)
	}
	lease, err := leases.Get(ctx, certrotate.DefaultLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder := *lease.Spec.HolderIdentity; holder != ids[leaderOf] {
		t.Errorf("Lease held by %q, the leader gauge says %q", holder, ids[leaderOf])
	}
	writers := certificateWriters(t)
	if len(writers) != 1 || writers[certrotate.UserAgent(ids[leaderOf])] < 10 {
		t.Errorf("writes of the Secret and the configurations by user agent: %v; want only the leader's %q, at least 10", writers, certrotate.UserAgent(ids[leaderOf]))
	}
	t.Logf("writes by user agent: %v; leader replica %d over %d samples", writers, leaderOf, leaderSamples)
	for i, r := range replicas {
		if r.exited() {
			t.Errorf("replica %d stopped during the test (restart)", i)
		}
	}

	// 4. The leader stops: the other replica takes over.
	follower := 1 - leaderOf
	if err := stop[leaderOf](); err != nil {
		t.Errorf("stop the leader: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := leases.Get(ctx, certrotate.DefaultLeaseName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == ids[follower] &&
			replicaMetrics(t, replicas[follower], current)["bulwark_certificates_leader"] == 1, nil
	})
	if err != nil {
		t.Errorf("replica %d did not take over after the leader stopped: %v", follower, err)
	}
	t.Logf("replica %d leads from %s", follower, since())
	if err := stop[follower](); err != nil {
		t.Errorf("stop replica %d: %v", follower, err)
	}
}

// TestSelfManagedCertificatesRBACIsLeastPrivileged applies
// deploy/base/rbac-certs.yaml for real and asks the API server what it allows the
// webhook's service account; then lists the Secret as the bulwark user (bound to
// the same Role) with and without the name field selector.
func TestSelfManagedCertificatesRBACIsLeastPrivileged(t *testing.T) {
	ctx := t.Context()
	applyRBACFile(t, filepath.Join("../..", cluster.BulwarkCertsRBACFile))
	sa := "system:serviceaccount:bulwark-system:bulwark-webhook"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:bulwark-system", "system:authenticated"}
	sys, name := cluster.BulwarkNamespace, certsSecret
	webhooks := "admissionregistration.k8s.io"
	cases := []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		// The Secret: read, watched by name, updated; created (not narrowable).
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: sys, Name: name}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: sys, Name: name}, true},
		{authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets", Namespace: sys, Name: name}, true},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: sys, Name: name}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: sys}, true},
		{authorizationv1.ResourceAttributes{Verb: "delete", Resource: "secrets", Namespace: sys, Name: name}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "secrets", Namespace: sys, Name: name}, false},
		// No other Secret: not listed, not watched, not written.
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: sys}, false},
		{authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets", Namespace: sys}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: sys, Name: "bulwark-grant-key"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: sys, Name: "bulwark-grant-key"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: "team-a"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: "team-a", Name: name}, false},
		// The Lease.
		{authorizationv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: sys, Name: certrotate.DefaultLeaseName}, true},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: sys, Name: certrotate.DefaultLeaseName}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: sys}, true},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: sys, Name: "other"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: sys, Name: certrotate.DefaultLeaseName}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: certrotate.DefaultLeaseName}, false},
		// Its own webhook configurations: read and patched, by name only.
		{authorizationv1.ResourceAttributes{Verb: "get", Group: webhooks, Resource: "mutatingwebhookconfigurations", Name: "bulwark"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: webhooks, Resource: "mutatingwebhookconfigurations", Name: "bulwark"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: webhooks, Resource: "validatingwebhookconfigurations", Name: "bulwark"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: webhooks, Resource: "validatingwebhookconfigurations", Name: "other"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: webhooks, Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: webhooks, Resource: "validatingwebhookconfigurations", Name: "bulwark"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: webhooks, Resource: "mutatingwebhookconfigurations"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: webhooks, Resource: "mutatingwebhookconfigurations"}, false},
	}
	// The API server's RBAC authorizer learns of new bindings through a watch.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		return allowed(ctx, sa, groups, cases[0].attrs), nil
	}); err != nil {
		t.Fatalf("the service account never got its rights: %v", err)
	}
	for _, c := range cases {
		if got := allowed(ctx, sa, groups, c.attrs); got != c.want {
			t.Errorf("%s may %s %s/%s in %q (name %q): %v, want %v", sa, c.attrs.Verb, c.attrs.Group, c.attrs.Resource, c.attrs.Namespace, c.attrs.Name, got, c.want)
		}
	}

	// For real, as the bulwark user: a list narrowed to the name by a field
	// selector passes resourceNames, an unnarrowed one does not.
	bulwark := kubernetes.NewForConfigOrDie(env.cluster.RESTConfig(cluster.Bulwark))
	byName := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", certsSecret).String()}
	if _, err := bulwark.CoreV1().Secrets(sys).List(ctx, byName); err != nil {
		t.Errorf("list with the name field selector: %v", err)
	}
	w, err := bulwark.CoreV1().Secrets(sys).Watch(ctx, byName)
	if err != nil {
		t.Errorf("watch with the name field selector: %v", err)
	} else {
		w.Stop()
	}
	if _, err := bulwark.CoreV1().Secrets(sys).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list of every Secret in %s: %v, want forbidden", sys, err)
	}
}

func allowed(ctx context.Context, user string, groups []string, attrs authorizationv1.ResourceAttributes) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &attrs}}
	res, err := env.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	return err == nil && res.Status.Allowed
}

// applyRBACFile creates or updates, as admin, the Roles, ClusterRoles and their
// bindings in a manifest file.
func applyRBACFile(t *testing.T, path string) {
	t.Helper()
	ctx := t.Context()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rbac := env.admin.RbacV1()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch o := obj.(type) {
		case *rbacv1.Role:
			err = createOrUpdate(ctx, o, rbac.Roles(o.Namespace).Create, rbac.Roles(o.Namespace).Get, rbac.Roles(o.Namespace).Update)
		case *rbacv1.RoleBinding:
			err = createOrUpdate(ctx, o, rbac.RoleBindings(o.Namespace).Create, rbac.RoleBindings(o.Namespace).Get, rbac.RoleBindings(o.Namespace).Update)
		case *rbacv1.ClusterRole:
			err = createOrUpdate(ctx, o, rbac.ClusterRoles().Create, rbac.ClusterRoles().Get, rbac.ClusterRoles().Update)
		case *rbacv1.ClusterRoleBinding:
			err = createOrUpdate(ctx, o, rbac.ClusterRoleBindings().Create, rbac.ClusterRoleBindings().Get, rbac.ClusterRoleBindings().Update)
		default:
			t.Fatalf("%s: unexpected %T", path, obj)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

func createOrUpdate[T interface {
	metav1.Object
	*R
}, R any](ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
) error {
	if _, err := create(ctx, obj, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = update(ctx, obj, metav1.UpdateOptions{})
	return err
}

// grantCertsConfigRights gives the bulwark user the shipped ClusterRole's rights
// on the webhook configurations named name instead of "bulwark".
func grantCertsConfigRights(t *testing.T, name string) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	data, err := os.ReadFile(filepath.Join("../..", cluster.BulwarkCertsRBACFile))
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.ClusterRole
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc, err := r.Read(); err == nil; doc, err = r.Read() {
		if obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil); err == nil {
			if cr, ok := obj.(*rbacv1.ClusterRole); ok {
				role = cr
			}
		}
	}
	if role == nil {
		t.Fatalf("%s has no ClusterRole", cluster.BulwarkCertsRBACFile)
	}
	role.Name = "bulwark-webhook-certs-e2e"
	for i := range role.Rules {
		role.Rules[i].ResourceNames = []string{name}
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: cluster.Bulwark}},
	}
	rbac := env.admin.RbacV1()
	if err := createOrUpdate(ctx, role, rbac.ClusterRoles().Create, rbac.ClusterRoles().Get, rbac.ClusterRoles().Update); err != nil {
		t.Fatal(err)
	}
	if err := createOrUpdate(ctx, binding, rbac.ClusterRoleBindings().Create, rbac.ClusterRoleBindings().Get, rbac.ClusterRoleBindings().Update); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
	})
	attrs := authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: name}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		return allowed(ctx, cluster.Bulwark, nil, attrs), nil
	}); err != nil {
		t.Fatalf("the bulwark user never got the rights on %s: %v", name, err)
	}
}

func urlClientConfig(url string) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{URL: &url}
}

// httpsGet gets path from w over a new connection, trusting only bundle, as the
// API server does with a webhook's caBundle.
func httpsGet(w *webhookServer, bundle []byte, path string) (*http.Response, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("no CA in the bundle")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(w.URL + path)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, fmt.Errorf("%s: %s", resp.Status, body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// replicaMetrics scrapes bulwark's metrics of a replica.
func replicaMetrics(t *testing.T, w *webhookServer, bundle []byte) map[string]float64 {
	t.Helper()
	resp, err := httpsGet(w, bundle, "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", w.URL, err)
	}
	return parseMetrics(resp.Body)
}

// bundleSerials lists the serial numbers of a PEM bundle's CAs, in order.
func bundleSerials(t *testing.T, bundle []byte) string {
	t.Helper()
	m, _ := certs.Parse(map[string][]byte{certs.CABundleKey: bundle})
	var s []string
	for _, c := range m.Bundle {
		s = append(s, c.SerialNumber.String())
	}
	return strings.Join(s, " ")
}

// signedByFirst reports whether leaf was signed by the first CA of bundle.
func signedByFirst(leaf *x509.Certificate, bundle []byte) bool {
	m, _ := certs.Parse(map[string][]byte{certs.CABundleKey: bundle})
	return len(m.Bundle) > 0 && leaf.CheckSignatureFrom(m.Bundle[0]) == nil
}

// certificateWriters counts, by user agent, the writes of the bulwark user to the
// certificate Secret and the test's webhook configurations in the audit log.
func certificateWriters(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile(env.cluster.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		var ev struct {
			Verb      string                                     `json:"verb"`
			UserAgent string                                     `json:"userAgent"`
			Stage     string                                     `json:"stage"`
			User      struct{ Username string }                  `json:"user"`
			ObjectRef struct{ Resource, Namespace, Name string } `json:"objectRef"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.User.Username != cluster.Bulwark || ev.Stage != "ResponseComplete" {
			continue
		}
		if !slices.Contains([]string{"create", "update", "patch", "delete"}, ev.Verb) {
			continue
		}
		secret := ev.ObjectRef.Resource == "secrets" && ev.ObjectRef.Namespace == cluster.BulwarkNamespace
		config := strings.HasSuffix(ev.ObjectRef.Resource, "webhookconfigurations") && ev.ObjectRef.Name == certsConfigName
		if secret || config {
			out[ev.UserAgent]++
		}
	}
	return out
}

// exited reports whether the server's Run has returned.
func (w *webhookServer) exited() bool {
	select {
	case err := <-w.done:
		w.done <- err
		return true
	default:
		return false
	}
}
