// Package worker runs scans for ImageScan objects: it claims pending scans with
// optimistic concurrency and a claim expiry (a crashed worker's scan is retried
// by another), scans through the registry client's egress guard with the
// credentials the ImageScan names, and writes the result to the status. Any
// number of workers (the scanner Deployment, or the webhook itself for small
// clusters) share the work through the API server. It knows no scanner library:
// a scan.Scanner is injected.
package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Defaults of Options.
const (
	DefaultClaimTTL    = 60 * time.Second
	DefaultConcurrency = 2
	DefaultMaxAttempts = 3
	// RetryFailedAfter is how long a scan failed for an unavailable registry
	// waits before it is tried again.
	RetryFailedAfter  = 5 * time.Minute
	reasonUnavailable = "RegistryUnavailable"
	// MaxFindings is how many findings a status lists (the CRD's bound).
	MaxFindings = 200
	maxMessage  = 1024
)

// Keychains gives the credentials of a namespace's service account and pull
// secrets (pkg/registry.Keychains).
type Keychains interface {
	ForPod(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)
}

// Options configure a Worker. Scanner and Registry are required.
type Options struct {
	Scanner  scan.Scanner
	Registry *registry.Client
	// Keychains, if nil, means anonymous registry access.
	Keychains Keychains
	// ID names this worker in claims; default the host name and a random suffix.
	ID string
	// ClaimTTL is how long a claim holds without renewal; a worker renews it
	// every third of it while it scans. Default DefaultClaimTTL.
	ClaimTTL time.Duration
	// Concurrency bounds the scans run at once. Default DefaultConcurrency.
	Concurrency int
	// MaxAttempts bounds the tries of a scan the registry keeps failing.
	MaxAttempts int
	// Threshold is the lowest severity recorded in the status' findings
	// (counts include every finding). Default Low.
	Threshold scan.Severity
	// Limits bound each scan.
	Limits scan.Limits
	// DBBuilt, if set, returns the build time of the scanner's database: a
	// complete scan made with an older one is scanned again.
	DBBuilt func() time.Time
	// Notify, if set, is called after a rescan found findings at or above
	// AlertThreshold that the previous result did not have: a newer database
	// made the image non-compliant while it may be running.
	Notify         func(ctx context.Context, is *v1alpha1.ImageScan, added []v1alpha1.Finding)
	AlertThreshold scan.Severity
	Log            logr.Logger
}

// Worker claims and runs scans.
type Worker struct {
	o      Options
	cache  ctrlcache.Cache
	client client.Client
	// api reads the API server directly: a worker must see its own claim at
	// once, not when the informer catches up.
	api   client.Client
	queue workqueue.TypedRateLimitingInterface[string]
	now   func() time.Time
}

// New returns a Worker for the API server of cfg.
func New(cfg *rest.Config, o Options) (*Worker, error) {
	if o.Scanner == nil || o.Registry == nil {
		return nil, errors.New("scan worker: Scanner and Registry are required")
	}
	if o.ClaimTTL <= 0 {
		o.ClaimTTL = DefaultClaimTTL
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Threshold == "" {
		o.Threshold = scan.SeverityLow
	}
	if o.ID == "" {
		o.ID = defaultID()
	}
	scheme := v1alpha1.NewScheme()
	c, err := ctrlcache.New(cfg, ctrlcache.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		return nil, err
	}
	api, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	w := &Worker{o: o, cache: c, client: cl, api: api, now: time.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "imagescans"})}
	return w, nil
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	inf, err := w.cache.GetInformer(ctx, &v1alpha1.ImageScan{})
	if err != nil {
		return err
	}
	enqueue := func(obj any) {
		if is, ok := obj.(*v1alpha1.ImageScan); ok && w.claimable(is) {
			w.queue.Add(is.Name)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return err
	}
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- w.cache.Start(ctx) }()
	if !w.cache.WaitForCacheSync(ctx) {
		return errors.Join(errors.New("scan worker: cache did not sync"), ctx.Err())
	}
	var wg sync.WaitGroup
	for range w.o.Concurrency {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	// Claims lapse without an event: look again regularly.
	tick := time.NewTicker(w.o.ClaimTTL / 3)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			var list v1alpha1.ImageScanList
			if err := w.cache.List(ctx, &list); err == nil {
				for i := range list.Items {
					enqueue(&list.Items[i])
				}
			}
		}
	}
	w.queue.ShutDown()
	wg.Wait()
	return <-cacheErr
}

func (w *Worker) next(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	if err := w.process(ctx, key); err != nil && ctx.Err() == nil {
		w.o.Log.Info("Scan not finished", "imagescan", key, "error", err.Error())
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	return true
}

// claimable: nobody holds a live claim, and the scan is due.
func (w *Worker) claimable(is *v1alpha1.ImageScan) bool {
	st := is.Status
	// A live claim, or a pause after a failed try (ClaimExpires without a
	// claimant), keeps it.
	if st.ClaimExpires != nil && w.now().Before(st.ClaimExpires.Time) {
		return false
	}
	switch st.Phase {
	case "", v1alpha1.ScanPending, v1alpha1.ScanScanning:
		return true
	case v1alpha1.ScanComplete:
		return w.o.DBBuilt != nil && st.DBBuilt != nil && st.DBBuilt.Time.Before(w.o.DBBuilt())
	case v1alpha1.ScanFailed:
		// A registry that was unavailable is tried again after the pause; the
		// scan's other failures are final for its digest.
		return st.Reason == reasonUnavailable
	}
	return false
}

func (w *Worker) process(ctx context.Context, key string) error {
	var is v1alpha1.ImageScan
	if err := w.cache.Get(ctx, client.ObjectKey{Name: key}, &is); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !w.claimable(&is) {
		return nil
	}
	// Claim: the update fails with a conflict if another worker got there first.
	claimed := is.DeepCopy()
	claimed.Status.ClaimedBy = w.o.ID
	claimed.Status.ClaimExpires = &metav1.Time{Time: w.now().Add(w.o.ClaimTTL)}
	claimed.Status.Attempts++
	if claimed.Status.Phase != v1alpha1.ScanComplete {
		claimed.Status.Phase = v1alpha1.ScanScanning
	}
	if err := w.client.Status().Update(ctx, claimed); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("claim: %w", err)
	}
	log := w.o.Log.WithValues("imagescan", key, "image", is.Spec.Image)
	log.Info("Scan claimed", "attempt", claimed.Status.Attempts)

	scanCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		w.renew(scanCtx, cancel, key)
	}()
	report, err := w.scan(scanCtx, &is)
	cancel()
	<-renewed
	if ctx.Err() != nil {
		// Shutting down: leave the claim to lapse; another worker takes it.
		return nil
	}
	return w.finish(ctx, key, claimed.Status.Attempts, report, err, log)
}

// renew extends the claim until ctx ends; it cancels the scan if the claim is lost.
func (w *Worker) renew(ctx context.Context, cancel context.CancelFunc, key string) {
	t := time.NewTicker(w.o.ClaimTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var is v1alpha1.ImageScan
		if err := w.api.Get(ctx, client.ObjectKey{Name: key}, &is); err != nil {
			continue
		}
		if is.Status.ClaimedBy != w.o.ID {
			cancel()
			return
		}
		is.Status.ClaimExpires = &metav1.Time{Time: w.now().Add(w.o.ClaimTTL)}
		if err := w.client.Status().Update(ctx, &is); apierrors.IsConflict(err) {
			continue // retried at the next tick with a fresh copy
		}
	}
}

func (w *Worker) scan(ctx context.Context, is *v1alpha1.ImageScan) (*scan.Report, error) {
	d, err := name.NewDigest(is.Spec.Image)
	if err != nil {
		return nil, fmt.Errorf("spec.image: %w", err)
	}
	if err := w.o.Registry.CheckReference(d); err != nil {
		return nil, err
	}
	var kc authn.Keychain
	if c := is.Spec.Credentials; c != nil && w.o.Keychains != nil {
		if kc, err = w.o.Keychains.ForPod(ctx, c.Namespace, c.ServiceAccountName, c.ImagePullSecrets); err != nil {
			// The API server's trouble, not the image's: try again.
			return nil, &retryable{fmt.Errorf("read pull secrets: %w", err)}
		}
	}
	var platforms []v1.Platform
	for _, p := range is.Spec.Platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("spec.platforms: %w", err)
		}
		platforms = append(platforms, *pl)
	}
	return w.o.Scanner.Scan(ctx, scan.Request{Image: d, Platforms: platforms, Remote: w.o.Registry.RemoteOptionsFor(ctx, d, kc), Limits: w.o.Limits})
}

// finish writes the result if the claim is still this worker's.
func (w *Worker) finish(ctx context.Context, key string, attempts int32, report *scan.Report, scanErr error, log logr.Logger) error {
	for range 3 {
		var is v1alpha1.ImageScan
		if err := w.api.Get(ctx, client.ObjectKey{Name: key}, &is); err != nil {
			return client.IgnoreNotFound(err)
		}
		if is.Status.ClaimedBy != w.o.ID {
			log.Info("Scan result dropped: the claim was lost")
			return nil
		}
		st := &is.Status
		var before []v1alpha1.Finding
		rescan := st.Phase == v1alpha1.ScanComplete
		if rescan {
			before = append(before, st.Findings...)
		}
		st.ClaimedBy, st.ClaimExpires = "", nil
		switch {
		case scanErr == nil:
			w.complete(st, report)
			log.Info("Scan finished", "critical", st.Counts.Critical, "high", st.Counts.High, "db", st.DBBuilt)
		case errors.Is(scanErr, scan.ErrLimits) && !rescan:
			st.Phase, st.Reason, st.Message = v1alpha1.ScanFailed, "ExceedsScanLimits", bound(scanErr.Error())
			st.ScannedAt = &metav1.Time{Time: w.now()}
			log.Info("Scan failed", "reason", st.Reason, "error", scanErr.Error())
		case !registry.IsRegistryError(scanErr) && !errors.As(scanErr, new(*retryable)) && !rescan:
			// The image itself cannot be scanned (a config without a platform,
			// layers that are not tar): final for this digest.
			st.Phase, st.Reason, st.Message = v1alpha1.ScanFailed, "ScanError", bound(scanErr.Error())
			st.ScannedAt = &metav1.Time{Time: w.now()}
			log.Info("Scan failed", "reason", st.Reason, "error", scanErr.Error())
		default:
			outcome, detail := registry.Failure(imageRegistry(is.Spec.Image), "image "+is.Spec.Image, scanErr)
			reason := map[verify.Outcome]string{verify.NotAllowed: "RegistryNotAllowed", verify.Unauthorized: "RegistryUnauthorized"}[outcome]
			switch {
			case reason != "":
				st.Phase = v1alpha1.ScanFailed
			case attempts%int32(w.o.MaxAttempts) == 0:
				st.Phase, reason = v1alpha1.ScanFailed, reasonUnavailable
			default:
				// Transient: back in the queue for another try.
				st.Phase, reason = v1alpha1.ScanPending, reasonUnavailable
			}
			if reason == "" {
				reason = reasonUnavailable
			}
			if rescan {
				// A failed rescan keeps the result it had; it is tried again
				// after the pause.
				st.Phase = v1alpha1.ScanComplete
			}
			st.Reason, st.Message = reason, bound(detail)
			if st.Phase != v1alpha1.ScanPending {
				// Not before the pause (ClaimExpires without a claimant).
				st.ClaimExpires = &metav1.Time{Time: w.now().Add(RetryFailedAfter)}
			}
			log.Info("Scan failed", "reason", reason, "phase", st.Phase, "error", detail)
		}
		st.ObservedGeneration = is.Generation
		err := w.client.Status().Update(ctx, &is)
		if err == nil && rescan && scanErr == nil && w.o.Notify != nil {
			if added := w.added(before, st.Findings); len(added) > 0 {
				w.o.Notify(ctx, &is, added)
			}
		}
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errors.New("status update kept conflicting")
}

// retryable marks an error worth another try that is not the registry's.
type retryable struct{ error }

func (r *retryable) Unwrap() error { return r.error }

// added returns the findings of after, at or above the alert threshold, that
// before did not have.
func (w *Worker) added(before, after []v1alpha1.Finding) []v1alpha1.Finding {
	known := map[string]bool{}
	for _, f := range before {
		known[f.ID+" "+f.Package+" "+f.Installed] = true
	}
	threshold := w.o.AlertThreshold
	if threshold == "" {
		threshold = scan.SeverityCritical
	}
	var out []v1alpha1.Finding
	for _, f := range after {
		if !known[f.ID+" "+f.Package+" "+f.Installed] && scan.Severity(f.Severity).Rank() >= threshold.Rank() {
			out = append(out, f)
		}
	}
	return out
}

// complete records report in st: counts of every finding, the findings at or
// above the threshold up to MaxFindings.
func (w *Worker) complete(st *v1alpha1.ImageScanStatus, r *scan.Report) {
	st.Phase, st.Reason, st.Message = v1alpha1.ScanComplete, "", ""
	st.Scanner = r.Scanner
	st.DBBuilt = &metav1.Time{Time: r.DBBuilt}
	st.ScannedAt = &metav1.Time{Time: r.ScannedAt}
	st.Counts = v1alpha1.SeverityCounts{}
	st.Findings, st.FindingsOmitted = nil, 0
	for _, f := range r.Findings {
		switch f.Severity {
		case scan.SeverityCritical:
			st.Counts.Critical++
		case scan.SeverityHigh:
			st.Counts.High++
		case scan.SeverityMedium:
			st.Counts.Medium++
		case scan.SeverityLow:
			st.Counts.Low++
		case scan.SeverityNegligible:
			st.Counts.Negligible++
		default:
			st.Counts.Unknown++
		}
		if f.Severity.Rank() < w.o.Threshold.Rank() {
			continue
		}
		if len(st.Findings) == MaxFindings {
			st.FindingsOmitted++
			continue
		}
		cvss := ""
		if f.CVSS > 0 {
			cvss = strconv.FormatFloat(f.CVSS, 'f', 1, 64)
		}
		st.Findings = append(st.Findings, v1alpha1.Finding{ID: f.ID, Severity: string(f.Severity), CVSS: cvss, Package: f.Package,
			Type: f.Type, Installed: f.Installed, FixedIn: f.FixedIn, Platform: f.Platform})
	}
}

func imageRegistry(image string) string {
	if d, err := name.NewDigest(image); err == nil {
		return d.RegistryStr()
	}
	return image
}

func bound(s string) string {
	if len(s) > maxMessage {
		return s[:maxMessage-3] + "..."
	}
	return s
}
