package verify

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCacheHit is what a verified digest adds to an admission: one cache
// look-up (docs/benchmarks.md).
func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(verifierFunc(func(context.Context, Request) Result { return Result{Outcome: Verified} }), CacheOptions{TTL: time.Hour})
	req := request(b, digestA, "k1")
	c.Verify(b.Context(), req)
	b.ReportAllocs()
	for b.Loop() {
		if c.Verify(b.Context(), req).Outcome != Verified {
			b.Fatal("not verified")
		}
	}
}
