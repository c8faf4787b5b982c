// Package certrotate runs bulwark's self-managed serving certificates in a
// cluster. Every replica watches one Secret and serves the certificate it holds
// (GetCertificate), reloading it without a restart. One replica, elected with a
// Lease, keeps that Secret right (a CA and a serving certificate, rotated before
// they expire) and copies its CA bundle into the caBundle of bulwark's two webhook
// configurations.
//
// What the Secret must hold and when is certs.Plan's decision; this package only
// reads and writes the API, with optimistic concurrency on every write. Only the
// leader writes; it never creates or deletes a webhook configuration.
package certrotate

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/bulwark-dev/bulwark/certs"
)

// Defaults of Config.
const (
	// DefaultLeaseName is the Lease the replicas elect the certificate leader with.
	DefaultLeaseName = "bulwark-webhook-certs"
	// DefaultRecheck is how often the leader re-reads the Secret and the webhook
	// configurations besides watch events: a caBundle reset by hand, or
	// configurations created after the webhook (RBAC allows get by name only, no
	// watch), are repaired within it.
	DefaultRecheck = 10 * time.Second
	// DefaultPropagation is how long the webhook configurations must hold a new CA
	// before a serving certificate it signed is served. API servers see the
	// change through a watch, normally within a second.
	DefaultPropagation = time.Minute
	// Lease timings: client-go's usual values.
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second

	// minInterval spaces the leader's passes, so that a fight with another writer
	// cannot spin.
	minInterval = 200 * time.Millisecond
)

// Config configures a Manager.
type Config struct {
	// Namespace holds the Secret and the Lease.
	Namespace string
	// SecretName is the Secret holding ca.crt, ca.key, tls.crt and tls.key.
	SecretName string
	// WebhookConfigName names the MutatingWebhookConfiguration and the
	// ValidatingWebhookConfiguration whose webhooks get the CA bundle.
	WebhookConfigName string
	// LeaseName is the Lease of the election; default DefaultLeaseName.
	LeaseName string
	// Identity names this replica in the Lease and in the user agent of its
	// writes; default NewIdentity().
	Identity string
	// Spec is what the certificates must be.
	Spec certs.Spec
	// Recheck, LeaseDuration, RenewDeadline, RetryPeriod: zero means the default.
	Recheck       time.Duration
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// NewIdentity returns this replica's name in the election: $POD_NAME, else the
// host name, with a random suffix so that a restarted pod is a new candidate.
func NewIdentity() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return name + "_" + hex.EncodeToString(b)
}

// UserAgent is the user agent of a Manager's API requests; the audit log tells
// the replicas' writes apart by it.
func UserAgent(identity string) string { return "bulwark-webhook-certificates/" + identity }

// Manager serves the Secret's certificate and, while it leads, maintains it.
type Manager struct {
	cfg    Config
	client kubernetes.Interface
	log    logr.Logger
	cert   atomic.Pointer[tls.Certificate]
	// served is the last servable Secret content (cert's source): what the
	// leader falls back on when the Secret is deleted or spoilt.
	served atomic.Pointer[certs.Material]
	// changed wakes the leader when the Secret changes.
	changed chan struct{}

	leading prometheus.Gauge
	expiry  prometheus.Gauge
}

// New returns a Manager using kube (its user agent set to UserAgent), with its
// metrics registered on reg.
func New(kube *rest.Config, cfg Config, reg prometheus.Registerer, log logr.Logger) (*Manager, error) {
	if cfg.LeaseName == "" {
		cfg.LeaseName = DefaultLeaseName
	}
	if cfg.Identity == "" {
		cfg.Identity = NewIdentity()
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.Recheck, DefaultRecheck}, {&cfg.LeaseDuration, DefaultLeaseDuration}, {&cfg.RenewDeadline, DefaultRenewDeadline}, {&cfg.RetryPeriod, DefaultRetryPeriod}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	kube = rest.CopyConfig(kube)
	kube.UserAgent = UserAgent(cfg.Identity)
	client, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	m := &Manager{
		cfg: cfg, client: client, log: log, changed: make(chan struct{}, 1),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_certificates_leader",
			Help: "1 while this replica leads the self-managed certificates (writes the Secret and the caBundle), else 0."}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_serving_certificate_expiry_timestamp_seconds",
			Help: "End of validity (Unix time) of the serving certificate this replica serves; 0 before it has one."}),
	}
	if err := errors.Join(reg.Register(m.leading), reg.Register(m.expiry)); err != nil {
		return nil, err
	}
	return m, nil
}

// GetCertificate returns the serving certificate for tls.Config.GetCertificate:
// the newest valid one the Secret has held.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet (self-managed: waiting for the Secret)")
}

// HasCertificate reports whether a certificate has been loaded: a replica is not
// ready before.
func (m *Manager) HasCertificate() bool { return m.cert.Load() != nil }

// Run watches the Secret and takes part in the election until ctx ends; it
// returns once everything it started has stopped.
func (m *Manager) Run(ctx context.Context) {
	ctx = klog.NewContext(ctx, m.log) // client-go's leader election logs there
	// A field selector on the name makes list and watch requests that RBAC can
	// restrict with resourceNames.
	factory := informers.NewSharedInformerFactoryWithOptions(m.client, 0,
		informers.WithNamespace(m.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", m.cfg.SecretName).String()
		}))
	_, err := factory.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    m.load,
		UpdateFunc: func(_, obj any) { m.load(obj) },
		DeleteFunc: func(any) { m.wake() },
	})
	if err != nil {
		m.log.Error(err, "Cannot watch the certificate Secret")
		return
	}
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { m.elect(ctx) })
	<-ctx.Done()
	factory.Shutdown()
	wg.Wait()
}

func (m *Manager) wake() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// load serves the Secret's certificate if it is valid; otherwise the current one
// stays (the leader replaces what is wrong).
func (m *Manager) load(obj any) {
	m.wake()
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Name != m.cfg.SecretName {
		return
	}
	mat, _ := certs.Parse(sec.Data) // what does not parse is the leader's to replace
	cert, err := mat.ServingCertificate(time.Now())
	if err != nil {
		m.log.Info("Certificate Secret holds no servable certificate; keeping the current one", "secret", sec.Name, "reason", err.Error())
		return
	}
	m.served.Store(&mat) // the bundle may change alone
	if cur := m.cert.Load(); cur != nil && bytes.Equal(cur.Certificate[0], cert.Certificate[0]) {
		return
	}
	m.cert.Store(cert)
	m.expiry.Set(float64(cert.Leaf.NotAfter.Unix()))
	m.log.Info("Serving certificate loaded", "serial", cert.Leaf.SerialNumber.String(), "notAfter", cert.Leaf.NotAfter, "issuer", cert.Leaf.Issuer.CommonName)
}

// elect campaigns for the Lease until ctx ends, and leads whenever it holds it.
// A lost lease means campaigning again, never exiting: the replica keeps serving.
func (m *Manager) elect(ctx context.Context) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: m.cfg.Namespace, Name: m.cfg.LeaseName},
		Client:     m.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: m.cfg.Identity},
	}
	for ctx.Err() == nil {
		// OnStartedLeading only hands over its context: leading runs here, so
		// that two terms never overlap in this process.
		term := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			Name:          m.cfg.LeaseName,
			LeaseDuration: m.cfg.LeaseDuration,
			RenewDeadline: m.cfg.RenewDeadline,
			RetryPeriod:   m.cfg.RetryPeriod,
			// Another replica takes over at once when this one stops. A write
			// still in flight then cannot overwrite the new leader's: every write
			// carries the resourceVersion it was based on.
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) { term <- ctx },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			m.log.Error(err, "Leader election misconfigured; this replica never writes certificates")
			<-ctx.Done()
			return
		}
		ended := make(chan struct{})
		go func() { le.Run(ctx); close(ended) }()
		select {
		case termCtx := <-term:
			m.lead(termCtx)
			<-ended
		case <-ended:
		}
	}
}

// lead keeps the Secret and the webhook configurations right until ctx ends.
func (m *Manager) lead(ctx context.Context) {
	m.leading.Set(1)
	defer m.leading.Set(0)
	log := m.log.WithValues("identity", m.cfg.Identity)
	log.Info("Leading the self-managed certificates", "lease", m.cfg.LeaseName)
	defer log.Info("No longer leading the self-managed certificates")
	// trusted: when the webhook configurations were seen holding the bundle
	// whose first CA is the key. Empty at each term: a new leader waits a full
	// propagation before it serves from a CA it has not seen trusted.
	trusted := map[string]time.Time{}
	backoff := time.Second
	for {
		next, err := m.pass(ctx, trusted)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error(err, "Certificate pass failed; retrying", "in", backoff.String())
			next = time.Now().Add(backoff)
			backoff = min(2*backoff, m.cfg.Recheck)
		} else {
			backoff = time.Second
		}
		wait := min(max(time.Until(next), minInterval), m.cfg.Recheck)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-m.changed:
			timer.Stop()
			// A burst of events (our own write among them) makes one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(minInterval):
			}
		case <-timer.C:
		}
	}
}

// pass reads the Secret, writes what certs.Plan decides, then makes the webhook
// configurations trust its bundle. It returns when to pass again at the latest.
func (m *Manager) pass(ctx context.Context, trusted map[string]time.Time) (time.Time, error) {
	secrets := m.client.CoreV1().Secrets(m.cfg.Namespace)
	sec, err := secrets.Get(ctx, m.cfg.SecretName, metav1.GetOptions{})
	absent := apierrors.IsNotFound(err)
	if err != nil && !absent {
		return time.Time{}, fmt.Errorf("read Secret %s: %w", m.cfg.SecretName, err)
	}
	var data map[string][]byte
	if !absent {
		data = sec.Data
	}
	mat, problems := certs.Parse(data)
	if served := m.served.Load(); served != nil {
		mat = certs.Salvage(mat, *served)
	}
	now := time.Now()
	d, err := certs.Plan(now, mat, m.cfg.Spec, trusted[caKey(mat)])
	if err != nil {
		return time.Time{}, fmt.Errorf("plan certificates: %w", err)
	}
	if problems != nil && !absent {
		m.log.Info("Certificate Secret content is unusable; replacing it", "secret", m.cfg.SecretName, "problems", problems.Error())
		if d.Next == nil { // all salvaged: write it back whole
			d.Next, d.Reasons = &mat, []string{"unusable content replaced"}
		}
	}
	if d.Next != nil {
		out, err := d.Next.Data()
		if err != nil {
			return time.Time{}, err
		}
		if absent {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: m.cfg.SecretName, Namespace: m.cfg.Namespace, Labels: map[string]string{
					"app.kubernetes.io/name": "bulwark", "app.kubernetes.io/component": "webhook", "app.kubernetes.io/managed-by": "bulwark-webhook",
				}},
				Type: corev1.SecretTypeTLS,
				Data: out,
			}
			if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
				if apierrors.IsAlreadyExists(err) {
					m.log.Info("Certificate Secret created meanwhile; planning again", "secret", m.cfg.SecretName)
					return now, nil
				}
				return time.Time{}, fmt.Errorf("create Secret %s: %w", m.cfg.SecretName, err)
			}
		} else {
			sec = sec.DeepCopy()
			if sec.Data == nil {
				sec.Data = map[string][]byte{}
			}
			for k, v := range out { // other keys are left as they are
				sec.Data[k] = v
			}
			// Update carries the resourceVersion read above: a concurrent write
			// (another leader, a hand edit) makes it fail, and the next pass
			// plans again from what is there.
			if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
				if apierrors.IsConflict(err) {
					m.log.Info("Certificate Secret changed meanwhile; planning again", "secret", m.cfg.SecretName)
					return now, nil
				}
				return time.Time{}, fmt.Errorf("update Secret %s: %w", m.cfg.SecretName, err)
			}
		}
		m.log.Info("Certificates written", "secret", m.cfg.SecretName, "reasons", d.Reasons,
			"serial", d.Next.Serving.Leaf.SerialNumber.String(), "notAfter", d.Next.Serving.Leaf.NotAfter,
			"bundle", certs.BundleString(d.Next.Bundle))
		mat = *d.Next
	}
	if err := m.inject(ctx, certs.EncodeBundle(mat.Bundle)); err != nil {
		return time.Time{}, err
	}
	key := caKey(mat)
	if _, ok := trusted[key]; !ok {
		clear(trusted)
		trusted[key] = time.Now()
	}
	return d.Recheck, nil
}

// caKey identifies a bundle by its first CA.
func caKey(m certs.Material) string {
	if len(m.Bundle) == 0 {
		return ""
	}
	return string(m.Bundle[0].Raw)
}

// inject sets every webhook's caBundle in the two configurations to bundle. A
// configuration that does not exist is left so: bulwark never creates one
// (deleting them is the emergency procedure).
func (m *Manager) inject(ctx context.Context, bundle []byte) error {
	admission := m.client.AdmissionregistrationV1()
	name := m.cfg.WebhookConfigName
	mutating := configuration(admission.MutatingWebhookConfigurations(), func(c *admissionregistrationv1.MutatingWebhookConfiguration) (b [][]byte) {
		for _, w := range c.Webhooks {
			b = append(b, w.ClientConfig.CABundle)
		}
		return b
	})
	validating := configuration(admission.ValidatingWebhookConfigurations(), func(c *admissionregistrationv1.ValidatingWebhookConfiguration) (b [][]byte) {
		for _, w := range c.Webhooks {
			b = append(b, w.ClientConfig.CABundle)
		}
		return b
	})
	for _, t := range []struct {
		kind string
		c    webhookConfiguration
	}{{"MutatingWebhookConfiguration", mutating}, {"ValidatingWebhookConfiguration", validating}} {
		kind, c := t.kind, t.c
		obj, current, err := c.get(ctx, name)
		if apierrors.IsNotFound(err) {
			m.log.V(1).Info("Webhook configuration absent; nothing to inject", "kind", kind, "name", name)
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s %s: %w", kind, name, err)
		}
		patch := caBundlePatch(obj.GetResourceVersion(), current, bundle)
		if patch == nil {
			continue
		}
		if err := c.patch(ctx, name, patch); err != nil {
			return fmt.Errorf("set caBundle of %s %s: %w", kind, name, err)
		}
		m.log.Info("CA bundle injected", "kind", kind, "name", name, "webhooks", len(current))
	}
	return nil
}

// webhookConfiguration reads a webhook configuration's caBundles and patches it,
// for either kind.
type webhookConfiguration struct {
	get   func(ctx context.Context, name string) (metav1.Object, [][]byte, error)
	patch func(ctx context.Context, name string, jsonPatch []byte) error
}

// configuration adapts a typed client of one webhook configuration kind.
func configuration[C metav1.Object](client interface {
	Get(context.Context, string, metav1.GetOptions) (C, error)
	Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (C, error)
}, bundles func(C) [][]byte) webhookConfiguration {
	return webhookConfiguration{
		get: func(ctx context.Context, name string) (metav1.Object, [][]byte, error) {
			c, err := client.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, nil, err
			}
			return c, bundles(c), nil
		},
		patch: func(ctx context.Context, name string, p []byte) error {
			_, err := client.Patch(ctx, name, types.JSONPatchType, p, metav1.PatchOptions{})
			return err
		},
	}
}

// caBundlePatch is the JSON patch setting the caBundle of every webhook whose
// caBundle differs from bundle, or nil when none does. It also sets the
// resourceVersion read: the API server then refuses it (409 Conflict) if the
// configuration changed since, so the webhook list it indexes is the one read.
func caBundlePatch(resourceVersion string, current [][]byte, bundle []byte) []byte {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value string `json:"value"`
	}
	ops := []op{{Op: "replace", Path: "/metadata/resourceVersion", Value: resourceVersion}}
	for i, cur := range current {
		if !bytes.Equal(cur, bundle) {
			ops = append(ops, op{Op: "add", Path: fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), Value: base64.StdEncoding.EncodeToString(bundle)})
		}
	}
	if len(ops) == 1 {
		return nil
	}
	b, _ := json.Marshal(ops)
	return b
}
