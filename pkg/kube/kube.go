// Package kube implements pkg/admission's cluster-facing interfaces with client-go:
// access reviews for the right to exempt, namespace and owner look-ups, and an
// asynchronous, bounded Event queue. cmd/ wires them; nothing else imports them.
package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// ExemptionGroup and ExemptionResource name the right to grant exemptions:
// verb "exempt" on exemptions.bulwark.dev, resourceName = the check.
const (
	ExemptionGroup    = "bulwark.dev"
	ExemptionResource = "exemptions"
	ExemptionVerb     = "exempt"

	// reviewTTL is how long an access review's answer is reused, so a burst of
	// requests from one user costs one review; a revoked right ends within it.
	reviewTTL = 10 * time.Second
)

// Authorizer asks the API server with SubjectAccessReviews.
type Authorizer struct {
	client kubernetes.Interface
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedReview
}

type cachedReview struct {
	allowed bool
	expires time.Time
}

var _ admission.Authorizer = (*Authorizer)(nil)

// NewAuthorizer returns an Authorizer using client.
func NewAuthorizer(client kubernetes.Interface) *Authorizer {
	return &Authorizer{client: client, now: time.Now, cache: map[string]cachedReview{}}
}

// CanExempt implements admission.Authorizer.
func (a *Authorizer) CanExempt(ctx context.Context, user authenticationv1.UserInfo, namespace string, check policy.CheckID) (bool, error) {
	key := fmt.Sprintf("%q %q %q %q %v %v", user.Username, user.UID, namespace, check, user.Groups, user.Extra)
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.allowed, nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: ExemptionVerb, Group: ExemptionGroup, Resource: ExemptionResource, Name: string(check),
		},
	}}
	res, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	a.mu.Lock()
	if len(a.cache) > 10000 { // bounded: start over rather than grow
		a.cache = map[string]cachedReview{}
	}
	a.cache[key] = cachedReview{allowed: res.Status.Allowed, expires: now.Add(reviewTTL)}
	a.mu.Unlock()
	return res.Status.Allowed, nil
}

// Lookup reads namespaces from an informer cache and owners of ReplicaSets and
// Jobs with a GET (they are read only for pods presenting a grant).
type Lookup struct {
	client     kubernetes.Interface
	namespaces corelisters.NamespaceLister
	synced     cache.InformerSynced
}

var _ admission.Lookup = (*Lookup)(nil)

// NewLookup creates a Lookup whose namespace informer runs with factory; start the
// factory and wait for HasSynced before serving.
func NewLookup(client kubernetes.Interface, factory informers.SharedInformerFactory) *Lookup {
	inf := factory.Core().V1().Namespaces()
	return &Lookup{client: client, namespaces: inf.Lister(), synced: inf.Informer().HasSynced}
}

// HasSynced reports whether the namespace cache is filled.
func (l *Lookup) HasSynced() bool { return l.synced() }

// NamespaceAnnotations implements admission.Lookup. A namespace created a moment
// ago may not be in the cache yet; it is then read from the API server.
func (l *Lookup) NamespaceAnnotations(ctx context.Context, name string) (map[string]string, error) {
	ns, err := l.namespaces.Get(name)
	if err == nil {
		return ns.Annotations, nil
	}
	live, err := l.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return live.Annotations, nil
}

// ControllerOf implements admission.Lookup.
func (l *Lookup) ControllerOf(ctx context.Context, namespace, kind, name string) (*metav1.OwnerReference, error) {
	var meta metav1.Object
	switch kind {
	case "ReplicaSet":
		rs, err := l.client.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		meta = rs
	case "Job":
		job, err := l.client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		meta = job
	default:
		return nil, fmt.Errorf("owners of %s are not looked up", kind)
	}
	return metav1.GetControllerOf(meta), nil
}
