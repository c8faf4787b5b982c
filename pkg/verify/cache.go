package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultCacheEntries bounds a Cache.
	DefaultCacheEntries = 10000
	// DefaultVerifyTimeout bounds one shared verification, whoever waits for it.
	DefaultVerifyTimeout = 10 * time.Second
	maxNegativeTTL       = time.Minute
)

// CacheOptions configure a Cache.
type CacheOptions struct {
	// TTL is how long a Verified result is reused; zero disables caching.
	TTL time.Duration
	// NegativeTTL is how long a definitive failure (unsigned, mismatch, not
	// allowed) is reused; default TTL/10, at most a minute. Transient results
	// (registry unavailable, credentials refused) are never cached.
	NegativeTTL time.Duration
	// MaxEntries defaults to DefaultCacheEntries.
	MaxEntries int
	// Timeout bounds one verification shared by concurrent callers; default
	// DefaultVerifyTimeout. Each caller still waits only as long as its context.
	Timeout time.Duration
	// Metrics, if set, receives bulwark_signature_cache_total{result}.
	Metrics prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
}

// Cache is a Verifier decorator: results are kept by (repository, digest, trust
// rule) and concurrent misses for one key share a single verification.
type Cache struct {
	next Verifier
	memo *memo[Result]
}

var _ Verifier = (*Cache)(nil)

// NewCache returns next behind a cache configured by o.
func NewCache(next Verifier, o CacheOptions) *Cache {
	if o.NegativeTTL == 0 {
		o.NegativeTTL = min(o.TTL/10, maxNegativeTTL)
	}
	ttl := func(r Result) time.Duration {
		switch {
		case r.Transient():
			return 0
		case r.Outcome == Verified:
			return o.TTL
		default:
			return o.NegativeTTL
		}
	}
	lookups := lookupCounter("bulwark_signature_cache_total",
		"Signature verifications asked of the cache, by result: hit, miss (a verification ran), coalesced (waited for one running).", o.Metrics)
	return &Cache{next: next, memo: newMemo(ttl, o.MaxEntries, o.Timeout, o.Now, lookups)}
}

// CacheKey identifies what a verification depends on: the image's repository and
// digest (signatures live next to the image), the authorities and threshold, the
// attestations required and whether every platform must verify.
// Credentials are not part of it: they decide access, not what was signed.
func CacheKey(req Request) string {
	b, _ := json.Marshal(struct {
		A   []Authority
		T   int
		Att []string
		All bool
	}{req.Authorities, req.Threshold, req.Attestations, req.AllPlatforms})
	h := sha256.Sum256(b)
	return req.Image.Context().Name() + "@" + req.Image.DigestStr() + " " + hex.EncodeToString(h[:12])
}

// Verify implements Verifier.
func (c *Cache) Verify(ctx context.Context, req Request) Result {
	return c.memo.do(ctx, CacheKey(req),
		func(ctx context.Context) Result { return c.next.Verify(ctx, req) },
		func(err error) Result {
			return Result{Outcome: Unavailable, Detail: "verification did not finish within the request's time budget: " + err.Error()}
		})
}
