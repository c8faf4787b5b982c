package kube

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/scan"
)

// defaultRetryAfter is what a denial says when no scan has finished yet to
// estimate from.
const defaultRetryAfter = 15 * time.Second

// Scans is admission's view of ImageScans: an informer cache, creation of the
// missing ones, and waiting for them within a request's budget. Every webhook
// replica reads the same objects, so a digest is scanned once cluster-wide.
type Scans struct {
	cache  ctrlcache.Cache
	client client.Client
	now    func() time.Time

	mu      sync.Mutex
	changed map[string]*waiters // per scan name, while someone waits
	// newestDB is the build time of the newest vulnerability database any scan
	// used, and when it was first seen: scans made with an older one are
	// outdated from then on.
	newestDB, newestDBSeen time.Time
	// scanTime averages how long scans took, to estimate RetryAfter.
	scanTime time.Duration
}

var _ admission.Scans = (*Scans)(nil)

// NewScans returns Scans for the API server of cfg; Start runs its cache.
func NewScans(cfg *rest.Config) (*Scans, error) {
	scheme := v1alpha1.NewScheme()
	c, err := ctrlcache.New(cfg, ctrlcache.Options{Scheme: scheme, ByObject: map[client.Object]ctrlcache.ByObject{}})
	if err != nil {
		return nil, fmt.Errorf("image scan cache: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		return nil, fmt.Errorf("image scan client: %w", err)
	}
	s := &Scans{cache: c, client: cl, now: time.Now, changed: map[string]*waiters{}}
	inf, err := c.GetInformer(context.Background(), &v1alpha1.ImageScan{})
	if err != nil {
		return nil, fmt.Errorf("image scan informer (is the ImageScan CRD installed? deploy/base/crds): %w", err)
	}
	notify := func(obj any) {
		if is, ok := obj.(*v1alpha1.ImageScan); ok {
			s.observe(is)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Start runs the cache until ctx ends.
func (s *Scans) Start(ctx context.Context) error { return s.cache.Start(ctx) }

// HasSynced reports whether the cache holds every ImageScan.
func (s *Scans) HasSynced(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	return s.cache.WaitForCacheSync(ctx)
}

// observe wakes the waiters of is and keeps the figures RetryAfter and Outdated
// are computed from.
func (s *Scans) observe(is *v1alpha1.ImageScan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.changed[is.Name]; ok {
		close(w.ch)
		w.ch = make(chan struct{})
	}
	if is.Status.Phase == v1alpha1.ScanComplete && is.Status.DBBuilt != nil && is.Status.DBBuilt.After(s.newestDB) {
		s.newestDB, s.newestDBSeen = is.Status.DBBuilt.Time, s.now()
	}
	if is.Status.Phase == v1alpha1.ScanComplete && is.Status.ScannedAt != nil {
		if d := is.Status.ScannedAt.Sub(is.CreationTimestamp.Time); d > 0 && d < time.Hour {
			if s.scanTime == 0 {
				s.scanTime = d
			} else {
				s.scanTime = (s.scanTime*7 + d) / 8
			}
		}
	}
}

// waiters wake the callers waiting for one scan: ch is closed (and replaced)
// when it changes; n counts the callers, so the entry goes with the last.
type waiters struct {
	ch chan struct{}
	n  int
}

// watch registers a caller waiting for the named scan and returns the function
// that gives the channel closed at its next change, and the one that
// unregisters the caller.
func (s *Scans) watch(name string) (next func() <-chan struct{}, done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.changed[name]
	if !ok {
		w = &waiters{ch: make(chan struct{})}
		s.changed[name] = w
	}
	w.n++
	next = func() <-chan struct{} {
		s.mu.Lock()
		defer s.mu.Unlock()
		return w.ch
	}
	done = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.n--; w.n == 0 {
			delete(s.changed, name)
		}
	}
	return next, done
}

// Await implements admission.Scans: it creates the ImageScan when there is none
// and waits, until ctx ends, for it to complete or fail.
func (s *Scans) Await(ctx context.Context, req admission.ScanRequest) scan.State {
	n, err := v1alpha1.NameFor(req.Image.DigestStr())
	if err != nil {
		return scan.State{Phase: scan.PhaseFailed, Reason: "InvalidDigest", Message: err.Error()}
	}
	created := false
	next, done := s.watch(n)
	defer done()
	for {
		changed := next()
		var is v1alpha1.ImageScan
		err := s.cache.Get(ctx, client.ObjectKey{Name: n}, &is)
		switch {
		case err == nil:
			if st := s.state(&is); st.Phase != scan.PhasePending {
				return st
			}
		case apierrors.IsNotFound(err) && !created:
			if err := s.create(ctx, n, req); err != nil && !apierrors.IsAlreadyExists(err) {
				return scan.State{Phase: scan.PhasePending, RetryAfter: s.retryAfter(), Message: "could not start the scan: " + err.Error()}
			}
			created = true
		case !apierrors.IsNotFound(err):
			return scan.State{Phase: scan.PhasePending, RetryAfter: s.retryAfter(), Message: err.Error()}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return scan.State{Phase: scan.PhasePending, RetryAfter: s.retryAfter()}
		}
	}
}

func (s *Scans) create(ctx context.Context, n string, req admission.ScanRequest) error {
	is := &v1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: n},
		Spec:       v1alpha1.ImageScanSpec{Image: req.Image.Context().Name() + "@" + req.Image.DigestStr(), Platforms: req.Platforms},
	}
	if req.Namespace != "" {
		is.Spec.Credentials = &v1alpha1.ScanCredentials{Namespace: req.Namespace, ServiceAccountName: req.ServiceAccount, ImagePullSecrets: req.PullSecrets}
	}
	return s.client.Create(ctx, is)
}

func (s *Scans) retryAfter() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scanTime > 0 {
		return max(s.scanTime, time.Second)
	}
	return defaultRetryAfter
}

// state translates an ImageScan for pkg/policy.
func (s *Scans) state(is *v1alpha1.ImageScan) scan.State {
	s.mu.Lock()
	newest, seen := s.newestDB, s.newestDBSeen
	s.mu.Unlock()
	st := StateOf(is)
	if st.Phase == scan.PhaseComplete && st.Report != nil && st.Report.DBBuilt.Before(newest) {
		st.Outdated = s.now().Sub(seen)
	}
	if st.Phase == scan.PhasePending {
		st.RetryAfter = s.retryAfter()
	}
	return st
}

// StateOf translates the status of an ImageScan into what admission decides on.
func StateOf(is *v1alpha1.ImageScan) scan.State {
	st := is.Status
	switch st.Phase {
	case v1alpha1.ScanFailed:
		return scan.State{Phase: scan.PhaseFailed, Reason: st.Reason, Message: st.Message}
	case v1alpha1.ScanComplete:
	default:
		// A rescan keeps Complete; anything else is not finished.
		return scan.State{Phase: scan.PhasePending}
	}
	r := &scan.Report{Image: is.Spec.Image, Scanner: st.Scanner, Omitted: int(st.FindingsOmitted)}
	if st.DBBuilt != nil {
		r.DBBuilt = st.DBBuilt.Time
	}
	if st.ScannedAt != nil {
		r.ScannedAt = st.ScannedAt.Time
	}
	for _, f := range st.Findings {
		cvss, _ := strconv.ParseFloat(f.CVSS, 64)
		r.Findings = append(r.Findings, scan.Finding{ID: f.ID, Severity: scan.Severity(f.Severity), CVSS: cvss,
			Package: f.Package, Type: f.Type, Installed: f.Installed, FixedIn: f.FixedIn, Platform: f.Platform})
	}
	return scan.State{Phase: scan.PhaseComplete, Report: r}
}

// ImageOf parses an ImageScan's image.
func ImageOf(is *v1alpha1.ImageScan) (name.Digest, error) { return name.NewDigest(is.Spec.Image) }
