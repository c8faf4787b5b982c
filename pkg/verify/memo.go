package verify

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// memo keeps results of type V by key for a time that depends on the result, and
// lets concurrent misses for one key share a single call. Cache and BaseCache are
// memos.
type memo[V any] struct {
	// ttl says how long a result is kept; zero or less: not kept.
	ttl        func(V) time.Duration
	maxEntries int
	timeout    time.Duration
	now        func() time.Time
	lookups    *prometheus.CounterVec

	group   singleflight.Group
	mu      sync.Mutex
	entries map[string]memoEntry[V]
	waiters map[string]int // callers waiting per key, for tests
}

type memoEntry[V any] struct {
	value   V
	expires time.Time
}

func newMemo[V any](ttl func(V) time.Duration, maxEntries int, timeout time.Duration, now func() time.Time, lookups *prometheus.CounterVec) *memo[V] {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	if now == nil {
		now = time.Now
	}
	return &memo[V]{ttl: ttl, maxEntries: maxEntries, timeout: timeout, now: now, lookups: lookups,
		entries: map[string]memoEntry[V]{}, waiters: map[string]int{}}
}

// do returns the value for key: kept, shared with a running call, or from fn.
// fn runs with its own deadline (m.timeout), not the caller's: the first caller
// giving up must not fail the others. A caller whose ctx ends first gets
// expired(ctx.Err()).
func (m *memo[V]) do(ctx context.Context, key string, fn func(ctx context.Context) V, expired func(error) V) V {
	if v, ok := m.get(key); ok {
		m.lookups.WithLabelValues("hit").Inc()
		return v
	}
	m.mu.Lock()
	m.waiters[key]++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.waiters[key]--; m.waiters[key] == 0 {
			delete(m.waiters, key)
		}
		m.mu.Unlock()
	}()
	ch := m.group.DoChan(key, func() (any, error) {
		m.lookups.WithLabelValues("miss").Inc()
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
		defer cancel()
		v := fn(vctx)
		m.put(key, v)
		return v, nil
	})
	select {
	case res := <-ch:
		if res.Shared {
			m.lookups.WithLabelValues("coalesced").Inc()
		}
		return res.Val.(V)
	case <-ctx.Done():
		return expired(ctx.Err())
	}
}

func (m *memo[V]) get(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !m.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (m *memo[V]) put(key string, v V) {
	ttl := m.ttl(v)
	if ttl <= 0 {
		return
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) >= m.maxEntries {
		for k, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
		// Still full: drop an arbitrary entry; it is computed again when needed.
		for k := range m.entries {
			if len(m.entries) < m.maxEntries {
				break
			}
			delete(m.entries, k)
		}
	}
	m.entries[key] = memoEntry[V]{value: v, expires: now.Add(ttl)}
}

// waiting returns how many callers wait for key.
func (m *memo[V]) waiting(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiters[key]
}

func lookupCounter(name, help string, reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"result"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}
