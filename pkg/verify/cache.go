package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
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
	opts CacheOptions

	group   singleflight.Group
	mu      sync.Mutex
	entries map[string]cacheEntry
	waiters map[string]int // callers waiting per key, for tests
	lookups *prometheus.CounterVec
}

type cacheEntry struct {
	result  Result
	expires time.Time
}

var _ Verifier = (*Cache)(nil)

// NewCache returns next behind a cache configured by o.
func NewCache(next Verifier, o CacheOptions) *Cache {
	if o.NegativeTTL == 0 {
		o.NegativeTTL = min(o.TTL/10, maxNegativeTTL)
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultCacheEntries
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultVerifyTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{next: next, opts: o, entries: map[string]cacheEntry{}, waiters: map[string]int{},
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_signature_cache_total",
			Help: "Signature verifications asked of the cache, by result: hit, miss (a verification ran), coalesced (waited for one running).",
		}, []string{"result"})}
	if o.Metrics != nil {
		o.Metrics.MustRegister(c.lookups)
	}
	return c
}

// CacheKey identifies what a verification depends on: the image's repository and
// digest (signatures live next to the image) and the authorities and threshold.
// Credentials are not part of it: they decide access, not what was signed.
func CacheKey(req Request) string {
	b, _ := json.Marshal(struct {
		A []Authority
		T int
	}{req.Authorities, req.Threshold})
	h := sha256.Sum256(b)
	return req.Image.Context().Name() + "@" + req.Image.DigestStr() + " " + hex.EncodeToString(h[:12])
}

// Verify implements Verifier.
func (c *Cache) Verify(ctx context.Context, req Request) Result {
	key := CacheKey(req)
	if r, ok := c.get(key); ok {
		c.lookups.WithLabelValues("hit").Inc()
		return r
	}
	c.mu.Lock()
	c.waiters[key]++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.waiters[key]--; c.waiters[key] == 0 {
			delete(c.waiters, key)
		}
		c.mu.Unlock()
	}()
	ch := c.group.DoChan(key, func() (any, error) {
		c.lookups.WithLabelValues("miss").Inc()
		// The shared verification must not end with the first caller's
		// request; it has its own bound instead.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		r := c.next.Verify(vctx, req)
		c.put(key, r)
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Shared {
			c.lookups.WithLabelValues("coalesced").Inc()
		}
		return res.Val.(Result)
	case <-ctx.Done():
		return Result{Outcome: Unavailable, Detail: "verification did not finish within the request's time budget: " + ctx.Err().Error()}
	}
}

func (c *Cache) get(key string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.opts.Now().Before(e.expires) {
		return Result{}, false
	}
	return e.result, true
}

func (c *Cache) put(key string, r Result) {
	ttl := c.opts.TTL
	if r.Outcome != Verified {
		ttl = c.opts.NegativeTTL
	}
	if r.Transient() || ttl <= 0 {
		return
	}
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.opts.MaxEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		// Still full: drop an arbitrary entry; it is verified again when needed.
		for k := range c.entries {
			if len(c.entries) < c.opts.MaxEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{result: r, expires: now.Add(ttl)}
}

// waiting returns how many callers wait for req's verification.
func (c *Cache) waiting(req Request) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiters[CacheKey(req)]
}
