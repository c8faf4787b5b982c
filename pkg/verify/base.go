package verify

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
)

// OCI annotations by which an image manifest declares the image it was built on.
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
)

// Base is what an image's manifests declare about its base image.
type Base struct {
	// Outcome is Verified when every manifest was read, whatever they declare;
	// otherwise why not (NotAllowed, Unauthorized, Unavailable) with Detail.
	Outcome Outcome
	Detail  string
	// Declared holds one entry per manifest that declares a base: the image's
	// own manifest, or each platform manifest of an index.
	Declared []BaseRef
	// Undeclared lists the manifests (the platform, or "image") that declare none.
	Undeclared []string
}

// BaseRef is a base declared by one manifest.
type BaseRef struct {
	// Platform is "os/arch[/variant]" for a manifest of an index, else "".
	Platform string
	// Name and Digest are the annotation values, as declared.
	Name   string
	Digest string
}

// Inspector reads what an image declares about its base.
type Inspector interface {
	Base(ctx context.Context, image name.Digest, kc authn.Keychain) Base
}

// BaseCache is an Inspector decorator. A digest's manifests never change, so a
// read is kept until evicted (MaxEntries); failures are not kept.
type BaseCache struct {
	next Inspector
	memo *memo[Base]
}

var _ Inspector = (*BaseCache)(nil)

// maxBaseTTL bounds how long a manifest read is kept: content is immutable, but
// a registry may delete an image.
const maxBaseTTL = 24 * time.Hour

// NewBaseCache returns next behind a cache; metrics, if set, receives
// bulwark_base_cache_total{result}.
func NewBaseCache(next Inspector, maxEntries int, metrics prometheus.Registerer) *BaseCache {
	ttl := func(b Base) time.Duration {
		if b.Outcome != Verified {
			return 0
		}
		return maxBaseTTL
	}
	lookups := lookupCounter("bulwark_base_cache_total",
		"Base-image look-ups asked of the cache, by result: hit, miss, coalesced.", metrics)
	return &BaseCache{next: next, memo: newMemo(ttl, maxEntries, 0, nil, lookups)}
}

// Base implements Inspector.
func (c *BaseCache) Base(ctx context.Context, image name.Digest, kc authn.Keychain) Base {
	return c.memo.do(ctx, image.Context().Name()+"@"+image.DigestStr(),
		func(ctx context.Context) Base { return c.next.Base(ctx, image, kc) },
		func(err error) Base {
			return Base{Outcome: Unavailable, Detail: "manifest not read within the request's time budget: " + err.Error()}
		})
}
