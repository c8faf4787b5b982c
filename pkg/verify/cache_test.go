package verify

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// verifierFunc is a Verifier made of a function.
type verifierFunc func(ctx context.Context, req Request) Result

func (f verifierFunc) Verify(ctx context.Context, req Request) Result { return f(ctx, req) }

func request(t testing.TB, image string, authority string) Request {
	t.Helper()
	d, err := name.NewDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Image: d, Authorities: []Authority{{Name: authority, Key: &Key{PEM: authority}}}}
}

const digestA = "registry.test/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestCacheReusesResultsByOutcome(t *testing.T) {
	for name, tc := range map[string]struct {
		outcome Outcome
		after   time.Duration
		calls   int32
	}{
		"verified within TTL is reused":          {Verified, 9 * time.Minute, 1},
		"verified after TTL is verified again":   {Verified, 11 * time.Minute, 2},
		"unsigned within negative TTL is reused": {Unsigned, 30 * time.Second, 1},
		"unsigned after negative TTL":            {Unsigned, 61 * time.Second, 2},
		"mismatch within negative TTL":           {Mismatch, 30 * time.Second, 1},
		"unavailable is never cached":            {Unavailable, 0, 2},
		"unauthorized is never cached":           {Unauthorized, 0, 2},
	} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int32
			now := time.Unix(1_800_000_000, 0)
			c := NewCache(verifierFunc(func(context.Context, Request) Result {
				calls.Add(1)
				return Result{Outcome: tc.outcome}
			}), CacheOptions{TTL: 10 * time.Minute, Now: func() time.Time { return now }})
			req := request(t, digestA, "k1")
			if got := c.Verify(t.Context(), req).Outcome; got != tc.outcome {
				t.Fatalf("first Verify = %s, want %s", got, tc.outcome)
			}
			now = now.Add(tc.after)
			if got := c.Verify(t.Context(), req).Outcome; got != tc.outcome {
				t.Fatalf("second Verify = %s, want %s", got, tc.outcome)
			}
			if got := calls.Load(); got != tc.calls {
				t.Errorf("verifier called %d times, want %d", got, tc.calls)
			}
		})
	}
}

func TestCacheKeyDependsOnRepositoryDigestAndAuthorities(t *testing.T) {
	base := request(t, digestA, "k1")
	for name, other := range map[string]Request{
		"other authority":  request(t, digestA, "k2"),
		"other repository": request(t, "registry.test/other@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "k1"),
		"other digest":     request(t, "registry.test/app@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "k1"),
		"other threshold":  func() Request { r := base; r.Threshold = 2; return r }(),
		"attestations":     func() Request { r := base; r.Attestations = []string{"https://slsa.dev/provenance/v1"}; return r }(),
		"all platforms":    func() Request { r := base; r.AllPlatforms = true; return r }(),
	} {
		if CacheKey(base) == CacheKey(other) {
			t.Errorf("%s: same cache key %q", name, CacheKey(base))
		}
	}
	tagged := request(t, "registry.test/app:1.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "k1")
	if CacheKey(base) != CacheKey(tagged) {
		t.Errorf("a tag kept for humans changes the key: %q vs %q", CacheKey(base), CacheKey(tagged))
	}
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	c := NewCache(verifierFunc(func(context.Context, Request) Result {
		calls.Add(1)
		<-release
		return Result{Outcome: Verified}
	}), CacheOptions{TTL: time.Minute})
	req := request(t, digestA, "k1")
	var wg sync.WaitGroup
	results := make([]Outcome, 100)
	for i := range results {
		wg.Go(func() { results[i] = c.Verify(t.Context(), req).Outcome })
	}
	// Let the callers pile up on the one verification before it finishes.
	for c.memo.waiting(CacheKey(req)) < len(results) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, o := range results {
		if o != Verified {
			t.Fatalf("caller %d got %s", i, o)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("verifier called %d times for 100 concurrent callers, want 1", got)
	}
}

func TestCacheCallerGivesUpAtItsDeadlineButTheVerificationFinishes(t *testing.T) {
	release := make(chan struct{})
	done := make(chan struct{})
	c := NewCache(verifierFunc(func(ctx context.Context, _ Request) Result {
		<-release
		defer close(done)
		if ctx.Err() != nil {
			return Result{Outcome: Unavailable}
		}
		return Result{Outcome: Verified}
	}), CacheOptions{TTL: time.Minute})
	req := request(t, digestA, "k1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got := c.Verify(ctx, req); got.Outcome != Unavailable {
		t.Fatalf("caller past its deadline got %+v, want Unavailable", got)
	}
	close(release)
	<-done
	// The verification the first caller started completed and was cached.
	for range 100 {
		if r, ok := c.memo.get(CacheKey(req)); ok {
			if r.Outcome != Verified {
				t.Fatalf("cached %s, want Verified", r.Outcome)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the shared verification was not cached")
}
